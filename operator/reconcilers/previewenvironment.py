"""PreviewEnvironment: a namespace per pull request with its services, models, secrets and public URL.

Steps: lifecycle (ttl -> expiry, sleepAfter -> asleep) -> checks that need no writes (secret sources, ingress class,
Gateway API) -> the namespace, labelled for NamespaceQuota and annotated with what it will run -> the quota gate
(nothing runs until the NamespaceQuota reserved room for all of it) -> secrets -> workloads, routes, models ->
prune what the spec no longer names -> observe readiness.

Never half-apply: every check that can refuse the preview runs before the first write, and a preview that is refused
keeps whatever it already ran. Deleting the namespace (and waiting for it to be gone) is ``finalize``'s job.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from plinth.adapters.kubernetes import KubernetesObjects, Manifest, NamespaceTerminating
from plinth.adapters.secrets import KubernetesSecrets, Secrets, StoredSecret, random_value
from plinth.operator import blockers, reasons
from plinth.operator.api.conversion import internal
from plinth.operator.api.served import STORED_API_VERSION
from plinth.operator.api.v1alpha1 import (
    NamespaceQuotaSpec,
    PreviewEnvironmentSpec,
    format_time,
    kind_info,
    parse_duration,
    parse_quantity,
    parse_time,
)
from plinth.operator.blockers import Blocker
from plinth.operator.builders import preview, quota
from plinth.operator.conditions import READY, RECONCILING, STALLED, Observation, not_ready
from plinth.operator.errors import ReconcileError, Stalled, Waiting
from plinth.operator.index import Timing
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
from plinth.operator.reconcilers.claims import owner_of, select_namespaces
from plinth.operator.reconcilers.workloads import (
    ENDPOINTS_RECHECK_SECONDS,
    crash_looping,
    endpoint_slices,
    rollout,
)
from plinth.operator.settings import FINALIZER, MANAGED_BY_SELECTOR
from plinth.operator.telemetry import NO_TELEMETRY, Telemetry

if TYPE_CHECKING:
    from plinth.operator.reconcile import Steps
    from plinth.operator.services import Services

# Opt-in of a Secret in another namespace: a comma-separated list of namespaces allowed to copy it.
SECRET_OPT_IN_ANNOTATION = "plinth.dev/preview-namespaces"
SECRETS_READY = "SecretsReady"
QUOTA_EXCEEDED = "QuotaExceeded"  # the condition; its reason is reasons.QUOTA_EXCEEDED
# Kinds a preview prunes in its namespace when the spec no longer names them (by owner label).
PRUNED_KINDS = (
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("networking.k8s.io/v1", "Ingress"),
    (STORED_API_VERSION, "ModelDeployment"),
)
HTTP_ROUTE = ("gateway.networking.k8s.io/v1", "HTTPRoute")
GATEWAY = ("gateway.networking.k8s.io/v1", "Gateway")


def lifecycle(previous: dict[str, Any], generation: int, spec: PreviewEnvironmentSpec, now: datetime) -> dict[str, Any]:
    """lastUpdate, expiresAt and sleeping. A new generation (a push, a ttl bump) restarts both clocks."""
    last = previous.get("lastUpdate") or {}
    if last.get("generation") != generation or not last.get("time"):
        last = {"generation": generation, "time": format_time(now)}
    updated = parse_time(last["time"])
    expires = updated + timedelta(seconds=parse_duration(spec.ttl))
    asleep = spec.sleep_after is not None and now >= updated + timedelta(seconds=parse_duration(spec.sleep_after))
    return {"lastUpdate": last, "expiresAt": format_time(expires), "sleeping": asleep}


def is_expired(status: dict[str, Any], now: datetime) -> bool:
    expires = status.get("expiresAt")
    return isinstance(expires, str) and now >= parse_time(expires)


def next_event(spec: PreviewEnvironmentSpec, status: dict[str, Any]) -> datetime | None:
    """When the next time-based change is due (falling asleep or expiring), from the last written status."""
    last = (status.get("lastUpdate") or {}).get("time")
    if not last or not status.get("expiresAt"):
        return None
    moments = [parse_time(status["expiresAt"])]
    if spec.sleep_after is not None and not status.get("sleeping"):
        moments.append(parse_time(last) + timedelta(seconds=parse_duration(spec.sleep_after)))
    return min(moments)


def reconcile(
    kube: KubernetesObjects, obj: Manifest, spec: PreviewEnvironmentSpec, *, telemetry: Telemetry = NO_TELEMETRY
) -> Outcome:
    status: dict[str, Any] = {}
    try:
        return _reconcile(kube, obj, spec, status, telemetry)
    except ReconcileError as err:
        err.status = {**status, **err.status}  # namespace, expiresAt... are known even when something blocks
        raise
    except NamespaceTerminating as err:
        raise Waiting(reasons.NAMESPACE_TERMINATING, str(err), 5, status) from err


def _reconcile(
    kube: KubernetesObjects,
    obj: Manifest,
    spec: PreviewEnvironmentSpec,
    status: dict[str, Any],
    telemetry: Telemetry,
) -> Outcome:
    meta = obj["metadata"]
    name, home = meta["name"], meta["namespace"]
    now = datetime.now(UTC)
    status["namespace"] = preview.namespace_name(obj)
    status.update(lifecycle(obj.get("status") or {}, meta.get("generation") or 0, spec, now))
    if is_expired(status, now):
        kube.delete(STORED_API_VERSION, "PreviewEnvironment", name, namespace=home)
        return Outcome(
            status=status,
            observations=[
                Observation(RECONCILING, True, reasons.EXPIRED, f"ttl expired at {status['expiresAt']}; deleting")
            ],
        )
    _check_team(kube, home, spec.team)
    secrets = KubernetesSecrets(kube)
    sources = _resolve_secret_sources(secrets, obj, spec)  # raises before any write when a source is refused
    _check_routing(kube, spec)

    if FINALIZER not in (meta.get("finalizers") or []):
        # Nothing is created before the finalizer that cleans it up is in place: a preview deleted in between (the
        # operator killed before its finalizer landed) would otherwise leave its namespace behind for good.
        raise Waiting(
            reasons.FINALIZER_PENDING, "waiting for the cleanup finalizer before creating the namespace", 1, status
        )
    target = status["namespace"]
    current_ns = kube.get("v1", "Namespace", target)
    if current_ns is not None:
        ns_meta = current_ns["metadata"]
        if (ns_meta.get("labels") or {}).get(preview.OWNER_UID_LABEL) != meta["uid"]:
            raise Stalled(
                reasons.NAMESPACE_CONFLICT,
                f"namespace {target} exists and was not created for this PreviewEnvironment; it is left untouched",
            )
        if ns_meta.get("deletionTimestamp"):
            raise Waiting(reasons.NAMESPACE_TERMINATING, f"namespace {target} is still being deleted", 5)
    claim = _namespace_quota(kube, obj, spec)
    defaults = claim.defaults if claim is not None else None
    request = preview.quota_request(
        spec,
        defaults.request if defaults else None,
        defaults.limit if defaults else None,
        sleeping=status["sleeping"],
    )
    sleeping = bool(status["sleeping"])
    desired = _children(obj, spec, sleeping, telemetry)
    wanted = {child["kind"] for child in desired}
    # Nothing can be in a namespace that does not exist yet; otherwise the kinds wanted and those it records.
    listed = listed_kinds(_pruned_kinds(spec), wanted, current_ns) if current_ns is not None else []
    live = owned_children(kube, listed, target, _owned(obj))
    # The record keeps kinds that will be pruned below until they are: a reconcile that stops halfway still reads them.
    has = wanted | {kind for kind, _ in live}
    live_ns = kube.apply(recording(preview.namespace(obj, spec, request), has), live=current_ns)

    if claim is not None and not any(kind == "Deployment" for kind, _ in live):
        blocked = _quota_gate(kube, target, claim, request)
        if blocked is not None:
            return Outcome(
                status=status, observations=[blocked], requeue_after=2 if blocked.reason == "QuotaPending" else 30
            )

    written = _write_secrets(secrets, obj, spec, sources)
    for stale in set((obj.get("status") or {}).get("secrets") or []) - set(written):
        secrets.delete(target, stale)
    status["secrets"] = sorted(written)

    applied = [kube.apply(child, live=live.get(child_key(child))) for child in desired]
    _prune(kube, target, live, desired)
    if has != wanted:  # a kind is gone entirely: the record no longer needs to name it
        kube.apply(recording(preview.namespace(obj, spec, request), wanted), live=live_ns)

    status["url"] = next(iter(preview.urls(obj, spec).values()), None)
    pods = owned_pods(kube, live, target, _owned(obj))
    return _observe(obj, spec, status, applied, pods, kube=kube, target=target)


def finalize(kube: KubernetesObjects, obj: Manifest) -> bool:
    """Delete the preview namespace (and so everything in it); True once it is gone. Only a namespace labelled with
    this PreviewEnvironment's uid is deleted: never one that merely has the same name."""
    target = preview.namespace_name(obj)
    current = kube.get("v1", "Namespace", target)
    if current is None:
        return True
    if (current["metadata"].get("labels") or {}).get(preview.OWNER_UID_LABEL) != obj["metadata"]["uid"]:
        return True
    if not current["metadata"].get("deletionTimestamp"):
        kube.delete("v1", "Namespace", target)
    return False


