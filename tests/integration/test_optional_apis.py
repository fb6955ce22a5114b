"""Optional APIs, detected at runtime. Without them (every other test): replica-ratio canaries, Ingress, scrape
annotations. With the real CRDs installed (from the sigs.k8s.io/gateway-api and prometheus-operator Go modules): a
canary's traffic is split by HTTPRoute weights, a preview with spec.ingress.gateway is routed by HTTPRoutes, and a
monitored ModelDeployment gets a ServiceMonitor.

The CRDs are removed afterwards and the operator restarted, so that the rest of the session sees a cluster without
them again (the operator caches API discovery; see docs/modeldeployment.md)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from plinth.operator import devnode

from tests.conftest import Cluster, Operator, wait_for
from tests.integration.test_modeldeployment import _apply, _md, _ready_at
from tests.integration.test_previewenvironment import apply, condition, manifest, wait_condition

pytestmark = pytest.mark.cluster
PROMETHEUS_OPERATOR = "github.com/prometheus-operator/prometheus-operator@v0.85.0"


def optional_crds() -> list[Path]:
    """Gateway API's standard-channel CRDs and the Prometheus Operator's ServiceMonitor CRD, as their projects ship
    them."""
    gateway = devnode.go_module_dir(devnode.GATEWAY_API) / "config" / "crd" / "standard"
    names = ("httproutes", "gateways", "gatewayclasses", "referencegrants")
    monitoring = devnode.go_module_dir(PROMETHEUS_OPERATOR) / "example" / "prometheus-operator-crd"
    return [
        *(gateway / f"gateway.networking.k8s.io_{n}.yaml" for n in names),
        monitoring / "monitoring.coreos.com_servicemonitors.yaml",
        monitoring / "monitoring.coreos.com_prometheusrules.yaml",
    ]


def test_without_the_crds_models_are_scraped_by_annotations(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    """Runs first, before the module installs the CRDs: absent optional APIs degrade to annotations, no error."""
    name = f"md-{uuid.uuid4().hex[:6]}"
    _apply(cluster, namespace, name, monitoring={"metricsPort": 9090})
    obj = _ready_at(cluster, namespace, name, "1.4.0")
    monitored = next(c for c in obj["status"]["conditions"] if c["type"] == "Monitored")
    assert (monitored["status"], monitored["reason"]) == ("True", "ScrapeAnnotations")
    template = cluster.get("-n", namespace, "deployment", name)["spec"]["template"]
    assert template["metadata"]["annotations"]["prometheus.io/port"] == "9090"


@pytest.fixture(scope="module")
def optional_apis(cluster: Cluster, operator: Operator) -> Iterator[None]:
    files = optional_crds()
    args = [a for f in files for a in ("-f", str(f))]
    cluster.kubectl("apply", "--server-side", "--field-manager=tests", *args)
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *args)
    # The operator looks again for a kind it found missing at most once a minute, and an earlier module's reconcile
    # may have just found these missing: a fresh process sees them from its first reconcile.
    operator.stop()
    operator.start()
    yield
    cluster.kubectl("delete", "--wait=true", "--timeout=60s", *args, check=False)
    operator.stop()
    operator.start()


def _route(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    found = cluster.kubectl("get", "-n", namespace, "httproute", name, "-o", "json", check=False)
    return json.loads(found.stdout) if found.returncode == 0 else None


def _weights(route: dict[str, Any] | None) -> dict[str, int]:
    if route is None:
        return {}
    return {b["name"]: b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]}


def _accept(
    cluster: Cluster, namespace: str, name: str, parent: dict[str, Any], *, accepted: bool, reason: str
) -> None:
    """Write what a Gateway API implementation writes on the route it serves (none runs on simulated nodes; the real
    node's Traefik does this for real in tests/nodes)."""
    now = "2026-01-01T00:00:00Z"
    conditions = [
        {
            "type": "Accepted",
            "status": str(accepted),
            "reason": reason,
            "message": f"route {reason}",
            "lastTransitionTime": now,
        },
        {"type": "ResolvedRefs", "status": "True", "reason": "ResolvedRefs", "message": "", "lastTransitionTime": now},
    ]
    patch = {
        "status": {"parents": [{"parentRef": parent, "controllerName": "example.com/tests", "conditions": conditions}]}
    }
    cluster.kubectl(
        "patch", "-n", namespace, "httproute", name, "--subresource=status", "--type=merge", "-p", json.dumps(patch)
    )


def _condition(cluster: Cluster, namespace: str, name: str, kind: str) -> dict[str, Any]:
    conditions = _md(cluster, namespace, name).get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == kind), {})


