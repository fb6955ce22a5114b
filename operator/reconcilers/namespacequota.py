"""NamespaceQuota: ResourceQuota, LimitRange and NetworkPolicy in every selected namespace; status sums usage.

Steps: select namespaces (an older NamespaceQuota wins a namespace both select) -> read this quota's children ->
split the total into per-namespace limits (``quotasplit``; what preview namespaces declared they will run is
reserved first) -> apply children that differ (decreases first) -> prune
children in namespaces no longer selected (only objects carrying this NamespaceQuota's owner label) -> status.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from plinth.adapters.kubernetes import Conflict, KubernetesObjects, Manifest, NamespaceTerminating
from plinth.operator import blockers, reasons
from plinth.operator.api.conversion import internal
from plinth.operator.api.served import STORED_API_VERSION
from plinth.operator.api.v1alpha1 import NamespaceQuotaSpec, kind_info, parse_quantity
from plinth.operator.api.v1alpha1.namespacequota import MAX_LISTED_NAMESPACES
from plinth.operator.blockers import Blocker
from plinth.operator.builders import common, quota
from plinth.operator.conditions import READY, RECONCILING, Observation, not_ready
from plinth.operator.errors import Waiting
from plinth.operator.index import RETRY_SECONDS, Timing
from plinth.operator.kinds import ChildKind, KindDescriptor, Watch
from plinth.operator.reconcilers import Outcome
from plinth.operator.reconcilers.claims import owner_of, select_namespaces
from plinth.operator.reconcilers.quotasplit import split_total


def format_quantity(value: Decimal) -> str:
    """A canonical-enough quantity string for status: integers as-is, fractions in milli-units."""
    if value == value.to_integral_value():
        return str(int(value))
    return f"{int((value * 1000).to_integral_value())}m"


def sum_usage(quotas: Sequence[Manifest]) -> dict[str, str]:
    totals: dict[str, Decimal] = {}
    for rq in quotas:
        for key, amount in ((rq.get("status") or {}).get("used") or {}).items():
            totals[key] = totals.get(key, Decimal(0)) + parse_quantity(amount)
    return {key: format_quantity(v) for key, v in sorted(totals.items())}


def _selections(quotas: Sequence[Manifest], namespaces: Sequence[Manifest]) -> dict[str, list[Manifest]]:
    """Namespace -> every (valid) NamespaceQuota selecting it."""
    claims: dict[str, list[Manifest]] = {}
    for q in quotas:
        try:
            other = NamespaceQuotaSpec.model_validate(q.get("spec") or {})
        except ValueError:
            continue  # an invalid quota claims nothing (it is Stalled)
        for ns in select_namespaces(other, namespaces):
            claims.setdefault(ns, []).append(q)
    return claims


def reconcile(kube: KubernetesObjects, obj: Manifest, spec: NamespaceQuotaSpec) -> Outcome:
    name = obj["metadata"]["name"]
    namespaces = kube.list("v1", "Namespace")
    wanted = select_namespaces(spec, namespaces)
    claims = _selections([internal(q) for q in kube.list(STORED_API_VERSION, "NamespaceQuota")], namespaces)
    lost = {ns: owner_of(ns, claims[ns])["metadata"]["name"] for ns in wanted if len(claims.get(ns, [])) > 1}
    lost = {ns: winner for ns, winner in lost.items() if winner != name}
    selected = [ns for ns in wanted if ns not in lost]

    existing: dict[tuple[str, str, str], Manifest] = {}
    for api_version, kind in KIND.owned():
        for child in kube.list(api_version, kind, label_selector=f"{quota.OWNER_LABEL}={name}"):
            existing[(kind, child["metadata"]["namespace"], child["metadata"]["name"])] = child
    # This quota's ResourceQuota in each selected namespace, by namespace.
    quotas = {key[1]: child for key, child in existing.items() if key[0] == "ResourceQuota" and key[1] in selected}
    used = {ns: (rq.get("status") or {}).get("used") or {} for ns, rq in quotas.items()}
    total = spec.total.hard if spec.total else {}
    per_namespace = spec.per_namespace.hard if spec.per_namespace else {}
    by_name = {ns["metadata"]["name"]: ns for ns in namespaces}
    requested = {
        ns: common.parse_request(
            (by_name[ns]["metadata"].get("annotations") or {}).get(common.QUOTA_REQUEST_ANNOTATION)
        )
        for ns in selected
    }
    held = {ns: (rq.get("spec") or {}).get("hard") or {} for ns, rq in quotas.items()}
    allocation, exceeded = split_total(total, per_namespace, used, selected, requested, held=held)

    desired: dict[tuple[str, str, str], Manifest] = {}
    for ns in selected:
        for child in quota.namespace_children(obj, spec, ns, allocation.get(ns)):
            desired[(child["kind"], ns, child["metadata"]["name"])] = child
    _apply_changes(kube, desired, existing)
    for (kind, ns, child_name), child in existing.items():
        if (kind, ns, child_name) not in desired:
            kube.delete(child["apiVersion"], kind, child_name, namespace=ns)

    used_total = sum_usage(list(quotas.values()))
    hard = dict(sorted(total.items()))
    status: dict[str, Any] = {
        "namespaces": {"count": len(selected), "names": selected[:MAX_LISTED_NAMESPACES]},
        "used": used_total,
        "hard": hard,
        "summary": _summary(used_total, hard),
    }
    uncounted = uncounted_quotas(desired, existing)
    if uncounted:
        message = (
            f"the quota controller has not counted usage under the new limits in {_count(len(uncounted), 'namespace')}"
            f" yet (first: {uncounted[0].name}); until it has, the API server enforces the previous limits there"
        )
        observations = [Observation(RECONCILING, True, reasons.QUOTA_NOT_COUNTED, message)]
    else:
        applied = f"quota applied in {_count(len(selected), 'namespace')}"
        observations = [Observation(READY, True, reasons.RECONCILED, applied)]
    if exceeded:
        detail = ", ".join(f"{r} {used_total.get(r, '0')}/{hard[r]}" for r in exceeded)
        observations.append(
            Observation(
                "TotalExceeded",
                True,
                reasons.USAGE_ABOVE_TOTAL,
                f"usage across namespaces exceeds spec.total.hard ({detail}); new workloads are refused until "
                "usage drops",
            )
        )
    if lost:
        detail = ", ".join(f"{ns} (owned by NamespaceQuota {winner})" for ns, winner in sorted(lost.items()))
        observations.append(
            Observation(
                "Conflict",
                True,
                reasons.NAMESPACE_CLAIMED_BY_OLDER_QUOTA,
                f"namespaces also selected by an older NamespaceQuota are left to it: {detail}"[:1024],
            )
        )
    return Outcome(status=status, observations=observations, blocker=uncounted[0] if uncounted else None)


def uncounted_quotas(
    desired: Mapping[tuple[str, str, str], Manifest], existing: Mapping[tuple[str, str, str], Manifest]
) -> list[Blocker]:
    """The ResourceQuotas whose limits the quota controller has not taken into its status yet (*existing* is as read
    before this reconcile's writes, so one just changed counts as not taken). Quota admission enforces status.hard:
    until then the old limits hold, or a new quota refuses Pods ("status unknown for quota")."""
    found = []
    for (kind, namespace, name), child in sorted(desired.items()):
        if kind != "ResourceQuota":
            continue
        status = (existing.get((kind, namespace, name)) or {}).get("status") or {}
        uncounted = blockers.resource_quota(f"{namespace}/{name}", namespace, child["spec"]["hard"], status)
        if uncounted is not None:
            found.append(uncounted)
    return found


def _hard_decreases(child: Manifest, current: Manifest | None) -> bool:
    if child["kind"] != "ResourceQuota" or current is None:
        return False
    before = (current.get("spec") or {}).get("hard") or {}
    return any(
        key in before and parse_quantity(value) < parse_quantity(before[key])
        for key, value in child["spec"]["hard"].items()
    )


def _apply_changes(
    kube: KubernetesObjects,
    desired: Mapping[tuple[str, str, str], Manifest],
    existing: Mapping[tuple[str, str, str], Manifest],
) -> None:
    """Apply children that differ from what exists: ResourceQuota decreases first, each as a compare-and-swap on the
    resourceVersion it was computed from (a Pod admitted meanwhile makes it fail and the reconcile retry), then the
    rest. So the per-namespace hard limits never sum to more than the total, even between two writes."""
    changed = [(key, child) for key, child in desired.items() if not _matches(child, existing.get(key))]
    decreases = [(k, c) for k, c in changed if _hard_decreases(c, existing.get(k))]
    for key, child in decreases:
        guarded = {
            **child,
            "metadata": {**child["metadata"], "resourceVersion": existing[key]["metadata"]["resourceVersion"]},
        }
        try:
            kube.apply(guarded)
        except NamespaceTerminating:
            continue
        except Conflict as err:
            raise Waiting(
                reasons.QUOTA_REBALANCING, f"quota usage changed while rebalancing ({err}); retrying", 1
            ) from err
    for key, child in changed:
        if (key, child) not in decreases:
            # A namespace deleted since it was listed: its namespace event re-evaluates the quota.
            with contextlib.suppress(NamespaceTerminating):
                kube.apply(child)


def _matches(desired: Manifest, current: Manifest | None) -> bool:
    """Whether *current* already has everything *desired* sets (labels, owner, spec): then no write is needed."""
    if current is None:
        return False
    meta, cur_meta = desired["metadata"], current["metadata"]
    if any((cur_meta.get("labels") or {}).get(k) != v for k, v in meta["labels"].items()):
        return False
    if [r.get("uid") for r in cur_meta.get("ownerReferences") or []] != [r["uid"] for r in meta["ownerReferences"]]:
        return False
    return _subset(desired.get("spec"), current.get("spec"))


def _subset(want: Any, have: Any) -> bool:
    if isinstance(want, dict):
        return isinstance(have, dict) and all(_subset(v, have.get(k)) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(want) == len(have) and all(map(_subset, want, have))
    if isinstance(want, (int, str)) and isinstance(have, (int, str)) and str(want) != str(have):
        try:
            return parse_quantity(want) == parse_quantity(have)  # "1" vs 1, "1000m" vs "1"
        except ValueError:
            return False
    return bool(want == have)


def _summary(used: Mapping[str, str], hard: Mapping[str, str]) -> str:
    """Usage against the total for the printer column; without a total, the usage of the first resources."""
    if hard:
        parts = [f"{key} {used.get(key, '0')}/{limit}" for key, limit in list(hard.items())[:3]]
    else:
        parts = [f"{key} {value}" for key, value in list(used.items())[:3]]
    return ", ".join(parts)[:256]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


# -- the kind ---------------------------------------------------------------------------------------------------------


def timing(body: Manifest) -> Timing:
    """Not Ready at its generation: retried from RETRY_SECONDS on, less often the longer it waits (a reconcile that
    failed before it could ask for a retry leaves nothing else to do it)."""
    return Timing(every=RETRY_SECONDS, waiting=True) if not_ready(body) else Timing()


def _name(obj: Manifest) -> str:
    return str(obj["metadata"]["name"])


def _owner(child: Manifest) -> str:
    return str((child["metadata"].get("labels") or {}).get(quota.OWNER_LABEL))


# Every change of a child reconciles its quota: drift is repaired, and the total is rebalanced whenever a
# ResourceQuota's usage moves. A child whose quota is gone (being garbage-collected) lets the others take its
# namespace over.
_CHILD = Watch(quota.OWNER_LABEL, quota.OWNER_LABEL, _owner, filtered=False, orphans_wake_all=True)
KIND = KindDescriptor(
    info=kind_info("NamespaceQuota"),
    key=_name,
    timing=timing,
    steps=lambda services: reconcile,
    children=(
        ChildKind("v1", "ResourceQuota", "resourcequotas", watch=_CHILD),
        ChildKind("v1", "LimitRange", "limitranges", watch=_CHILD),
        ChildKind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", watch=_CHILD),
    ),
)
