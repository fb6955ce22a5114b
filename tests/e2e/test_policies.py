"""The chart's ValidatingAdmissionPolicies on the real API server: each denies a bad object with a message naming
the policy and what to change, admits a good one, and holds for manifests at either API version."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from plinth.operator.api.conversion import ALPHA, BETA, INTERNAL, convert

from tests.conftest import Cluster, wait_for
from tests.e2e.test_chart import by_kind, template

pytestmark = pytest.mark.cluster

TEAM_PREFIX = "ghcr.io/acme/"


@pytest.fixture(scope="module")
def governed(
    cluster: Cluster,
    helm: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """Every policy of the chart, enabled and bound to the namespaces of this module only (their label); yields the
    label value. The policies are removed afterwards."""
    token = uuid.uuid4().hex[:6]
    values = {
        "policies": {
            "namespaceSelector": {"matchLabels": {"plinth.dev/policy-test": token}},
            "allowedRegistries": {"enabled": True, "prefixes": [TEAM_PREFIX], "teams": {"shop": ["ghcr.io/shop/"]}},
            "previewTTL": {"enabled": True, "max": "168h"},
            "modelReplicas": {"enabled": True, "max": 10},
            "requiredLabels": {"enabled": True, "keys": ["cost-center"]},
            "allowedRepositories": {"enabled": True, "prefixes": ["github.com/acme/"]},
        }
    }
    objects = template(helm, tmp_path_factory.mktemp("policies"), values, release=f"pol-{token}")
    policies = [o for o in objects if o["kind"].startswith("ValidatingAdmissionPolicy")]
    assert (
        len(by_kind(policies, "ValidatingAdmissionPolicy"))
        == 5
        == len(by_kind(policies, "ValidatingAdmissionPolicyBinding"))
    )
    body = "\n---\n".join(json.dumps(o) for o in policies)
    cluster.kubectl("apply", "--server-side", "--field-manager=plinth-tests", "-f", "-", input=body)
    try:
        yield token
    finally:
        names = [f"{o['kind'].lower()}/{o['metadata']['name']}" for o in policies]
        cluster.kubectl("delete", *names, "--ignore-not-found")


@pytest.fixture
def ns(cluster: Cluster, governed: str) -> Iterator[str]:
    name = f"pol-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("label", "namespace", name, f"plinth.dev/policy-test={governed}", "plinth.dev/team=shop")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


def _model(namespace: str, **spec: Any) -> dict[str, Any]:
    """A v1beta1 ModelDeployment that every policy admits, with *spec* on top."""
    return {
        "apiVersion": BETA,
        "kind": "ModelDeployment",
        "metadata": {"name": f"m-{uuid.uuid4().hex[:6]}", "namespace": namespace, "labels": {"cost-center": "ml"}},
        "spec": {
            "model": {"name": "fraud", "version": "1.0.0", "uri": "s3://models/fraud/1.0.0"},
            "runtime": {"image": f"{TEAM_PREFIX}server:1"},
            **spec,
        },
    }


def _preview(namespace: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": BETA,
        "kind": "PreviewEnvironment",
        "metadata": {"name": f"p-{uuid.uuid4().hex[:6]}", "namespace": namespace, "labels": {"cost-center": "web"}},
        "spec": {
            "source": {"repository": "github.com/acme/shop", "pullRequest": 7},
            "team": "shop",
            "services": [{"name": "web", "image": f"{TEAM_PREFIX}web:pr-7"}],
            **spec,
        },
    }


def _create(cluster: Cluster, obj: dict[str, Any]) -> tuple[int, str]:
    result = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(obj), check=False)
    return result.returncode, result.stderr


def _denied(cluster: Cluster, obj: dict[str, Any], *expected: str) -> None:
    """Refused, and the message names the policy and what to change (waiting for a new policy to be in force)."""

    def refused() -> str | None:
        code, stderr = _create(cluster, obj)
        return stderr if code != 0 else None

    stderr = wait_for(refused, timeout=30, what=f"{expected[0]} in force")
    for text in expected:
        assert text in stderr, stderr


def _admitted(cluster: Cluster, obj: dict[str, Any]) -> None:
    code, stderr = _create(cluster, obj)
    assert code == 0, stderr


def test_images_only_from_allowed_registries(cluster: Cluster, ns: str) -> None:
    _denied(
        cluster,
        _model(ns, runtime={"image": "docker.io/someone/server:1"}),
        "allowed-registries: image docker.io/someone/server:1 is not from a registry team shop may use",
        f"use an image under {TEAM_PREFIX}, ghcr.io/shop/",
    )
    _admitted(cluster, _model(ns))
    _admitted(cluster, _model(ns, runtime={"image": "ghcr.io/shop/server:2"}))  # the team's own prefix
    canary = {"model": {"version": "1.1.0", "uri": "s3://models/fraud/1.1.0"}, "image": "quay.io/x/y:1"}
    _denied(cluster, _model(ns, canary=canary), "image quay.io/x/y:1")
    preview = _preview(ns, services=[{"name": "web", "image": "evil.example/web:1"}])
    _denied(cluster, preview, "allowed-registries: image evil.example/web:1")


def test_a_preview_lives_at_most_the_max_ttl_at_either_version(cluster: Cluster, ns: str) -> None:
    long = _preview(ns, lifecycle={"ttl": "720h"})
    _denied(cluster, long, "preview-ttl: spec.lifecycle.ttl 720h is longer than 168h", "set a ttl of at most 168h")
    # The same preview written at v1alpha1 (spec.ttl) is converted to v1beta1 and refused alike.
    assert convert(long, ALPHA)["spec"]["ttl"] == "720h"
    _denied(cluster, convert(long, ALPHA), "preview-ttl: spec.lifecycle.ttl 720h")
    _admitted(cluster, _preview(ns, lifecycle={"ttl": "24h"}))
    _admitted(cluster, _preview(ns))  # the default 72h


def test_model_replicas_are_capped(cluster: Cluster, ns: str) -> None:
    _denied(cluster, _model(ns, scaling={"replicas": 50}), "model-replicas: 50 replicas asked for, at most 10 allowed")
    autoscaled = _model(ns, scaling={"autoscaling": {"maxReplicas": 30}})
    _denied(cluster, autoscaled, "30 replicas asked for", "spec.scaling.autoscaling.maxReplicas")
    _admitted(cluster, _model(ns, scaling={"replicas": 10}))
    inside = {"name": "rank", "spec": _model(ns, scaling={"replicas": 11})["spec"]}
    _denied(cluster, _preview(ns, models=[inside]), "11 replicas asked for")


def test_labels_are_required_and_repositories_allowed(cluster: Cluster, ns: str) -> None:
    unlabelled = _model(ns)
    del unlabelled["metadata"]["labels"]
    _denied(cluster, unlabelled, "required-labels: metadata.labels must set cost-center")
    foreign = _preview(ns, source={"repository": "github.com/someone/fork", "pullRequest": 1})
    _denied(cluster, foreign, "allowed-repositories: previews of github.com/someone/fork are not allowed here")
    _admitted(cluster, _preview(ns))


def test_namespaces_outside_the_selector_are_not_governed(cluster: Cluster, governed: str, namespace: str) -> None:
    wait_for(lambda: _create(cluster, _model(namespace, scaling={"replicas": 50}))[0] == 0, timeout=5)
    internal = convert(_model(namespace, scaling={"replicas": 50}), INTERNAL)
    assert _create(cluster, internal)[0] == 0
