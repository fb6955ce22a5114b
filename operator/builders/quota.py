"""Pure builders for NamespaceQuota children: ResourceQuota, LimitRange and NetworkPolicies per namespace."""

from __future__ import annotations

from typing import Any

from plinth.operator.api.v1alpha1 import NamespaceQuotaSpec
from plinth.operator.builders.common import child_metadata

OWNER_LABEL = "plinth.dev/namespacequota"
QUOTA_NAME = "plinth-quota"
LIMITS_NAME = "plinth-defaults"
ISOLATION_NAME = "plinth-isolation"

Manifest = dict[str, Any]


def resource_quota(owner: Manifest, spec: NamespaceQuotaSpec, namespace: str) -> Manifest | None:
    if spec.per_namespace is None or not spec.per_namespace.hard:
        return None
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": child_metadata(owner, QUOTA_NAME, namespace, OWNER_LABEL),
        "spec": {"hard": dict(sorted(spec.per_namespace.hard.items()))},
    }


def limit_range(owner: Manifest, spec: NamespaceQuotaSpec, namespace: str) -> Manifest | None:
    defaults = spec.defaults
    if defaults is None:
        return None
    limit: dict[str, Any] = {"type": "Container"}
    for field, values in (("defaultRequest", defaults.request), ("default", defaults.limit), ("max", defaults.max)):
        if values:
            limit[field] = dict(sorted(values.items()))
    if len(limit) == 1:
        return None
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": child_metadata(owner, LIMITS_NAME, namespace, OWNER_LABEL),
        "spec": {"limits": [limit]},
    }


def network_policies(owner: Manifest, spec: NamespaceQuotaSpec, namespace: str) -> list[Manifest]:
    """DefaultDeny denies all ingress; AllowSameNamespace admits ingress from the same namespace only.

    Isolation is ingress-only: egress, and with it DNS resolution, stays open.
    """
    if spec.network_isolation == "None":
        return []
    ingress: list[Any] = [] if spec.network_isolation == "DefaultDeny" else [{"from": [{"podSelector": {}}]}]
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": child_metadata(owner, ISOLATION_NAME, namespace, OWNER_LABEL),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": ingress},
        }
    ]


def namespace_children(owner: Manifest, spec: NamespaceQuotaSpec, namespace: str) -> list[Manifest]:
    """Everything one NamespaceQuota wants in one namespace."""
    children = [resource_quota(owner, spec, namespace), limit_range(owner, spec, namespace)]
    return [c for c in children if c is not None] + network_policies(owner, spec, namespace)
