"""`plinth explain` against a real node: a ModelDeployment whose image cannot be pulled shows the Pod's own reason
(the kubelet's ErrImagePull or ImagePullBackOff) as the marked blocker with its hint; fixing the image clears it."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from plinth.operator import devimages

from tests.conftest import Operator, wait_for
from tests.nodes.conftest import NodeCluster

pytestmark = pytest.mark.cluster


@pytest.fixture
def namespace(node_cluster: NodeCluster) -> Iterator[str]:
    name = f"explain-{uuid.uuid4().hex[:6]}"
    node_cluster.kubectl("create", "namespace", name)
    yield name
    node_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _explain(cluster: NodeCluster, *args: str) -> subprocess.CompletedProcess[str]:
    plinth = str(Path(sys.executable).parent / "plinth")
    return subprocess.run(
        [plinth, "explain", *args], env=cluster.env(), capture_output=True, text=True, timeout=60, check=False
    )


def _model(namespace: str, image: str) -> str:
    body: dict[str, Any] = {
        "apiVersion": "plinth.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "scorer", "namespace": namespace},
        "spec": {
            "model": {"name": "scorer", "version": "1.0.0", "uri": "s3://models/scorer/1.0.0/model.joblib"},
            "runtime": {"image": image, "port": 8080},
        },
    }
    return json.dumps(body)


def test_explain_names_the_pods_own_reason_and_clears_when_fixed(
    node_cluster: NodeCluster, node_operator: Operator, namespace: str
) -> None:
    node_cluster.kubectl("apply", "--server-side", "-f", "-", input=_model(namespace, "plinth.local/no-such:1"))

    def blocked() -> dict[str, Any] | None:
        result = _explain(node_cluster, "md/scorer", "-n", namespace, "-o", "json")
        assert result.returncode == 0, result.stderr
        (tree,) = json.loads(result.stdout)
        blocker = tree["blockedBy"]
        return tree if blocker and blocker["reason"] in ("ErrImagePull", "ImagePullBackOff") else None

    tree = wait_for(blocked, timeout=120, what="explain to name the image pull")
    assert tree["state"] == "NotReady" and tree["blockedBy"]["kind"] == "Pod" and tree["blockedBy"]["stalled"]
    # the ModelDeployment's own status says the same (Stalled, the kubelet's reason), once the operator has looked
    wait_for(
        lambda: _stalled_reason(node_cluster, namespace) in ("ErrImagePull", "ImagePullBackOff"),
        timeout=120,
        what="Stalled with the Pod's reason",
    )
    assert [c["kind"] for c in tree["children"]][:2] == ["Deployment", "Service"]
    text = _explain(node_cluster, "md/scorer", "-n", namespace).stdout
    assert "✗ Pod scorer-" in text and "Blocked by Pod scorer-" in text and "check the image name" in text
    listed = _explain(node_cluster, "-n", namespace).stdout
    assert f"ModelDeployment {namespace}/scorer  NotReady" in listed

    node_cluster.kubectl("apply", "--server-side", "-f", "-", input=_model(namespace, devimages.DEMO_WEB))

    def cleared() -> dict[str, Any] | None:
        (fixed,) = json.loads(_explain(node_cluster, "md/scorer", "-n", namespace, "-o", "json").stdout)
        return fixed if fixed["state"] == "Ready" and fixed["blockedBy"] is None else None

    fixed = wait_for(cleared, timeout=180, what="the blocker to clear once the image is fixed")
    # With a Ready Pod behind it, the Service is judged by its endpoints (it lists the Pod).
    service = next(c for c in fixed["children"] if c["kind"] == "Service")
    assert (service["state"], service["blocker"]) == ("Ready", None), service
    assert _explain(node_cluster, "-n", namespace).stdout == "every Plinth object is Ready\n"
    missing = _explain(node_cluster, "md/nope", "-n", namespace)
    assert missing.returncode == 1 and "ModelDeployment nope not found" in missing.stderr


def _stalled_reason(cluster: NodeCluster, namespace: str) -> str | None:
    obj = cluster.get("-n", namespace, "modeldeployments.plinth.dev", "scorer")
    stalled = [c for c in (obj.get("status") or {}).get("conditions", []) if c["type"] == "Stalled"]
    return stalled[0]["reason"] if stalled and stalled[0]["status"] == "True" else None
