"""``plinth preview`` as a CI job runs it, against the real control plane and operator: exit codes, progress lines,
JSON output, list and down."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cluster, Operator

pytestmark = pytest.mark.cluster
PLINTH = str(Path(sys.executable).parent / "plinth")


def plinth(cluster: Cluster, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PLINTH, "preview", *args], env=cluster.env(), text=True, capture_output=True, timeout=timeout, check=False
    )


@pytest.fixture
def team(cluster: Cluster) -> Iterator[str]:
    name = f"ci-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "previewenvironments", "--all", "-n", name, "--wait=false", check=False)
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_up_wait_json_list_and_down(cluster: Cluster, operator: Operator, team: str) -> None:
    repo, pr = "github.com/acme/cli-shop", 7
    up = plinth(
        cluster, "up", "--repo", repo, "--pr", str(pr), "--commit", "abcdef1", "--team", "cli",
        "-n", team, "--service", "web=registry.example/web:pr-7:3000", "--domain", "preview.example.com",
        "--wait", "--timeout", "120", "-o", "json",
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    info = json.loads(up.stdout)
    assert info["ready"] is True
    assert info["name"] == "cli-shop-pr7"
    assert info["url"] == "https://cli-shop-pr7-7.preview.example.com"
    # Plain progress lines in a CI log (stderr is not a terminal): no carriage returns or escape codes.
    assert "\r" not in up.stderr and "\033" not in up.stderr
    assert "applied (generation 1)" in up.stderr

    listed = plinth(cluster, "list", "-n", team, "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert [(i["name"], i["pullRequest"], i["ready"]) for i in json.loads(listed.stdout)] == [("cli-shop-pr7", 7, True)]
    table = plinth(cluster, "list", "-n", team)
    assert table.stdout.splitlines()[0].split() == ["NAMESPACE", "NAME", "PR", "READY", "URL", "EXPIRES"]

    down = plinth(cluster, "down", "--repo", repo, "--pr", str(pr), "-n", team)
    assert down.returncode == 0, down.stderr
    assert "deleted" in down.stderr
    assert cluster.kubectl("get", "namespace", info["previewNamespace"], check=False).returncode != 0


def test_blocked_preview_exits_1_with_the_reason(cluster: Cluster, operator: Operator, team: str) -> None:
    up = plinth(
        cluster, "up", "--repo", "github.com/acme/x", "--pr", "8", "--team", "cli", "-n", team,
        "--service", "web=registry.example/web:1", "--copy-secret", "kube-system/not-shared",
        "--wait", "--timeout", "120",
    )  # fmt: skip
    assert up.returncode == 1, up.stderr
    assert "SecretCopyRefused" in up.stderr


def test_timeout_exits_2_and_refusal_exits_3(cluster: Cluster, operator: Operator, team: str) -> None:
    slow = plinth(
        cluster, "up", "--repo", "github.com/acme/y", "--pr", "9", "--team", "cli", "-n", team,
        "--service", "web=registry.example/web:unready", "--wait", "--timeout", "5",
    )  # fmt: skip
    assert slow.returncode == 2, slow.stderr
    assert "timed out" in slow.stderr
    assert "web 0/1" in slow.stderr  # the blocking service is named

    refused = plinth(
        cluster, "up", "--repo", "github.com/acme/z", "--pr", "10", "--team", "Not_A_Label", "-n", team,
        "--service", "web=registry.example/web:1",
    )  # fmt: skip
    assert refused.returncode == 3
    assert "spec.team" in refused.stderr
