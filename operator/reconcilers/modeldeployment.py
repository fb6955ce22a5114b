"""ModelDeployment (stable track): serving Deployment, Service, HPA and PDB; status that tells the truth.

Steps: build children -> apply (server-side) -> prune the optional ones no longer wanted (HPA, PDB) -> observe the
Deployment and its Pods -> status. ``Ready`` requires every desired replica of the *desired version* to be
available; crash-looping pods make the object Stalled (the image or model must be fixed), never Ready.
The version that keeps serving during a rollout is ``status.activeVersion``; it moves only when the rollout is
complete, and ``status.history`` records each change.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from plinth.adapters.kubernetes import KubernetesObjects, Manifest, NamespaceTerminating
from plinth.adapters.observability import MetricsQuery, QueryError
from plinth.adapters.secrets import KubernetesSecrets
from plinth.operator import blockers, reasons
from plinth.operator.api.v1alpha1 import (
    Canary,
    CanaryMetricGate,
    ModelDeploymentSpec,
    format_time,
    kind_info,
    parse_duration,
    parse_time,
)
from plinth.operator.blockers import Blocker
from plinth.operator.builders import model
from plinth.operator.conditions import READY, RECONCILING, STALLED, Observation, not_ready
from plinth.operator.errors import Waiting
from plinth.operator.index import RETRY_SECONDS, Timing
from plinth.operator.kinds import ChildKind, KindDescriptor, Watch
from plinth.operator.reconcilers import (
    ChildKey,
    Outcome,
    child_key,
    listed_kinds,
    owned_children,
    owned_pods,
    recording,
)
from plinth.operator.reconcilers.workloads import (
    ENDPOINTS_RECHECK_SECONDS,
    crash_looping,
    endpoint_slices,
    rollout,
)
from plinth.operator.settings import MANAGED_BY_SELECTOR, SERVING_IMAGE
from plinth.operator.telemetry import NO_TELEMETRY, Telemetry

if TYPE_CHECKING:
    from plinth.operator.reconcile import Steps
    from plinth.operator.services import Services

OWN_KINDS = (("apps/v1", "Deployment"), ("v1", "Service"))
OPTIONAL_KINDS = (("autoscaling/v2", "HorizontalPodAutoscaler"), ("policy/v1", "PodDisruptionBudget"))
HTTP_ROUTE = ("gateway.networking.k8s.io/v1", "HTTPRoute")
GATEWAY = ("gateway.networking.k8s.io/v1", "Gateway")
SERVICE_MONITOR = ("monitoring.coreos.com/v1", "ServiceMonitor")
PROMETHEUS_RULE = ("monitoring.coreos.com/v1", "PrometheusRule")
ROUTE_RECHECK_SECONDS = 10.0
HISTORY_LIMIT = 20


def next_history(previous: list[dict[str, Any]], active: str | None, now: str) -> list[dict[str, Any]]:
    """History with *active* as the current entry (older active entries marked Superseded), newest first."""
    history = [dict(h) for h in previous]
    if active is None or (history and history[0]["version"] == active and history[0]["outcome"] == "Active"):
        return history
    for entry in history:
        if entry["outcome"] == "Active":
            entry["outcome"], entry["endedAt"] = "Superseded", now
    return [{"version": active, "startedAt": now, "outcome": "Active"}, *history][:HISTORY_LIMIT]


def next_canary(
    previous: dict[str, Any] | None,
    canary: Canary,
    *,
    ready: int,
    want: int,
    failed: bool,
    now: datetime,
    gate: GateVerdict | None = None,
) -> dict[str, Any]:
    """The canary's next phase. Promoted and RolledBack are final for a version: only a new canary version (or
    removing spec.canary) starts over, so a failed canary is never retried behind the user's back."""
    same = previous is not None and previous.get("version") == canary.version
    state: dict[str, Any] = dict(previous) if same and previous else {"version": canary.version}
    state.setdefault("startedAt", format_time(now))
    phase = state.get("phase", "Progressing")
    if phase in ("Promoted", "RolledBack"):
        return state
    if failed:
        return {**state, "phase": "RolledBack"}
    waited = (now - parse_time(state["startedAt"])).total_seconds()
    if want > 0 and ready >= want:
        if gate is not None and gate.failed:
            return {**state, "phase": "RolledBack", "message": gate.message}
        if phase != "Healthy" or not state.get("healthySince"):
            state.update(phase="Healthy", healthySince=format_time(now))
        if gate is not None:
            state["message"] = gate.message
        promote = canary.auto_promote
        held = gate is not None and gate.hold
        if (
            promote is not None
            and not held
            and (now - parse_time(state["healthySince"])).total_seconds() >= parse_duration(promote.after)
        ):
            state["phase"] = "Promoted"
        return state
    state.pop("healthySince", None)
    if phase == "Progressing" and waited >= parse_duration(canary.rollback.ready_timeout):
        return {**state, "phase": "RolledBack"}  # never became Ready in time
    return {**state, "phase": "Progressing"}


