"""Pure builders for NamespaceQuota children: ResourceQuota, LimitRange and NetworkPolicies per namespace."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plinth.operator.api.v1alpha1 import NamespaceQuotaSpec, parse_quantity
from plinth.operator.builders.common import child_metadata

OWNER_LABEL = "plinth.dev/namespacequota"
QUOTA_NAME = "plinth-quota"
LIMITS_NAME = "plinth-defaults"
ISOLATION_NAME = "plinth-isolation"
# Namespaces whose Pods NamespaceQuota's isolation policies always admit: the ingress controller's (it carries the
# traffic of every exposed service). The label is the platform's to set, on the ingress controller's namespace only.
INGRESS_CONTROLLER_LABEL = "plinth.dev/ingress-controller"

Manifest = dict[str, Any]


def resource_quota(
    owner: Manifest, spec: NamespaceQuotaSpec, namespace: str, allocation: Mapping[str, str] | None = None
) -> Manifest | None:
    """``perNamespace.hard``, with this namespace's share of ``total.hard`` (``allocation``) where that is lower or
    where perNamespace does not limit the resource at all."""
    hard = dict(spec.per_namespace.hard) if spec.per_namespace else {}
    for resource, share in (allocation or {}).items():
        if resource not in hard or parse_quantity(share) < parse_quantity(hard[resource]):
            hard[resource] = share
    if not hard:
        return None
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": child_metadata(owner, QUOTA_NAME, namespace, OWNER_LABEL),
        "spec": {"hard": dict(sorted(hard.items()))},
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
    """DefaultDeny denies all ingress; AllowSameNamespace admits ingress from the same namespace only. Both admit the
    ingress controller's namespace: a preview's URL must keep working under its team's isolation.

    Isolation is ingress-only: egress, and with it DNS resolution, stays open.
    """
    if spec.network_isolation == "None":
        return []
    ingress: list[Any] = [{"from": [{"namespaceSelector": {"matchLabels": {INGRESS_CONTROLLER_LABEL: "true"}}}]}]
    if spec.network_isolation == "AllowSameNamespace":
        ingress.append({"from": [{"podSelector": {}}]})
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": child_metadata(owner, ISOLATION_NAME, namespace, OWNER_LABEL),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": ingress},
        }
    ]


def namespace_children(
    owner: Manifest, spec: NamespaceQuotaSpec, namespace: str, allocation: Mapping[str, str] | None = None
) -> list[Manifest]:
    """Everything one NamespaceQuota wants in one namespace."""
    children = [resource_quota(owner, spec, namespace, allocation), limit_range(owner, spec, namespace)]
    return [c for c in children if c is not None] + network_policies(owner, spec, namespace)