def test_canary_split_by_httproute_weights(
    cluster: Cluster, operator: Operator, optional_apis: None, namespace: str
) -> None:
    name = f"md-{uuid.uuid4().hex[:6]}"
    _apply(cluster, namespace, name)
    _ready_at(cluster, namespace, name, "1.4.0")
    _apply(cluster, namespace, name, canary={"version": "1.5.0", "uri": "s3://m/1.5.0", "trafficPercent": 20})
    route = wait_for(lambda: _route(cluster, namespace, name), what="the canary's HTTPRoute")
    parent = {"group": "", "kind": "Service", "name": name, "port": 8080}
    assert route["spec"]["parentRefs"] == [parent]
    wait_for(lambda: _weights(_route(cluster, namespace, name)) == {f"{name}-stable": 80, f"{name}-canary": 20})
    for track in ("stable", "canary"):
        svc = cluster.get("-n", namespace, "service", f"{name}-{track}")
        assert svc["spec"]["selector"] == {"plinth.dev/modeldeployment": name, "plinth.dev/track": track}

    def canary() -> dict[str, Any]:
        found: dict[str, Any] = _md(cluster, namespace, name)["status"].get("canary") or {}
        return found

    # No mesh has accepted the route: the split is still kube-proxy's, and the status says so.
    wait_for(lambda: canary().get("phase") == "Healthy", what="a Healthy canary")
    assert canary()["splitBy"] == "ReplicaRatio"
    # Accepted by an implementation: the route's weights are the split.
    _accept(cluster, namespace, name, parent, accepted=True, reason="Accepted")
    wait_for(
        lambda: canary().get("splitBy") == "HTTPRoute" and canary().get("trafficPercent") == 20,
        timeout=60,
        what="canary at 20% by HTTPRoute",
    )

    # Canary removed: the route and the track Services go; the shared Service stays.
    _apply(cluster, namespace, name, canary=None)
    wait_for(lambda: _route(cluster, namespace, name) is None, what="HTTPRoute removed")
    wait_for(
        lambda: cluster.kubectl("get", "-n", namespace, "service", f"{name}-canary", check=False).returncode != 0,
        what="canary Service removed",
    )
    assert cluster.get("-n", namespace, "service", name)["metadata"]["name"] == name


def _gateway(cluster: Cluster, namespace: str, name: str) -> None:
    """A Gateway object (no controller programs it here)."""
    cluster.kubectl("create", "namespace", namespace, check=False)
    gateway = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "gatewayClassName": "example",
            "listeners": [
                {"name": "web", "protocol": "HTTP", "port": 80, "allowedRoutes": {"namespaces": {"from": "All"}}}
            ],
        },
    }
    cluster.kubectl("apply", "--server-side", "--field-manager=tests", "-f", "-", input=json.dumps(gateway))


def test_a_model_on_a_gateway_is_ready_once_its_route_is_accepted(
    cluster: Cluster, operator: Operator, optional_apis: None, namespace: str
) -> None:
    name = f"md-{uuid.uuid4().hex[:6]}"
    gateway_ns = f"gw-{uuid.uuid4().hex[:6]}"
    route_spec = {"gateway": {"name": "models", "namespace": gateway_ns}, "pathPrefix": f"/v2/models/{name}"}
    _apply(cluster, namespace, name, route=route_spec)
    stalled = wait_for(
        lambda: (c := _condition(cluster, namespace, name, "Stalled")).get("reason") == "GatewayNotFound" and c,
        what="Stalled GatewayNotFound",
    )
    assert f"Gateway {gateway_ns}/models does not exist" in stalled["message"]
    route = _route(cluster, namespace, name)
    assert route is not None
    parent = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "models", "namespace": gateway_ns}
    assert route["spec"]["parentRefs"] == [parent]  # as written, with the API server's defaults
    assert route["spec"]["rules"] == [
        {
            "backendRefs": [{"name": name, "port": 8080, "group": "", "kind": "Service", "weight": 1}],
            "matches": [{"path": {"type": "PathPrefix", "value": f"/v2/models/{name}"}}],
        }
    ]
    try:
        _gateway(cluster, gateway_ns, "models")
        wait_for(
            lambda: _condition(cluster, namespace, name, "Reconciling").get("reason") == "RoutePending",
            what="Reconciling RoutePending once the Gateway exists",
        )
        assert _condition(cluster, namespace, name, "Ready").get("status") != "True"
        _accept(cluster, namespace, name, parent, accepted=False, reason="NotAllowedByListeners")
        stalled = wait_for(
            lambda: (
                (c := _condition(cluster, namespace, name, "Stalled")).get("reason") == "NotAllowedByListeners" and c
            ),
            what="Stalled with the controller's own reason",
        )
        assert f"HTTPRoute {name}: NotAllowedByListeners: route NotAllowedByListeners" in stalled["message"]
        _accept(cluster, namespace, name, parent, accepted=True, reason="Accepted")
        wait_for(lambda: _condition(cluster, namespace, name, "Ready").get("status") == "True", what="Ready")
        # spec.route removed: the route goes.
        _apply(cluster, namespace, name)
        wait_for(lambda: _route(cluster, namespace, name) is None, what="HTTPRoute removed with spec.route")
    finally:
        cluster.kubectl("delete", "namespace", gateway_ns, "--wait=false", check=False)