@dataclass(frozen=True)
class GateVerdict:
    """What the metric gate says about a Ready canary: fail it, hold its promotion, or let it go; and why."""

    failed: bool
    hold: bool
    message: str


#: The gate a canary of Plinth's own server gets when the operator has Prometheus and spec.canary.rollback.metric is
#: unset: more than 5% of its inferences answered 5xx over two minutes.
SERVER_ERROR_GATE = CanaryMetricGate(
    query=(
        'sum(rate(plinth_serving_requests_total{namespace="{{namespace}}",version="{{version}}",'
        'endpoint="model_infer",code="5xx"}[2m])) / sum(rate(plinth_serving_requests_total{namespace="{{namespace}}",'
        'version="{{version}}",endpoint="model_infer"}[2m]))'
    ),
    max=0.05,
)


def metric_gate(
    spec: ModelDeploymentSpec, canary: Canary, obj: Manifest, prometheus: MetricsQuery | None
) -> GateVerdict | None:
    """Ask Prometheus about the canary (spec.canary.rollback.metric, or SERVER_ERROR_GATE for Plinth's server). No
    backend, no data or a failing query hold the promotion (never roll back on missing evidence); a value above the
    maximum rolls back."""
    gate = canary.rollback.metric
    if gate is None and prometheus is not None and (canary.image or spec.runtime.image) is None:
        gate = SERVER_ERROR_GATE
    if gate is None:
        return None
    if prometheus is None:
        return GateVerdict(False, True, "metric gate set but the operator has no Prometheus (PLINTH_PROMETHEUS_URL)")
    meta = obj["metadata"]
    promql = (
        gate.query.replace("{{name}}", meta["name"])
        .replace("{{namespace}}", meta["namespace"])
        .replace("{{version}}", canary.version)
    )
    try:
        value = prometheus.value(promql)
    except QueryError as err:
        return GateVerdict(False, True, f"metric gate: {err}"[:500])
    if value is None:
        return GateVerdict(False, True, "metric gate: no data yet")
    if value > gate.max:
        return GateVerdict(True, False, f"metric gate failed: {value:g} > {gate.max:g}")
    return GateVerdict(False, False, f"metric gate ok: {value:g} <= {gate.max:g}")


def reconcile(
    kube: KubernetesObjects,
    obj: Manifest,
    spec: ModelDeploymentSpec,
    *,
    telemetry: Telemetry = NO_TELEMETRY,
    serving_image: str = SERVING_IMAGE,
) -> Outcome:
    try:
        return _reconcile(kube, obj, spec, telemetry, serving_image)
    except NamespaceTerminating as err:
        raise Waiting(reasons.NAMESPACE_TERMINATING, str(err), 5) from err