# -- checks before any write ----------------------------------------------------------------------------------------


def opted_in(secret: StoredSecret, namespace: str) -> bool:
    """Whether *secret* (in another namespace) allows previews from *namespace* to copy it."""
    allowed = secret.annotations.get(SECRET_OPT_IN_ANNOTATION, "")
    return namespace in {part.strip() for part in allowed.split(",")}


def _resolve_secret_sources(secrets: Secrets, obj: Manifest, spec: PreviewEnvironmentSpec) -> dict[str, StoredSecret]:
    """Every copyFrom source, read and authorised. Refusals and missing sources stop the reconcile before any write,
    naming the Secret (never a value)."""
    home = obj["metadata"]["namespace"]
    found: dict[str, StoredSecret] = {}
    for entry in spec.secrets:
        source = entry.copy_from
        if source is None:
            continue
        namespace = source.namespace or home
        secret = secrets.read(namespace, source.name)
        if namespace != home and (secret is None or not opted_in(secret, home)):
            # An opt-in withdrawn: the copy made under it goes too.
            _remove_copy(secrets, obj, entry.secret_name, f"{namespace}/{source.name}")
            # A missing Secret elsewhere is refused the same way: its existence is not ours to reveal.
            raise Stalled(
                reasons.SECRET_COPY_REFUSED,
                f"Secret {namespace}/{source.name} may not be copied: only Secrets in {home}, or Secrets whose "
                f"{SECRET_OPT_IN_ANNOTATION} annotation lists {home}, can be copied",
            )
        if secret is None:
            raise Waiting(reasons.SECRET_NOT_FOUND, f"Secret {namespace}/{source.name} to copy does not exist", 15)
        found[entry.secret_name] = secret
    return found


