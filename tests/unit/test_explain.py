"""The blockers read from Pods and Deployments, and `plinth explain`'s rendering (golden files in
tests/data/explain: to change one, delete it, run the test, review what it wrote)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from plinth.operator import blockers, reasons
from plinth.operator.explain import Node, as_json, parse_target, render

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "explain"


def _pod(name: str, *, ready: bool = False, waiting: dict[str, str] | None = None, **status: Any) -> dict[str, Any]:
    containers = [{"name": "app", "restartCount": 0, "state": {"waiting": waiting} if waiting else {"running": {}}}]
    conditions = [
        {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": "2026-12-03T10:00:00Z"}
    ]
    return {
        "metadata": {"name": name, "namespace": "ml"},
        "status": {
            "phase": "Pending" if waiting else "Running",
            "conditions": conditions,
            "containerStatuses": containers,
            **status,
        },
    }


def test_pod_blockers_in_the_kubelets_words() -> None:
    pulling = blockers.pod(_pod("a", waiting={"reason": "ImagePullBackOff", "message": 'Back-off pulling image "x"'}))
    assert pulling is not None and pulling.reason == "ImagePullBackOff" and pulling.stalled
    assert pulling.message == 'container app: Back-off pulling image "x"'
    assert blockers.pod(_pod("b", ready=True)) is None
    unschedulable = _pod("c", containerStatuses=[])
    unschedulable["status"]["conditions"].append(
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes: Insufficient cpu"}
    )
    found = blockers.pod(unschedulable)
    assert found is not None and found.reason == "Unschedulable" and not found.stalled
    probe = [
        {
            "reason": "Unhealthy",
            "message": "Readiness probe failed: HTTP probe failed with statuscode: 503",
            "lastTimestamp": "2026-12-03T10:01:00Z",
        }
    ]
    not_ready = blockers.pod(_pod("d"), probe)
    assert not_ready is not None and not_ready.reason == "NotReady" and "statuscode: 503" in not_ready.message


def test_a_quota_refusal_is_the_deployments_blocker() -> None:
    refused = {
        "metadata": {"name": "web"},
        "status": {
            "conditions": [
                {
                    "type": "ReplicaFailure",
                    "status": "True",
                    "reason": "FailedCreate",
                    "message": 'pods "web-1" is forbidden: failed quota: plinth-quota: must specify '
                    "requests.cpu for: app",
                    "lastTransitionTime": "2026-12-03T10:00:00Z",
                }
            ]
        },
    }
    found = blockers.deployment(refused)
    assert found is not None and found.stalled and "must specify requests.cpu" in found.message
    assert blockers.first([blockers.Blocker("Pod", "p", "NotReady", "m"), found]) is found
    # A quota not counted yet refuses Pods too, until the quota controller catches up: that passes by itself.
    condition = refused["status"]["conditions"][0]
    condition["message"] = 'pods "web-1" is forbidden: status unknown for quota: plinth-quota, resources: pods'
    uncounted = blockers.deployment(refused)
    assert uncounted is not None and (uncounted.reason, uncounted.stalled) == ("QuotaNotCounted", False)


def _tree() -> Node:
    pull = blockers.Blocker("Pod", "web-7d9-x2", "ErrImagePull", "container web: pull access denied", None)
    return Node(
        "PreviewEnvironment",
        "shop",
        "team-a",
        "NotReady",
        "ServicesNotReady: waiting for web 0/1 ready",
        children=[
            Node(
                "Namespace",
                "preview-shop-7-1a2b3c4d",
                None,
                "Active",
                children=[
                    Node(
                        "Deployment",
                        "web",
                        "preview-shop-7-1a2b3c4d",
                        "NotReady",
                        "0/1 available",
                        children=[
                            Node("Pod", "web-7d9-x2", "preview-shop-7-1a2b3c4d", "NotReady", "Pending", pull),
                        ],
                    ),
                    Node("Service", "web", "preview-shop-7-1a2b3c4d", "-", "10.96.4.2:8080"),
                    Node("Secret", "session", "preview-shop-7-1a2b3c4d", "-", "1 keys"),
                ],
            ),
        ],
    )


def _serving_model() -> Node:
    """A model serving, nothing blocked."""
    return Node(
        "ModelDeployment",
        "iris",
        "ml",
        "Ready",
        "Serving: version 1.4.0 serving",
        children=[
            Node(
                "Deployment",
                "iris",
                "ml",
                "Ready",
                "2/2 available",
                children=[
                    Node("Pod", "iris-5c6b7d-q1w2e", "ml", "Ready", "Running"),
                    Node("Pod", "iris-5c6b7d-r3t4y", "ml", "Ready", "Running"),
                ],
            ),
            Node("Service", "iris", "ml", "-", "10.96.0.12:8080"),
        ],
    )


def _quota_being_counted() -> Node:
    """A NamespaceQuota whose new limits the quota controller has not counted yet: progress, not a fault."""
    hard = {"requests.cpu": "2"}
    waiting = blockers.resource_quota("plinth-quota", "team-a", hard, {"hard": {"requests.cpu": "1"}})
    assert waiting is not None
    counted = {"hard": {"requests.cpu": "2000m"}, "used": {"requests.cpu": "0"}}
    assert blockers.resource_quota("plinth-quota", "team-a", hard, counted) is None
    assert blockers.resource_quota("plinth-quota", "team-a", hard, {"hard": {"requests.cpu": "2"}}), "no count yet"
    return Node(
        "NamespaceQuota",
        "team-shop",
        None,
        "NotReady",
        "QuotaNotCounted: the quota controller has not counted usage under the new limits in 1 namespace yet",
        children=[
            Node("ResourceQuota", "plinth-quota", "team-a", "NotReady", "requests.cpu 0/2", waiting),
            Node("LimitRange", "plinth-defaults", "team-a", "-", ""),
        ],
    )


STATES = {"preview-image-pull": _tree, "model-serving": _serving_model, "quota-being-counted": _quota_being_counted}


@pytest.mark.parametrize("state", sorted(STATES))
@pytest.mark.parametrize("form", ["text", "json"])
def test_rendering_is_golden(state: str, form: str) -> None:
    tree = STATES[state]()
    shown = render(tree) if form == "text" else json.dumps(as_json(tree), indent=2) + "\n"
    golden = GOLDEN / f"{state}.{'txt' if form == 'text' else 'json'}"
    if not golden.exists():
        golden.write_text(shown)
        pytest.fail(f"wrote {golden.name}: review it and run the test again")
    assert shown == golden.read_text()


def test_targets() -> None:
    assert parse_target("md/iris") == ("ModelDeployment", "iris")
    assert parse_target("previewenvironments.plinth.dev/shop") == ("PreviewEnvironment", "shop")
    with pytest.raises(ValueError, match="KIND/NAME"):
        parse_target("deployment/web")


def test_a_service_is_blocked_until_a_slice_of_its_own_lists_a_ready_endpoint() -> None:
    def endpoint_slice(service: str, *readiness: bool | None) -> dict[str, Any]:
        endpoints = [{"addresses": ["10.0.0.1"], "conditions": {} if r is None else {"ready": r}} for r in readiness]
        labels = {blockers.SERVICE_NAME_LABEL: service}
        return {"metadata": {"name": f"{service}-x", "labels": labels}, "endpoints": endpoints or None}

    empty = blockers.service("web", [endpoint_slice("web")])
    assert empty is not None and (empty.kind, empty.name, empty.reason, empty.stalled) == (
        "Service",
        "web",
        "NoEndpoints",
        False,
    )
    assert blockers.service("web", []) is not None, "no slice yet"
    assert blockers.service("web", [endpoint_slice("web", False, False)]) is not None, "only unready endpoints"
    assert blockers.service("web", [endpoint_slice("api", True)]) is not None, "another Service's endpoint"
    assert blockers.service("web", [endpoint_slice("web", False), endpoint_slice("web", True)]) is None
    assert blockers.service("web", [endpoint_slice("web", None)]) is None, "unset readiness counts as ready"


def test_a_routes_blocker_is_its_controllers_word_for_that_parent() -> None:
    gateway = {"name": "public", "namespace": "gw"}

    def route(*parents: dict[str, Any]) -> dict[str, Any]:
        return {"metadata": {"name": "iris", "namespace": "ml"}, "status": {"parents": list(parents)}}

    def parent(ref: dict[str, str], **conditions: str) -> dict[str, Any]:
        found = [{"type": t, "status": s, "reason": f"{t}{s}", "message": f"{t} is {s}"} for t, s in conditions.items()]
        return {"parentRef": ref, "controllerName": "example.com/gw", "conditions": found}

    pending = blockers.http_route(route(), gateway)
    assert pending is not None and (pending.reason, pending.stalled) == ("RoutePending", False)
    assert "Gateway gw/public" in pending.message
    other = parent({"kind": "Gateway", "name": "other", "namespace": "gw"}, Accepted="True")
    assert blockers.http_route(route(other), gateway) is not None, "another Gateway's answer says nothing of this one"
    refused = blockers.http_route(route(parent(gateway, Accepted="False")), gateway)
    assert refused is not None and (refused.kind, refused.reason, refused.message) == (
        "HTTPRoute",
        "AcceptedFalse",
        "Accepted is False",
    )
    unresolved = blockers.http_route(route(parent(gateway, Accepted="True", ResolvedRefs="False")), gateway)
    assert unresolved is not None and unresolved.reason == "ResolvedRefsFalse"
    assert blockers.http_route(route(parent(gateway, Accepted="True", ResolvedRefs="True")), gateway) is None
    mesh = {"kind": "Service", "name": "iris", "namespace": "ml"}
    assert (
        blockers.http_route(route(parent({"group": "", "kind": "Service", "name": "iris"}, Accepted="True")), mesh)
        is None
    )


def test_every_reason_is_documented_with_its_condition_and_fix() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "operator.md").read_text()
    for reason in reasons.ALL.values():
        assert f"| `{reason.name}` | {reason.condition} | {reason.fix} |" in text, reason.name


def test_every_reason_the_operator_writes_is_a_constant() -> None:
    """A reason spelled out where it is used escapes the table (and the users' scripts that match on it)."""
    written = re.compile(r'(?:Stalled|Waiting)\(\s*"([A-Za-z]+)"|Observation\(\s*[A-Z_]+,\s*\w+,\s*"([A-Za-z]+)"')
    for path in sorted((Path(__file__).resolve().parents[2] / "operator").rglob("*.py")):
        assert not written.findall(path.read_text()), path
