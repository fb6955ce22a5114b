"""Which NamespaceQuota governs a namespace: the namespaces a quota selects, and the one quota that wins a namespace
several select. The NamespaceQuota reconciler applies the rule; a preview asks it before it creates its namespace."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from plinth.adapters.kubernetes import Manifest
from plinth.operator.api.v1alpha1 import LabelSelector, NamespaceQuotaSpec


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


def owner_of(namespace: str, claimants: Sequence[Manifest]) -> Manifest:
    """Of several NamespaceQuotas selecting one namespace, the oldest wins (then the smallest name): deterministic,
    and stable as newer quotas come and go."""
    return min(claimants, key=lambda q: (q["metadata"].get("creationTimestamp", ""), q["metadata"]["name"]))