def _remove_copy(secrets: Secrets, obj: Manifest, name: str, source: str) -> None:
    """Delete the copy of *source* in this preview's namespace (only a copy Plinth made from that source)."""
    copy = secrets.read(preview.namespace_name(obj), name)
    ours = copy is not None and copy.labels.get(preview.OWNER_LABEL) == obj["metadata"]["name"]
    if ours and copy is not None and copy.annotations.get(preview.COPIED_FROM_ANNOTATION) == source:
        secrets.delete(preview.namespace_name(obj), name)


def _check_team(kube: KubernetesObjects, home: str, team: str) -> None:
    """A team namespace labelled plinth.dev/team may only create previews for that team: otherwise anyone allowed to
    create a PreviewEnvironment could spend another team's quota."""
    namespace = kube.get("v1", "Namespace", home)
    owner_team = ((namespace or {}).get("metadata", {}).get("labels") or {}).get(preview.TEAM_LABEL)
    if owner_team is not None and owner_team != team:
        raise Stalled(
            reasons.TEAM_MISMATCH,
            f"spec.team is {team!r} but namespace {home} belongs to team {owner_team!r} (label {preview.TEAM_LABEL})",
        )


def _check_routing(kube: KubernetesObjects, spec: PreviewEnvironmentSpec) -> None:
    ingress = spec.ingress
    if ingress is None or not any(s.expose for s in spec.services):
        return
    if ingress.gateway is not None:
        if not kube.has_api(*HTTP_ROUTE):
            raise Stalled(
                reasons.GATEWAY_API_NOT_INSTALLED,
                "spec.ingress.gateway needs the Gateway API CRDs (HTTPRoute), which this cluster does not serve",
            )
        gateway = ingress.gateway
        if kube.get(GATEWAY[0], GATEWAY[1], gateway.name, namespace=gateway.namespace) is None:
            raise Stalled(reasons.GATEWAY_NOT_FOUND, f"Gateway {gateway.namespace}/{gateway.name} does not exist")
        return
    if ingress.class_name and kube.get("networking.k8s.io/v1", "IngressClass", ingress.class_name) is None:
        raise Stalled(reasons.INGRESS_CLASS_NOT_FOUND, f"IngressClass {ingress.class_name} does not exist")


