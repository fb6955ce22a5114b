"""`make dev`'s promise on a real node: hack/dev.sh (what `make dev` runs once the cluster is up) makes every sample
in crds/samples Ready, the sample model answers a prediction through the ingress and the preview's URL loads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, Operator, free_port, wait_for
from tests.nodes.conftest import NodeCluster

pytestmark = pytest.mark.cluster


@pytest.fixture
def dev_script(node_cluster: NodeCluster, node_operator: Operator) -> Iterator[NodeCluster]:
    """The session's operator steps aside while hack/dev.sh runs its own; the samples go away afterwards, so no
    quota of theirs selects another test's namespaces."""
    node_operator.stop()
    directory = node_cluster.local.directory
    try:
        yield node_cluster
    finally:
        # The samples go while the dev operator still runs: a preview's finalizer needs it to clean up.
        samples = str(ROOT / "crds" / "samples")
        node_cluster.kubectl(
            "delete", "-n", "plinth-samples", "-f", samples, "--wait=true", "--timeout=180s", timeout=200, check=False
        )
        for namespace in ("plinth-samples", "plinth-model-store"):
            node_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        pid_file = directory / "operator.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text())
            os.kill(pid, signal.SIGTERM)
            wait_for(lambda: not Path(f"/proc/{pid}").exists(), timeout=30, what="the dev operator to stop")
            pid_file.unlink()
        node_operator.start()


def test_every_sample_is_ready_and_the_sample_model_answers(dev_script: NodeCluster) -> None:
    cluster = dev_script
    bin_dir = Path(sys.executable).parent
    result = subprocess.run(
        ["bash", str(ROOT / "hack" / "dev.sh"), str(cluster.local.directory), str(bin_dir), cluster.local.name],
        env={**os.environ, "PLINTH_METRICS_PORT": str(free_port()), "PLINTH_DEV_TIMEOUT": "480s"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "with every sample Ready" in result.stdout
    for kind in ("modeldeployments", "previewenvironments"):
        items = cluster.get("-n", "plinth-samples", kind)["items"]
        assert items and all(_ready(o) for o in items), [o["metadata"]["name"] for o in items if not _ready(o)]
    assert all(_ready(o) for o in cluster.get("namespacequotas")["items"])

    body = json.dumps(
        {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}
    )
    request = urllib.request.Request(
        f"{cluster.ingress}/v2/models/iris/infer", body.encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        answer = json.loads(reply.read())
    assert answer["model_version"] == "1.0.0" and answer["outputs"][0]["data"] == [0]
    page = wait_for(
        lambda: (r := cluster.fetch("shop-1234.preview.localhost"))[0] == 200 and r[1],
        timeout=60,
        what="the preview of pull request 1234",
    )
    assert '<dd id="commit">3f2c9a1</dd>' in page


def _ready(obj: dict[str, object]) -> bool:
    status = obj.get("status") or {}
    assert isinstance(status, dict)
    return any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))