def test_preview_routes_through_a_gateway(cluster: Cluster, operator: Operator, optional_apis: None) -> None:
    team = f"team-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", team)
    try:
        body = manifest(
            team,
            "gw",
            201,
            ingress={"domain": "preview.example.com", "gateway": {"name": "public", "namespace": f"{team}-gw"}},
        )
        apply(cluster, body)
        stalled = wait_condition(cluster, team, "gw", "Stalled", reason="GatewayNotFound")
        assert f"Gateway {team}-gw/public does not exist" in condition(stalled, "Stalled")["message"]
        _gateway(cluster, f"{team}-gw", "public")
        body["spec"]["source"]["commit"] = "bbbbbbb"  # a change: a Stalled object waits for one
        apply(cluster, body)
        obj = wait_condition(cluster, team, "gw", "Ready")
        target = obj["status"]["namespace"]
        route = _route(cluster, target, "web")
        assert route is not None
        assert route["spec"]["hostnames"] == ["gw-201.preview.example.com"]
        assert route["spec"]["parentRefs"][0]["name"] == "public"
        assert cluster.get("-n", target, "ingress")["items"] == []
        assert obj["status"]["url"] == "https://gw-201.preview.example.com"
    finally:
        cluster.kubectl("delete", "previewenvironments", "--all", "-n", team, "--timeout=90s", check=False)
        for each in (team, f"{team}-gw"):
            cluster.kubectl("delete", "namespace", each, "--wait=false", check=False)


def test_monitored_model_gets_a_service_monitor(
    cluster: Cluster, operator: Operator, optional_apis: None, namespace: str
) -> None:
    name = f"md-{uuid.uuid4().hex[:6]}"
    slo = {
        "errorRatioQuery": 'sum(rate(errors{namespace="{{namespace}}",version="{{version}}"}[5m]))',
        "maxErrorRatio": 0.02,
    }
    _apply(cluster, namespace, name, monitoring={"metricsPort": 9090, "metricsPath": "/stats", "slo": slo})
    obj = _ready_at(cluster, namespace, name, "1.4.0")
    monitored = next(c for c in obj["status"]["conditions"] if c["type"] == "Monitored")
    assert (monitored["status"], monitored["reason"]) == ("True", "ServiceMonitor")
    assert f"SLO alerts in PrometheusRule {name}" in monitored["message"]
    rule = cluster.get("-n", namespace, "prometheusrule", name)["spec"]["groups"][0]["rules"][0]
    assert rule["alert"] == "ModelErrorRatioHigh"
    assert rule["expr"] == f'(sum(rate(errors{{namespace="{namespace}",version="1.4.0"}}[5m]))) > 0.02'
    monitor = cluster.get("-n", namespace, "servicemonitor", name)
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["path"] == "/stats"
    assert monitor["spec"]["selector"] == {"matchLabels": {"plinth.dev/modeldeployment": name}}
    ports = {p["name"]: p["port"] for p in cluster.get("-n", namespace, "service", name)["spec"]["ports"]}
    assert ports == {"http": 8080, "metrics": 9090}
    # Monitoring switched off: the ServiceMonitor and the PrometheusRule go.
    _apply(cluster, namespace, name, monitoring=None)
    for kind in ("servicemonitor", "prometheusrule"):
        wait_for(
            lambda kind=kind: cluster.kubectl("get", "-n", namespace, kind, name, check=False).returncode != 0,
            what=f"{kind} removed",
        )
