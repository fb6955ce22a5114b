"""A PreviewEnvironment whose Pods really run: the CI flow end to end through the ingress on 127.0.0.1, a copied
Secret read by the app's process, and a missing image surfacing as Kubernetes' own ErrImagePull."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from plinth.operator import devimages
from plinth.operator.builders import preview as preview_builder

from tests.conftest import Operator, wait_for
from tests.integration.test_previewenvironment import PE, apply, get, manifest, namespace_exists, wait_condition
from tests.nodes.conftest import NodeCluster

pytestmark = pytest.mark.cluster
DOMAIN = "preview.test"


@pytest.fixture
def team(node_cluster: NodeCluster) -> Iterator[str]:
    name = f"team-{uuid.uuid4().hex[:8]}"
    node_cluster.kubectl("create", "namespace", name)
    yield name
    node_cluster.kubectl("delete", PE, "--all", "-n", name, "--wait=false", check=False)
    node_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def demo(name: str = "web", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": devimages.DEMO_WEB,
        "port": 8080,
        "readinessPath": "/healthz",
        "expose": True,
        **extra,
    }


def test_ci_flow_create_push_delete(node_cluster: NodeCluster, node_operator: Operator, team: str) -> None:
    """Open a pull request -> the URL serves its commit and the copied Secret's hash; push -> the URL serves the new
    commit; close -> the namespace and its routes are gone."""
    db_url = f"postgres://shop:{uuid.uuid4().hex}@db/shop"
    node_cluster.kubectl("create", "secret", "generic", "shop-db", "-n", team, f"--from-literal=url={db_url}")
    env = [
        {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "shop-db", "key": "url"}}},
        {"name": "DEMO_SECRET_ENV", "value": "DATABASE_URL"},
    ]
    body = manifest(
        team,
        "shop",
        7,
        services=[demo(env=env)],
        secrets=[{"copyFrom": {"name": "shop-db"}}],
        ingress={"domain": DOMAIN, "className": "plinth", "tls": False},
    )
    body["spec"]["source"]["commit"] = "c0ffee1"
    apply(node_cluster, body)
    ready = wait_condition(node_cluster, team, "shop", "Ready", timeout=120)
    url = ready["status"]["url"]
    host = url.removeprefix("http://")
    assert host == f"shop-7.{DOMAIN}"

    page = wait_for(lambda: (r := node_cluster.fetch(host))[0] == 200 and r[1], timeout=60, what=url)
    assert '<dd id="commit">c0ffee1</dd>' in page
    assert '<dd id="service">web</dd>' in page
    assert hashlib.sha256(db_url.encode()).hexdigest() in page  # the process read the copied Secret ...
    assert db_url not in page  # ... and the page never shows its value

    body["spec"]["source"]["commit"] = "beefca7"
    apply(node_cluster, body)
    wait_for(
        lambda: '<dd id="commit">beefca7</dd>' in node_cluster.fetch(host)[1], timeout=120, what="the pushed commit"
    )

    namespace = preview_builder.namespace_name(get(node_cluster, team, "shop") or {})
    assert node_cluster.get("-n", namespace, "ingress")["items"], "the preview's Ingress"
    node_cluster.kubectl("delete", PE, "shop", "-n", team, "--wait=true", "--timeout=120s")
    assert not namespace_exists(node_cluster, namespace)
    wait_for(lambda: node_cluster.fetch(host)[0] == 404, timeout=30, what="the route gone from the ingress")


def test_a_missing_image_is_kubernetes_own_image_pull_error(
    node_cluster: NodeCluster, node_operator: Operator, team: str
) -> None:
    """Nothing can be pulled here: an image that was not built locally fails the way it fails in any cluster."""
    body = manifest(team, "ghost", 8, services=[demo(image=f"{devimages.LOCAL_REGISTRY}/not-built:1")])
    apply(node_cluster, body)
    obj = wait_for(lambda: get(node_cluster, team, "ghost"), what="the preview")
    namespace = preview_builder.namespace_name(obj)

    def waiting_reason() -> str | None:
        pods = node_cluster.get("-n", namespace, "pods")["items"]
        for pod in pods:
            for cs in (pod.get("status") or {}).get("containerStatuses") or []:
                reason = ((cs.get("state") or {}).get("waiting") or {}).get("reason")
                if reason in ("ErrImagePull", "ImagePullBackOff"):
                    return str(reason)
        return None

    assert wait_for(waiting_reason, timeout=90, what="ErrImagePull") in ("ErrImagePull", "ImagePullBackOff")
    wait_condition(node_cluster, team, "ghost", "Ready", status="False", timeout=60)
    # the preview's own status names the Pod and the kubelet's reason: only a change can fix it, so Stalled
    stalled = wait_condition(node_cluster, team, "ghost", "Stalled", timeout=90)
    condition = next(c for c in stalled["status"]["conditions"] if c["type"] == "Stalled")
    assert condition["reason"] in ("ErrImagePull", "ImagePullBackOff"), condition
    assert "service web: Pod web-" in condition["message"] and "check the image name" in condition["message"]
    blocked = stalled["status"]["blockedBy"]
    assert blocked["kind"] == "Pod" and blocked["name"].startswith("web-") and blocked["reason"] == condition["reason"]

    def said(*reasons: str) -> list[dict[str, Any]]:
        found = node_cluster.get("-n", team, "events", "--field-selector", "involvedObject.name=ghost")["items"]
        return [e for e in found if e["reason"] in reasons]

    pulls = wait_for(lambda: said("ErrImagePull", "ImagePullBackOff"), timeout=30, what="the blocker's Event")
    assert pulls[0]["type"] == "Warning" and pulls[0]["message"].startswith(f"blocked by Pod {blocked['name']}: ")
    # fixed by a change: the blocker goes, with one Event saying so, and the status no longer names it
    body["spec"]["services"] = [demo()]
    apply(node_cluster, body)
    ready = wait_condition(node_cluster, team, "ghost", "Ready", timeout=120)
    assert "blockedBy" not in ready["status"]
    unblocked = wait_for(lambda: said("Unblocked"), timeout=30, what="the Unblocked Event")
    assert unblocked[0]["type"] == "Normal" and "no longer blocks" in unblocked[0]["message"]


def test_a_crashing_container_and_a_failing_probe_keep_the_preview_not_ready(
    node_cluster: NodeCluster, node_operator: Operator, team: str
) -> None:
    """One container really exits 3, another's readiness probe really answers 503: the preview is not Ready, and
    its conditions name the service and why."""
    body = manifest(
        team,
        "broken",
        9,
        services=[
            demo("crashy", env=[{"name": "DEMO_EXIT_CODE", "value": "3"}]),
            demo("sick", env=[{"name": "DEMO_READY", "value": "false"}]),
        ],
    )
    apply(node_cluster, body)
    stalled = wait_condition(node_cluster, team, "broken", "Stalled", timeout=180, reason="CrashLoopBackOff")
    assert "crashy" in next(c for c in stalled["status"]["conditions"] if c["type"] == "Stalled")["message"]
    ready = next(c for c in stalled["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"

    body["spec"]["services"] = [body["spec"]["services"][1]]  # the crashing service removed: the probe still fails
    apply(node_cluster, body)
    waiting = wait_condition(node_cluster, team, "broken", "Reconciling", timeout=120, reason="ServicesNotReady")
    assert "sick 0/1 ready" in next(c for c in waiting["status"]["conditions"] if c["type"] == "Reconciling")["message"]
    namespace = preview_builder.namespace_name(waiting)
    pod = node_cluster.get("-n", namespace, "pods", "-l", f"{preview_builder.SERVICE_LABEL}=sick")["items"][0]
    assert pod["status"]["phase"] == "Running"  # it runs: only its readiness probe fails
    assert all(not cs["ready"] for cs in pod["status"]["containerStatuses"])


def test_a_preview_routed_by_the_gateway_answers(node_cluster: NodeCluster, node_operator: Operator, team: str) -> None:
    """spec.ingress.gateway: HTTPRoutes attached to the node's Gateway carry the requests instead of an Ingress."""
    gateway = {"name": "public", "namespace": "plinth-ingress"}
    body = manifest(team, "routed", 10, services=[demo()], ingress={"domain": DOMAIN, "gateway": gateway, "tls": False})
    apply(node_cluster, body)
    ready = wait_condition(node_cluster, team, "routed", "Ready", timeout=120)
    namespace = preview_builder.namespace_name(ready)
    assert not node_cluster.get("-n", namespace, "ingress")["items"]
    route = node_cluster.get("-n", namespace, "httproute", "web")
    (parent,) = route["spec"]["parentRefs"]
    assert {k: parent.get(k) for k in gateway} == gateway
    page = wait_for(lambda: (r := node_cluster.fetch(f"routed-10.{DOMAIN}"))[0] == 200 and r[1], timeout=60)
    assert '<dd id="commit">aaaaaaa</dd>' in page
