"""The local control plane behaves like a real cluster where Plinth depends on it.

Each test exercises one controller or component Plinth relies on: scheduling + simulated kubelets (Pods Running and
Ready), the deployment/replicaset controllers, the namespace lifecycle and garbage collector, the resourcequota
admission and controller, and the service-account token controller.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from plinth.operator import devcluster

from tests.conftest import Cluster, wait_for

pytestmark = pytest.mark.cluster


def test_server_reports_the_pinned_version(cluster: Cluster) -> None:
    out = cluster.kubectl("version", "-o", "json").stdout
    assert '"gitVersion": "v1.37.' in out


def test_nodes_are_ready(cluster: Cluster) -> None:
    nodes = cluster.get("nodes")["items"]
    assert nodes, "no simulated node registered"
    for node in nodes:
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
        assert ready == "True", node["metadata"]["name"]
        assert not [t for t in node["spec"].get("taints", []) if t["key"] == "node.kubernetes.io/not-ready"]


def test_deployment_becomes_available(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("-n", namespace, "create", "deployment", "web", "--image=registry.example/web:1", "--replicas=3")

    def available() -> Any:
        status = cluster.get("-n", namespace, "deployment", "web").get("status", {})
        return status.get("availableReplicas") == 3 and status

    wait_for(available, what="3 available replicas")
    pods = cluster.get("-n", namespace, "pods")["items"]
    assert len(pods) == 3
    assert all(p["status"]["phase"] == "Running" and p["status"]["podIP"] for p in pods)


def test_crashlooping_image_is_never_ready(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("-n", namespace, "run", "bad", "--image=registry.example/server:crashloop")

    def restarting() -> Any:
        statuses = cluster.get("-n", namespace, "pod", "bad").get("status", {}).get("containerStatuses", [])
        return statuses and statuses[0]["restartCount"] >= 1 and statuses[0]

    status = wait_for(restarting, what="a crash-looping container")
    assert status["ready"] is False
    assert status["state"]["waiting"]["reason"] == "CrashLoopBackOff"


def test_resource_quota_is_enforced_at_admission(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("-n", namespace, "create", "quota", "q", "--hard=pods=1")
    wait_for(lambda: cluster.get("-n", namespace, "quota", "q").get("status", {}).get("hard"), what="quota status")
    cluster.kubectl("-n", namespace, "run", "one", "--image=registry.example/a:1")
    second = cluster.kubectl("-n", namespace, "run", "two", "--image=registry.example/a:1", check=False)
    assert second.returncode != 0
    assert "exceeded quota" in second.stderr


def test_default_service_account_and_token(cluster: Cluster, namespace: str) -> None:
    wait_for(
        lambda: cluster.kubectl("-n", namespace, "get", "sa", "default", check=False).returncode == 0,
        what="the default ServiceAccount",
    )
    token = cluster.kubectl("-n", namespace, "create", "token", "default").stdout.strip()
    assert token.count(".") == 2


def test_namespace_deletion_completes_and_collects_garbage(cluster: Cluster) -> None:
    cluster.kubectl("create", "namespace", "doomed")
    cluster.kubectl("-n", "doomed", "create", "deployment", "web", "--image=registry.example/web:1", "--replicas=2")
    wait_for(lambda: len(cluster.get("-n", "doomed", "pods")["items"]) == 2, what="pods to exist")
    cluster.kubectl("delete", "namespace", "doomed", "--timeout=90s")
    assert cluster.kubectl("get", "namespace", "doomed", check=False).returncode != 0


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in args:
            found.append(args)
    return found


def test_second_cluster_side_by_side_and_clean_shutdown(cluster: Cluster, tmp_path: Path) -> None:
    """Another instance boots next to the session's cluster on its own ports, and `down` leaves no process."""
    second = devcluster.up("side-by-side", directory=tmp_path / "second")
    try:
        assert second.server not in cluster.kubeconfig.read_text()  # its own port
        other = Cluster(second.kubeconfig)
        assert other.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"
        assert [n["metadata"]["name"] for n in other.get("nodes")["items"]] == list(second.nodes)
        assert len(_processes_mentioning(str(tmp_path / "second"))) >= 1
    finally:
        assert devcluster.down("side-by-side", directory=tmp_path / "second", keep=True)
    # Components are children with a parent-death signal: nothing of this cluster survives its supervisor.
    wait_for(lambda: not _processes_mentioning(str(tmp_path / "second")), timeout=30, what="no leftover process")
    assert devcluster.status("side-by-side", directory=tmp_path / "second") is None
