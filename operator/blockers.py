"""What keeps a Kubernetes child from being ready, in the child's own words: one reading of Pods, Deployments,
Services and HTTPRoutes shared by the owners' status and ``plinth explain``, so they all say the same thing.

A blocker is ``stalled`` when only a person can clear it (a wrong image, a crashing program, a quota that refuses
the Pod, a missing Secret key); otherwise it is progress that may come by itself (scheduling, image pulls in flight,
a probe that has not passed yet): ``reasons`` says which, with a one-line hint of what to do. Messages come from the
API server, kubelet and controllers; none of them carries a Secret's value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from plinth.operator import reasons
from plinth.operator.api.v1alpha1 import parse_quantity

Manifest = Mapping[str, Any]


@dataclass(frozen=True)
class Blocker:
    """Why one child is not ready."""

    kind: str
    name: str
    reason: str
    message: str
    since: str | None = None

    @property
    def stalled(self) -> bool:
        return reasons.stalled(self.reason)

    @property
    def hint(self) -> str:
        return reasons.fix(self.reason)

    def describe(self) -> str:
        """``Pod web-1: ImagePullBackOff: Back-off pulling image "x" (since 2026-…)``."""
        since = f" (since {self.since})" if self.since else ""
        return f"{self.kind} {self.name}: {self.reason}: {self.message}{since}"

    def as_status(self) -> dict[str, str]:
        """``status.blockedBy``."""
        found = {"kind": self.kind, "name": self.name, "reason": self.reason, "message": self.message[:1024]}
        return found | ({"since": self.since} if self.since else {})

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "reason": self.reason,
            "message": self.message,
            "since": self.since,
            "stalled": self.stalled,
            "hint": self.hint,
        }


def _condition(obj: Manifest, kind: str) -> Mapping[str, Any]:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), {})


def pod(obj: Manifest, events: Iterable[Manifest] = ()) -> Blocker | None:
    """The Pod's blocker: a waiting container's reason, then scheduling, then a readiness probe (with the kubelet's
    last `Unhealthy` event when *events* has one); None when the Pod is Ready or has finished."""
    name = obj["metadata"]["name"]
    status = obj.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed") or _condition(obj, "Ready").get("status") == "True":
        return None
    statuses = [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
    for container in statuses:
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason and reason not in ("ContainerCreating", "PodInitializing"):
            message = waiting.get("message") or f"container {container['name']} is waiting"
            return Blocker("Pod", name, reason, f"container {container['name']}: {message}")
    scheduled = _condition(obj, "PodScheduled")
    if scheduled.get("status") == "False":
        reason = scheduled.get("reason") or reasons.PENDING
        return Blocker("Pod", name, reason, scheduled.get("message") or "", scheduled.get("lastTransitionTime"))
    for container in statuses:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            return Blocker("Pod", name, waiting["reason"], f"container {container['name']} is being created")
    if not statuses:
        return Blocker("Pod", name, reasons.PENDING, "no container has started yet")
    unhealthy = [e for e in events if e.get("reason") == "Unhealthy" and "Readiness" in (e.get("message") or "")]
    ready = _condition(obj, "Ready")
    if unhealthy:
        last = max(unhealthy, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
        return Blocker("Pod", name, reasons.NOT_READY, last.get("message") or "", ready.get("lastTransitionTime"))
    message = ready.get("message") or "containers are running but not ready"
    return Blocker("Pod", name, reasons.NOT_READY, message, ready.get("lastTransitionTime"))


def deployment(obj: Manifest) -> Blocker | None:
    """A Deployment's own refusal: ReplicaFailure (every quota or LimitRange refusal of its Pods), or a rollout past
    its progress deadline."""
    name = obj["metadata"]["name"]
    failure = _condition(obj, "ReplicaFailure")
    if failure.get("status") == "True":
        message = failure.get("message") or ""
        # A quota just created or changed, not counted yet: the ReplicaSet controller's next try will pass.
        uncounted = "status unknown for quota" in message
        reason = reasons.QUOTA_NOT_COUNTED if uncounted else failure.get("reason") or reasons.FAILED_CREATE
        return Blocker("Deployment", name, reason, message, failure.get("lastTransitionTime"))
    progressing = _condition(obj, "Progressing")
    if progressing.get("status") == "False" and progressing.get("reason") == reasons.PROGRESS_DEADLINE_EXCEEDED:
        return Blocker(
            "Deployment",
            name,
            reasons.PROGRESS_DEADLINE_EXCEEDED,
            progressing.get("message") or "",
            progressing.get("lastTransitionTime"),
        )
    return None


def resource_quota(
    name: str, namespace: str | None, hard: Mapping[str, Any], status: Mapping[str, Any]
) -> Blocker | None:
    """A ResourceQuota whose limits *hard* the quota controller has not counted yet: each must be in its *status*,
    under ``hard`` (quota admission enforces status.hard, so until then the old limits hold) and under ``used``
    (admission refuses whatever a limit without a count applies to: "status unknown for quota"; an object count of a
    kind the controller has just discovered is counted a little later than the rest). Keys another manager added to
    the quota may be there too."""
    counted, used = status.get("hard") or {}, status.get("used") or {}
    if all(key in counted and key in used and _same_amount(value, counted[key]) for key, value in hard.items()):
        return None
    message = f"the quota controller has not counted usage under these limits in namespace {namespace} yet"
    return Blocker("ResourceQuota", name, reasons.QUOTA_NOT_COUNTED, message)


def _same_amount(a: Any, b: Any) -> bool:
    try:
        return parse_quantity(a) == parse_quantity(b)
    except ValueError:
        return str(a) == str(b)


SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def service(name: str, slices: Iterable[Manifest]) -> Blocker | None:
    """A Service with no ready endpoint in any of its EndpointSlices, although its Pods are Ready: requests to it
    would find nobody (a selector or named port no Pod matches, or the EndpointSlice controller not caught up yet).
    An endpoint whose ``ready`` is unset counts as ready, as the API says consumers should."""
    for found in slices:
        if (found["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL) != name:
            continue
        if any((e.get("conditions") or {}).get("ready") is not False for e in found.get("endpoints") or []):
            return None
    return Blocker("Service", name, reasons.NO_ENDPOINTS, "no ready endpoint backs it")


def http_route(obj: Manifest, parent: Mapping[str, str]) -> Blocker | None:
    """The HTTPRoute's blocker at *parent* (a parentRef: name and namespace of a Gateway): the controller's own
    refusal (Accepted or ResolvedRefs False), or RoutePending while no controller has answered for that parent; None
    when it is accepted with every backend resolved."""
    meta = obj["metadata"]
    name, namespace = meta["name"], meta.get("namespace")
    want = (parent.get("kind", "Gateway"), parent["name"], parent.get("namespace", namespace))
    for found in (obj.get("status") or {}).get("parents") or []:
        ref = found.get("parentRef") or {}
        if (ref.get("kind", "Gateway"), ref.get("name"), ref.get("namespace", namespace)) != want:
            continue
        conditions = found.get("conditions") or []
        for kind in ("Accepted", "ResolvedRefs"):
            condition = next((c for c in conditions if c.get("type") == kind), None)
            if condition is not None and condition.get("status") == "False":
                reason = condition.get("reason") or kind
                message = condition.get("message") or f"{kind} is False"
                return Blocker("HTTPRoute", name, reason, message, condition.get("lastTransitionTime"))
        if any(c.get("type") == "Accepted" and c.get("status") == "True" for c in conditions):
            return None
    kind, parent_name, parent_namespace = want
    message = f"no controller has accepted it for {kind} {parent_namespace}/{parent_name}"
    return Blocker("HTTPRoute", name, reasons.ROUTE_PENDING, message)


def first(blockers: Iterable[Blocker | None]) -> Blocker | None:
    """The blocker to report: one only a person can clear before one that may pass by itself."""
    found = [b for b in blockers if b is not None]
    return next((b for b in found if b.stalled), found[0] if found else None)
