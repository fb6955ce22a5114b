"""NamespaceQuota: ResourceQuota, LimitRange and NetworkPolicy in every selected namespace; status sums usage.

Steps: select namespaces -> apply desired children (server-side apply) -> prune children in namespaces that are no
longer selected (only objects carrying this NamespaceQuota's owner label) -> observe quota usage -> status.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from plinth.adapters.kubernetes import KubernetesObjects, Manifest
from plinth.operator.api.v1alpha1 import LabelSelector, NamespaceQuotaSpec, parse_quantity
from plinth.operator.api.v1alpha1.namespacequota import MAX_LISTED_NAMESPACES
from plinth.operator.builders import quota
from plinth.operator.conditions import Observation
from plinth.operator.reconcilers import Outcome

CHILD_KINDS = (("v1", "ResourceQuota"), ("v1", "LimitRange"), ("networking.k8s.io/v1", "NetworkPolicy"))


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics (all requirements must hold)."""
    for key, value in (selector.match_labels or {}).items():
        if labels.get(key) != value:
            return False
    for req in selector.match_expressions or []:
        present = req.key in labels
        values = req.values or []
        ok = {
            "In": present and labels.get(req.key) in values,
            "NotIn": not present or labels.get(req.key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[req.operator]
        if not ok:
            return False
    return True


def select_namespaces(spec: NamespaceQuotaSpec, namespaces: Sequence[Manifest]) -> list[str]:
    """Names of the live, non-terminating namespaces the spec selects (by name or selector: a union), sorted."""
    names = set(spec.namespaces or [])
    selected = []
    for ns in namespaces:
        meta = ns["metadata"]
        if meta.get("deletionTimestamp") or (ns.get("status") or {}).get("phase") == "Terminating":
            continue
        by_selector = spec.namespace_selector is not None and selector_matches(
            spec.namespace_selector, meta.get("labels") or {}
        )
        if meta["name"] in names or by_selector:
            selected.append(meta["name"])
    return sorted(selected)


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


def reconcile(kube: KubernetesObjects, obj: Manifest, spec: NamespaceQuotaSpec) -> Outcome:
    name = obj["metadata"]["name"]
    owner_selector = f"{quota.OWNER_LABEL}={name}"
    selected = select_namespaces(spec, kube.list("v1", "Namespace"))

    desired: dict[tuple[str, str, str], Manifest] = {}
    for ns in selected:
        for child in quota.namespace_children(obj, spec, ns):
            desired[(child["kind"], ns, child["metadata"]["name"])] = child
    for child in desired.values():
        kube.apply(child)

    quotas: list[Manifest] = []
    for api_version, kind in CHILD_KINDS:
        for existing in kube.list(api_version, kind, label_selector=owner_selector):
            meta = existing["metadata"]
            if (kind, meta["namespace"], meta["name"]) not in desired:
                kube.delete(api_version, kind, meta["name"], namespace=meta["namespace"])
            elif kind == "ResourceQuota":
                quotas.append(existing)

    used = sum_usage(quotas)
    hard = dict(sorted((spec.total.hard if spec.total else {}).items()))
    status: dict[str, Any] = {
        "namespaces": {"count": len(selected), "names": selected[:MAX_LISTED_NAMESPACES]},
        "used": used,
        "hard": hard,
        "summary": _summary(len(selected), used, hard),
    }
    message = f"{len(desired)} objects applied in {len(selected)} namespaces"
    return Outcome(status=status, observations=[Observation("Ready", True, "Reconciled", message)])


def _summary(count: int, used: Mapping[str, str], hard: Mapping[str, str]) -> str:
    parts = [f"{count} namespace{'s' if count != 1 else ''}"]
    parts += [f"{key} {used.get(key, '0')}/{limit}" for key, limit in list(hard.items())[:3]]
    return ", ".join(parts)[:256]