def _namespace_quota(kube: KubernetesObjects, obj: Manifest, spec: PreviewEnvironmentSpec) -> NamespaceQuotaSpec | None:
    """The NamespaceQuota that governs the preview namespace (the oldest that selects its labels), if any."""
    labels = preview.namespace(obj, spec, {})["metadata"]["labels"]
    candidate = {"metadata": {"name": preview.namespace_name(obj), "labels": labels}}
    claimants = []
    for nsq in map(internal, kube.list(STORED_API_VERSION, "NamespaceQuota")):
        try:
            nsq_spec = NamespaceQuotaSpec.model_validate(nsq.get("spec") or {})
        except ValueError:
            continue
        if select_namespaces(nsq_spec, [candidate]):
            claimants.append((nsq, nsq_spec))
    if not claimants:
        return None
    winner = owner_of(candidate["metadata"]["name"], [c[0] for c in claimants])
    return next(s for q, s in claimants if q is winner)


def _quota_gate(
    kube: KubernetesObjects, namespace: str, claim: NamespaceQuotaSpec, request: dict[str, str]
) -> Observation | None:
    """Before the first workload: the NamespaceQuota must have reserved everything the preview will run."""
    if claim.total is None and claim.per_namespace is None:
        return None
    rq = kube.get("v1", "ResourceQuota", quota.QUOTA_NAME, namespace=namespace)
    if rq is None:
        return Observation(
            RECONCILING, True, reasons.QUOTA_PENDING, f"waiting for NamespaceQuota limits in {namespace}"
        )
    hard = (rq.get("spec") or {}).get("hard") or {}
    short = [
        f"{res} needs {amount}, allowed {hard[res]}"
        for res, amount in sorted(request.items())
        if res in hard and parse_quantity(amount) > parse_quantity(hard[res])
    ]
    if not short:
        return None
    total = claim.total.hard if claim.total else {}
    context = ", ".join(f"{res} total {total[res]}" for res in sorted(total) if res in request)
    return Observation(
        QUOTA_EXCEEDED,
        True,
        reasons.QUOTA_EXCEEDED,
        f"the team's NamespaceQuota has no room for this preview: {'; '.join(short)}"
        + (f" ({context})" if context else "")
        + "; it is provisioned as soon as room appears",
    )


# -- writes ---------------------------------------------------------------------------------------------------------


def _write_secrets(
    secrets: Secrets, obj: Manifest, spec: PreviewEnvironmentSpec, sources: dict[str, StoredSecret]
) -> list[str]:
    """Copies (refreshed from their source every reconcile) and generated Secrets (values kept once made)."""
    target = preview.namespace_name(obj)
    written = []
    for entry in spec.secrets:
        name = entry.secret_name
        if entry.copy_from is not None:
            source = sources[name]
            src = {
                "metadata": {"namespace": source.namespace, "name": source.name},
                "type": source.type,
                "data": dict(source.data),
            }
            copy = preview.copied_secret(obj, name, src)
            current = secrets.read(target, name)
            if current is not None and current.type != copy["type"]:
                secrets.delete(target, name)  # a Secret's type is immutable: the source was recreated with another
                current = None
            secrets.write(copy, current=current)
        elif entry.generate is not None:
            existing = secrets.read(target, name)
            data = dict(existing.data) if existing is not None else {}
            missing = [key for key in entry.generate.keys if key not in data]
            kept = {key: data[key] for key in entry.generate.keys if key in data}
            if missing or existing is None or set(data) != set(kept):
                kept.update({key: random_value(entry.generate.length) for key in missing})
                secrets.write(preview.generated_secret(obj, name, kept))
        written.append(name)
    return written


def _children(obj: Manifest, spec: PreviewEnvironmentSpec, sleeping: bool, telemetry: Telemetry) -> list[Manifest]:
    children: list[Manifest] = []
    for svc in spec.services:
        children += [preview.deployment(obj, spec, svc, sleeping, telemetry), preview.service(obj, svc)]
    route = preview.ingress(obj, spec)
    if route is not None:
        children.append(route)
    children += preview.http_routes(obj, spec)
    raw_models = {m["name"]: m.get("spec") or {} for m in (obj.get("spec") or {}).get("models") or []}
    children += [preview.model_deployment(obj, m, raw_models[m.name], sleeping) for m in spec.models]
    return children