def _reconcile(
    kube: KubernetesObjects, obj: Manifest, spec: ModelDeploymentSpec, telemetry: Telemetry, serving_image: str
) -> Outcome:
    meta = obj["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    previous = obj.get("status") or {}
    secrets = KubernetesSecrets(kube)
    for field, ref in (
        ("spec.storage.secretRef", spec.storage.secret_ref if spec.storage else None),
        ("spec.auth.secretRef", spec.auth.secret_ref if spec.auth else None),
    ):
        if ref is not None and secrets.read(namespace, ref.name) is None:
            # Pods would hang in ContainerCreating (FailedMount) without saying why: name the Secret instead.
            raise Waiting(reasons.SECRET_NOT_FOUND, f"Secret {namespace}/{ref.name} ({field}) does not exist", 15)
    owner_selector = f"{model.OWNER_LABEL}={name}"
    prev_canary = previous.get("canary") if spec.canary else None
    promoted = (
        spec.canary is not None
        and prev_canary is not None
        and prev_canary.get("version") == spec.canary.version
        and prev_canary.get("phase") == "Promoted"
    )

    monitoring, monitored = _monitoring(kube, obj, spec, previous.get("activeVersion") or spec.model.version)
    children = model.children(obj, spec, model.stable_track(spec, promoted, serving_image), telemetry) + monitoring
    optional = list(OPTIONAL_KINDS)
    monitored_kinds = {c["kind"] for c in monitoring}
    optional += [api for api in (SERVICE_MONITOR, PROMETHEUS_RULE) if api[1] in monitored_kinds or kube.has_api(*api)]
    routes = kube.has_api(*HTTP_ROUTE)
    if routes:
        optional.append(HTTP_ROUTE)
    routed_kinds = {HTTP_ROUTE[1]} if routes and (spec.route is not None or spec.canary is not None) else set()
    live, applied, recorded = _apply_stable(kube, obj, children, optional, owner_selector, applied_later=routed_kinds)
    pods = owned_pods(kube, live, namespace, owner_selector)
    stable_pods = [p for p in pods if p["metadata"]["labels"].get(model.TRACK_LABEL) == "stable"]
    deployment = applied["Deployment"]
    dep_status = deployment.get("status") or {}

    canary_state, canary_ready = _reconcile_canary(
        kube,
        obj,
        spec,
        prev=prev_canary,
        stable_status=dep_status,
        pods=pods,
        telemetry=telemetry,
        live=live,
        serving_image=serving_image,
    )
    if canary_state is not None and canary_state["phase"] == "Promoted" and not promoted:
        # Promote now: the stable track rolls to the canary version (maxUnavailable 0 keeps serving meanwhile).
        promoted = True
        stable_manifest = recording(
            model.deployment(obj, spec, model.stable_track(spec, True, serving_image), telemetry), recorded
        )
        deployment = kube.apply(stable_manifest, live=live.get(child_key(stable_manifest)))
        dep_status = deployment.get("status") or {}
    stable = model.stable_track(spec, promoted, serving_image)
    done, progress = rollout(deployment, stable.replicas)
    active = stable.version if done else previous.get("activeVersion")
    now = format_time()
    history = next_history(previous.get("history") or [], active, now)
    rolled_back_now = (canary_state or {}).get("phase") == "RolledBack" and (prev_canary or {}).get(
        "phase"
    ) != "RolledBack"
    if rolled_back_now and canary_state is not None:
        history = [
            {
                "version": canary_state["version"],
                "startedAt": (prev_canary or {}).get("healthySince") or now,
                "endedAt": now,
                "outcome": "RolledBack",
            },
            *history,
        ][:HISTORY_LIMIT]
    running_canary = canary_state is not None and canary_state["phase"] in ("Progressing", "Healthy")
    stable_ready = dep_status.get("readyReplicas") or 0
    routing = _route_traffic(kube, obj, spec, running=running_canary, canary_ready=canary_ready, live=live)
    routed = routing.split
    if canary_state is not None:
        if routed:
            canary_state["trafficPercent"] = spec.canary.traffic_percent if spec.canary and canary_ready else 0
        else:
            canary_state["trafficPercent"] = (
                round(100 * canary_ready / (stable_ready + canary_ready)) if running_canary and canary_ready else 0
            )
        canary_state["splitBy"] = "HTTPRoute" if routed else "ReplicaRatio"
    status: dict[str, Any] = {
        "url": f"http://{name}.{namespace}.svc.cluster.local:{spec.runtime.port}",
        "activeVersion": active,
        "canaryVersion": canary_state["version"] if running_canary and canary_state else None,
        "canary": canary_state,
        "replicas": dep_status.get("replicas") or 0,
        "readyReplicas": stable_ready,
        "history": history,
    }
    rollout_blocker = (
        None if done else blockers.first([blockers.deployment(deployment), *map(blockers.pod, stable_pods)])
    )
    unserved = _unserved(kube, name, namespace) if done and stable_ready else None
    return Outcome(
        status=status,
        observations=([monitored] if monitored is not None else [])
        + _observe(
            deployment=name,
            stable=stable,
            done=done,
            progress=progress,
            stable_pods=stable_pods,
            canary=canary_state,
            blocker=rollout_blocker,
            serving=unserved or routing.blocker,
        ),
        blocker=rollout_blocker or unserved or routing.blocker,
        # No watch on EndpointSlices or HTTPRoutes: look again until they serve.
        requeue_after=ENDPOINTS_RECHECK_SECONDS
        if unserved is not None
        else ROUTE_RECHECK_SECONDS
        if routing.blocker is not None
        else None,
    )


def _unserved(kube: KubernetesObjects, name: str, namespace: str) -> Blocker | None:
    """Ready Pods serve nobody until the Service lists them."""
    return blockers.service(name, endpoint_slices(kube, namespace, [name]))


def _apply_stable(
    kube: KubernetesObjects,
    obj: Manifest,
    children: list[Manifest],
    optional: list[tuple[str, str]],
    owner_selector: str,
    *,
    applied_later: set[str],
) -> tuple[dict[ChildKey, Manifest], dict[str, Manifest], set[str]]:
    """Prune the optional children no longer wanted, then apply the stable track's children. Reads the own kinds,
    then only the optional kinds wanted now (among *children*, or *applied_later* by the caller) or recorded on the
    stable Deployment (``recording``). Pruning first lets the record name just the kinds wanted: should the apply
    fail, the old record still leads the next reconcile to what is left. Returns the children as read, those applied
    by kind, and the optional kinds recorded."""
    namespace = obj["metadata"]["namespace"]
    live = owned_children(kube, list(OWN_KINDS), namespace, owner_selector)
    optional_names = {kind for _, kind in optional}
    wanted = ({c["kind"] for c in children} | applied_later) & optional_names
    stable = live.get(("Deployment", obj["metadata"]["name"]))
    live |= owned_children(kube, listed_kinds(optional, wanted, stable), namespace, owner_selector)
    for (kind, child_name), child in live.items():
        if kind in optional_names and kind not in wanted:
            kube.delete(child["apiVersion"], kind, child_name, namespace=namespace)
    children = [recording(c, wanted) if c["kind"] == "Deployment" else c for c in children]
    applied = {c["kind"]: kube.apply(c, live=live.get(child_key(c))) for c in children}
    return live, applied, wanted


def _monitoring(
    kube: KubernetesObjects, obj: Manifest, spec: ModelDeploymentSpec, active_version: str
) -> tuple[list[Manifest], Observation | None]:
    """ServiceMonitor and SLO PrometheusRule where the cluster serves them (detected, never an error when absent),
    and the Monitored condition saying which applies."""
    if spec.effective_monitoring is None:
        return [], None
    children: list[Manifest] = []
    monitor = kube.has_api(*SERVICE_MONITOR)
    if monitor:
        children.append(model.service_monitor(obj, spec))
    how = "scraped through a ServiceMonitor" if monitor else "prometheus.io/* annotations (no ServiceMonitor CRD)"
    rule = model.prometheus_rule(obj, spec, active_version)
    if rule is not None and kube.has_api(*PROMETHEUS_RULE):
        children.append(rule)
        how += f"; SLO alerts in PrometheusRule {obj['metadata']['name']}"
    elif rule is not None:
        how += "; SLO alerts not created: the cluster serves no PrometheusRule"
    reason = reasons.SERVICE_MONITOR if monitor else reasons.SCRAPE_ANNOTATIONS
    return children, Observation("Monitored", True, reason, how)


@dataclass(frozen=True)
class Routing:
    """What the model's HTTPRoute does: whether a Gateway API implementation splits the canary's traffic by its
    weights, and what keeps spec.route from serving (None when it serves, or is unset)."""

    split: bool
    blocker: Blocker | None = None


def _route_traffic(
    kube: KubernetesObjects,
    obj: Manifest,
    spec: ModelDeploymentSpec,
    *,
    running: bool,
    canary_ready: int,
    live: dict[ChildKey, Manifest],
) -> Routing:
    """The HTTPRoute, where the cluster serves Gateway API: for spec.route, always (all requests to the Service, or
    split while a canary runs); without spec.route, only while a canary runs (attached to the Service, for a mesh).
    A canary's weight is 0 until one of its pods is Ready, so no request meets an empty backend. Traffic counts as
    split by the route only once an implementation has accepted it: a route nobody serves splits nothing."""
    name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
    canary_split = running and spec.canary is not None
    if not kube.has_api(*HTTP_ROUTE):
        if spec.route is None:
            return Routing(False)
        message = "spec.route needs the Gateway API CRDs (HTTPRoute), which this cluster does not serve"
        return Routing(False, Blocker("HTTPRoute", name, reasons.GATEWAY_API_NOT_INSTALLED, message))
    had_canary = bool((obj.get("status") or {}).get("canary"))
    if canary_split and spec.canary is not None:
        for track in ("stable", "canary"):
            service = model.track_service(obj, spec, track)
            kube.apply(service, live=live.get(child_key(service)))
    elif had_canary:
        for track in ("stable", "canary"):
            kube.delete("v1", "Service", f"{name}-{track}", namespace=namespace)
    if not canary_split and spec.route is None:
        for kind, child in list(live):
            if kind == HTTP_ROUTE[1]:
                kube.delete(*HTTP_ROUTE, child, namespace=namespace)
        return Routing(False)
    percent = (spec.canary.traffic_percent if canary_ready else 0) if canary_split and spec.canary else None
    desired = model.http_route(obj, spec, percent)
    route = kube.apply(desired, live=live.get(child_key(desired)))
    blocker: Blocker | None = None
    if spec.route is not None:
        gateway = spec.route.gateway
        if kube.get(*GATEWAY, gateway.name, namespace=gateway.namespace) is None:
            blocker = Blocker(
                "HTTPRoute",
                name,
                reasons.GATEWAY_NOT_FOUND,
                f"Gateway {gateway.namespace}/{gateway.name} does not exist",
            )
        else:
            blocker = blockers.http_route(route, {"name": gateway.name, "namespace": gateway.namespace})
        split = blocker is None
    else:
        split = blockers.http_route(route, {"kind": "Service", "name": name, "namespace": namespace}) is None
    return Routing(canary_split and split, blocker)


def _reconcile_canary(
    kube: KubernetesObjects,
    obj: Manifest,
    spec: ModelDeploymentSpec,
    *,
    prev: dict[str, Any] | None,
    stable_status: dict[str, Any],
    pods: list[Manifest],
    telemetry: Telemetry,
    live: dict[ChildKey, Manifest],
    serving_image: str,
) -> tuple[dict[str, Any] | None, int]:
    """Run, judge and retire the canary Deployment; returns the canary status and its ready replicas."""
    namespace = obj["metadata"]["namespace"]
    canary_name = model.deployment_name(obj, "canary")
    canary = spec.canary
    stable_count = stable_status.get("replicas") or spec.fixed_replicas or 1
    track = model.canary_track(spec, stable_count, serving_image) if canary is not None else None
    final = (
        prev is not None
        and canary is not None
        and prev.get("version") == canary.version
        and prev.get("phase") in ("Promoted", "RolledBack")
    )
    if canary is None or track is None or final:
        # Only when there may be one: canary pods, or spec.canary just removed (the canary is in the last status).
        had = (canary is None and bool((obj.get("status") or {}).get("canary"))) or any(
            p["metadata"]["labels"].get(model.TRACK_LABEL) == "canary" for p in pods
        )
        if had:
            kube.delete("apps/v1", "Deployment", canary_name, namespace=namespace)
        return (dict(prev) if final and prev else None), 0
    canary_manifest = model.deployment(obj, spec, track, telemetry)
    dep = kube.apply(canary_manifest, live=live.get(child_key(canary_manifest)))
    canary_pods = [
        p
        for p in pods
        if p["metadata"]["labels"].get(model.TRACK_LABEL) == "canary"
        and p["metadata"]["labels"].get(model.VERSION_LABEL) == track.version
    ]
    failed = bool(crash_looping(canary_pods, canary.rollback.max_restarts))
    ready = (dep.get("status") or {}).get("readyReplicas") or 0
    done, _ = rollout(dep, track.replicas)
    want = track.replicas or 0
    gate = metric_gate(spec, canary, obj, telemetry.prometheus) if done and want and ready >= want else None
    state = next_canary(
        prev, canary, ready=ready if done else 0, want=want, failed=failed, now=datetime.now(UTC), gate=gate
    )
    state.update(replicas=(dep.get("status") or {}).get("replicas") or 0, readyReplicas=ready)
    if state["phase"] in ("Promoted", "RolledBack"):
        kube.delete("apps/v1", "Deployment", canary_name, namespace=namespace)
    return state, ready


def _observe(
    *,
    deployment: str,
    stable: model.Track,
    done: bool,
    progress: str,
    stable_pods: list[Manifest],
    canary: dict[str, Any] | None,
    blocker: Blocker | None,
    serving: Blocker | None = None,
) -> list[Observation]:
    """*blocker* keeps the rollout from completing; *serving*, what keeps a completed one from serving (a Service
    without endpoints, a route not accepted)."""
    crashing = crash_looping(stable_pods)
    observations: list[Observation] = []
    phase = (canary or {}).get("phase")
    if canary is not None:
        healthy = phase != "RolledBack"
        reason = {
            "Progressing": reasons.CANARY_STARTING,
            "Healthy": reasons.CANARY_HEALTHY,
            "Promoted": reasons.CANARY_PROMOTED,
            "RolledBack": reasons.CANARY_ROLLED_BACK,
        }[phase or "Progressing"]
        message = {
            "Progressing": f"canary {canary['version']}: {canary.get('readyReplicas', 0)} replicas ready",
            "Healthy": f"canary {canary['version']} healthy since {canary.get('healthySince')}"
            + (f"; {canary['message']}" if canary.get("message") else ""),
            "Promoted": f"canary {canary['version']} promoted: set spec.model.version to it and remove spec.canary",
            "RolledBack": f"canary {canary['version']} failed its health gate ("
            + (canary.get("message") or "crash loop, restarts, or not Ready within rollback.readyTimeout")
            + ") and was removed; the stable version keeps serving",
        }[phase or "Progressing"]
        if phase != "Progressing":
            observations.append(Observation("CanaryHealthy", healthy, reason, message))
    if crashing:
        observations.append(
            Observation(
                STALLED,
                True,
                reasons.CRASH_LOOP_BACK_OFF,
                f"Deployment {deployment}: pods crash-loop ({', '.join(crashing[:5])}): check the image, args and "
                f"model URI of version {stable.version}",
            )
        )
    elif phase == "RolledBack":
        observations.append(
            Observation(
                STALLED,
                True,
                reasons.CANARY_ROLLED_BACK,
                f"canary {canary['version']} was rolled back: change or remove spec.canary" if canary else "",
            )
        )
    elif not done and blocker is not None and blocker.stalled:
        message = f"version {stable.version}: {blocker.describe()}: {blocker.hint}"
        observations.append(Observation(STALLED, True, blocker.reason, message[:1024]))
    elif not done:
        waiting = f"; {blocker.describe()}" if blocker is not None else ""
        observations.append(
            Observation(
                RECONCILING, True, reasons.ROLLOUT_IN_PROGRESS, f"version {stable.version}: {progress}{waiting}"[:1024]
            )
        )
    elif serving is not None and serving.stalled:
        observations.append(Observation(STALLED, True, serving.reason, f"{serving.describe()}: {serving.hint}"[:1024]))
    elif serving is not None:
        observations.append(Observation(RECONCILING, True, serving.reason, serving.describe()[:1024]))
    elif phase == "Progressing" and canary is not None:
        observations.append(
            Observation(
                RECONCILING,
                True,
                reasons.CANARY_STARTING,
                f"canary {canary['version']}: {canary.get('readyReplicas', 0)} replicas ready",
            )
        )
    else:
        observations.append(Observation(READY, True, reasons.SERVING, f"version {stable.version} serving"))
    return observations


# -- the kind ---------------------------------------------------------------------------------------------------------

# A canary's health gate and autoPromote.after are time-based: re-checked this often while a canary is set.
CANARY_SECONDS = 10


def timing(body: Manifest) -> Timing:
    """A canary is re-checked every CANARY_SECONDS; an object not Ready at its generation is retried from
    RETRY_SECONDS on, less often the longer it waits (a reconcile that failed before it could ask for a retry leaves
    nothing else to do it)."""
    if (body.get("spec") or {}).get("canary"):
        return Timing(every=CANARY_SECONDS)
    return Timing(every=RETRY_SECONDS, waiting=True) if not_ready(body) else Timing()


def _namespaced_name(obj: Manifest) -> str:
    return f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"


def _owner(child: Manifest) -> str:
    meta = child["metadata"]
    return f"{meta.get('namespace')}/{(meta.get('labels') or {}).get(model.OWNER_LABEL)}"


def _steps(services: Services) -> Steps:
    return functools.partial(reconcile, telemetry=services.telemetry, serving_image=services.settings.serving_image)


# Rollout progress and readiness show up on the Deployment first: its events reconcile the model.
KIND = KindDescriptor(
    info=kind_info("ModelDeployment"),
    key=_namespaced_name,
    timing=timing,
    steps=_steps,
    children=(
        ChildKind(*OWN_KINDS[0], "deployments", watch=Watch(MANAGED_BY_SELECTOR, model.OWNER_LABEL, _owner)),
        ChildKind(*OWN_KINDS[1], "services"),
        ChildKind(*OPTIONAL_KINDS[0], "horizontalpodautoscalers"),
        ChildKind(*OPTIONAL_KINDS[1], "poddisruptionbudgets"),
        ChildKind(*HTTP_ROUTE, "httproutes"),
    ),
)