def _owned(obj: Manifest) -> str:
    return f"{preview.OWNER_LABEL}={obj['metadata']['name']}"


def _pruned_kinds(spec: PreviewEnvironmentSpec) -> list[tuple[str, str]]:
    kinds = list(PRUNED_KINDS)
    if spec.ingress is not None and spec.ingress.gateway is not None:
        kinds.append(HTTP_ROUTE)
    return kinds


def _prune(kube: KubernetesObjects, target: str, live: dict[ChildKey, Manifest], desired: list[Manifest]) -> None:
    """Delete the children the spec no longer names."""
    wanted = {child_key(c) for c in desired}
    for (kind, name), child in live.items():
        if (kind, name) not in wanted:
            kube.delete(child["apiVersion"], kind, name, namespace=target)


# -- observation ----------------------------------------------------------------------------------------------------


def quota_failure(deployment: Manifest) -> str | None:
    """The Deployment's ReplicaFailure message when ResourceQuota admission refused its pods."""
    for cond in (deployment.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            message = str(cond.get("message") or "")
            if "exceeded quota" in message:
                return message
    return None


def _observe(
    obj: Manifest,
    spec: PreviewEnvironmentSpec,
    status: dict[str, Any],
    applied: list[Manifest],
    pods: list[Manifest],
    *,
    kube: KubernetesObjects,
    target: str,
) -> Outcome:
    sleeping = bool(status["sleeping"])
    urls = preview.urls(obj, spec)
    deployments = {d["metadata"]["name"]: d for d in applied if d["kind"] == "Deployment"}
    services_status = []
    waiting: list[str] = []
    crashing: list[str] = []
    quota_refusals: list[str] = []
    stuck: list[tuple[str, Blocker]] = []  # services held by what only a change can fix (a wrong image, ...)
    found_blockers: list[Blocker | None] = []
    rolled_out: list[str] = []
    for svc in spec.services:
        dep_status = deployments[svc.name].get("status") or {}
        want = 0 if sleeping else svc.replicas
        ready = dep_status.get("readyReplicas") or 0
        entry: dict[str, Any] = {"name": svc.name, "replicas": dep_status.get("replicas") or 0, "readyReplicas": ready}
        if svc.name in urls:
            entry["url"] = urls[svc.name]
        services_status.append(entry)
        own_pods = [p for p in pods if (p["metadata"].get("labels") or {}).get(preview.SERVICE_LABEL) == svc.name]
        if want and crash_looping(own_pods):
            crashing.append(svc.name)
        elif (refusal := quota_failure(deployments[svc.name])) is not None and ready < want:
            quota_refusals.append(f"{svc.name}: {refusal}")
        elif not rollout(deployments[svc.name], want)[0]:
            # Not before the Deployment controller has seen this template and rolled it out on every replica.
            found = blockers.first([blockers.deployment(deployments[svc.name]), *map(blockers.pod, own_pods)])
            found_blockers.append(found)
            if found is not None and found.stalled:
                stuck.append((svc.name, found))
            waiting.append(f"{svc.name} {ready}/{want} ready" + (f" ({found.describe()})" if found else ""))
        elif want:
            rolled_out.append(svc.name)
    # Ready Pods serve nobody until their Service lists them.
    slices = endpoint_slices(kube, target, rolled_out)
    unserved = [b for svc_name in rolled_out if (b := blockers.service(svc_name, slices)) is not None]
    for found in unserved:
        found_blockers.append(found)
        waiting.append(f"{found.name} ({found.describe()})")
    status["services"] = services_status
    models_waiting = [
        f"{m['metadata']['name']} ({_ready_message(m)})"
        for m in applied
        if m["kind"] == "ModelDeployment" and not sleeping and not _is_ready(m)
    ]
    observations = [
        Observation(SECRETS_READY, True, reasons.SECRETS_WRITTEN, f"{len(status['secrets'])} secrets in place")
    ]
    if crashing:
        observations.append(
            Observation(
                STALLED,
                True,
                reasons.CRASH_LOOP_BACK_OFF,
                f"service {', '.join(crashing)} crash-loops: check its image, command and env",
            )
        )
    elif quota_refusals:
        observations.append(Observation(QUOTA_EXCEEDED, True, reasons.QUOTA_EXCEEDED, "; ".join(quota_refusals)[:1024]))
    elif stuck:
        service, found = stuck[0]
        message = f"service {service}: {found.describe()}: {found.hint}"
        observations.append(Observation(STALLED, True, found.reason, message[:1024]))
    elif waiting or models_waiting:
        observations.append(
            Observation(
                RECONCILING,
                True,
                reasons.SERVICES_NOT_READY,
                f"waiting for {', '.join(waiting + models_waiting)}"[:1024],
            )
        )
    else:
        what = "asleep (sleepAfter); the next update wakes it" if sleeping else "all services ready"
        observations.append(Observation(READY, True, reasons.ASLEEP if sleeping else reasons.READY, what))
    return Outcome(
        status=status,
        observations=observations,
        blocker=blockers.first(found_blockers),
        requeue_after=ENDPOINTS_RECHECK_SECONDS if unserved else None,
    )


def _conditions(obj: Manifest) -> dict[str, dict[str, Any]]:
    return {c.get("type", ""): c for c in (obj.get("status") or {}).get("conditions") or []}


def _is_ready(md: Manifest) -> bool:
    ready = _conditions(md).get(READY) or {}
    return ready.get("status") == "True" and ready.get("observedGeneration") == md["metadata"].get("generation")


def _ready_message(md: Manifest) -> str:
    return str((_conditions(md).get(READY) or {}).get("message") or "not reconciled yet")


# -- the kind ---------------------------------------------------------------------------------------------------------

# A preview that copies Secrets is looked at this often (they follow their source; the operator may not watch
# Secrets); one not Ready from this on, less often the longer it waits.
TICK_SECONDS = 30


def timing(body: Manifest) -> Timing:
    """Sleep and expiry are due at a time, not on an event. Every TICK_SECONDS: a preview that copies Secrets. From
    TICK_SECONDS on, less often the longer it waits: one not Ready (waiting for quota or a Secret). Not RETRY_SECONDS
    as for the other kinds: a preview waits for several Deployments, whose events reconcile it anyway; in a slow
    burst a 15 s retry only added reconciles."""
    status = dict(body.get("status") or {})
    try:
        spec = PreviewEnvironmentSpec.model_validate(dict(body.get("spec") or {}))
    except ValueError:
        return Timing()  # Stalled with InvalidSpec until the user changes it
    due = next_event(spec, status)
    at = due.timestamp() if due is not None else None
    copies = any(s.copy_from is not None for s in spec.secrets)
    waiting = not_ready(body)
    return Timing(every=TICK_SECONDS if copies or waiting else None, at=at, waiting=waiting and not copies)


def _namespace(child: Manifest) -> str:
    return str(child["metadata"].get("namespace"))


def _steps(services: Services) -> Steps:
    return functools.partial(reconcile, telemetry=services.telemetry)


_IN_ITS_NAMESPACE = Watch(MANAGED_BY_SELECTOR, preview.OWNER_LABEL, _namespace)
# Readiness, quota refusals and NamespaceQuota's reservation show up on children first: their events reconcile the
# preview, found by the namespace it runs in (what only Pods show: handlers.previewenvironment.pod_warned).
KIND = KindDescriptor(
    info=kind_info("PreviewEnvironment"),
    key=preview.namespace_name,
    timing=timing,
    steps=_steps,
    children=(
        ChildKind(*PRUNED_KINDS[0], "deployments", watch=_IN_ITS_NAMESPACE),
        ChildKind(*PRUNED_KINDS[1], "services"),
        ChildKind(*PRUNED_KINDS[2], "ingresses"),
        ChildKind(*HTTP_ROUTE, "httproutes"),
        ChildKind("v1", "Secret", "secrets"),
        # A Plinth kind: its own watch takes no label selector, so neither may this one.
        ChildKind(*PRUNED_KINDS[3], "modeldeployments", watch=Watch(None, preview.OWNER_LABEL, _namespace)),
        ChildKind(
            "v1",
            "ResourceQuota",
            "resourcequotas",
            owned=False,
            watch=Watch(quota.OWNER_LABEL, quota.OWNER_LABEL, _namespace),
        ),
    ),
)
