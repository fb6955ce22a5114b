"""NamespaceQuota: one cluster-scoped object that governs the quotas, defaults and isolation of many namespaces."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from .common import (
    ApiModel,
    DNS1123Label,
    LabelSelector,
    ResourceList,
    StatusBase,
    UniqueStrings,
    cel,
    list_set,
    quantity_exceeds,
    quantity_rule,
    validations,
)

__all__ = [
    "ContainerDefaults",
    "NamespaceQuotaSpec",
    "NamespaceQuotaStatus",
    "NetworkIsolation",
    "PerNamespaceQuota",
    "SelectedNamespaces",
    "TotalQuota",
]

NetworkIsolation = Literal["None", "DefaultDeny", "AllowSameNamespace"]

MAX_LISTED_NAMESPACES = 50

_EMPTY_SELECTOR = (
    "namespaceSelector must not be empty: an empty selector selects every namespace, including kube-system; "
    "add matchLabels or matchExpressions, or list the namespaces in namespaces"
)
_NO_TARGET = "set namespaceSelector or namespaces (or both) to choose the namespaces this quota applies to"
_TOTAL_BELOW = "every resource in total.hard must be at least its value in perNamespace.hard"
_REQUEST_ABOVE_LIMIT = "defaults.request must not exceed defaults.limit for the same resource"
_LIMIT_ABOVE_MAX = "defaults.limit must not exceed defaults.max for the same resource"
_REQUEST_ABOVE_MAX = "defaults.request must not exceed defaults.max for the same resource"


class PerNamespaceQuota(ApiModel):
    """Limits applied to each selected namespace on its own, through a ResourceQuota named plinth-quota."""

    hard: ResourceList = Field(
        min_length=1,
        description=(
            "Hard limits per namespace, with the keys of a ResourceQuota: requests.cpu, requests.memory, "
            "limits.cpu, limits.memory, pods, services, count/deployments.apps, ... Values are quantities "
            "such as 4, 500m or 8Gi."
        ),
    )


class ContainerDefaults(ApiModel):
    """Defaults and bounds for every container in the selected namespaces, through a LimitRange of type Container."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(quantity_rule("request", "limit"), _REQUEST_ABOVE_LIMIT, field_path=".request"),
            cel(quantity_rule("limit", "max"), _LIMIT_ABOVE_MAX, field_path=".limit"),
            cel(quantity_rule("request", "max"), _REQUEST_ABOVE_MAX, field_path=".request"),
        )
    )

    request: ResourceList | None = Field(
        default=None,
        description=(
            "Requests given to containers that declare none (LimitRange defaultRequest), e.g. cpu: 100m, "
            "memory: 128Mi. Must not exceed limit or max for the same resource."
        ),
    )
    limit: ResourceList | None = Field(
        default=None,
        description=(
            "Limits given to containers that declare none (LimitRange default), e.g. cpu: 1, memory: 1Gi. Must not "
            "exceed max for the same resource."
        ),
    )
    max: ResourceList | None = Field(
        default=None,
        description="The largest limit a single container may set (LimitRange max). Larger Pods are rejected.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> ContainerDefaults:
        for small, large, message in (
            (self.request, self.limit, _REQUEST_ABOVE_LIMIT),
            (self.limit, self.max, _LIMIT_ABOVE_MAX),
            (self.request, self.max, _REQUEST_ABOVE_MAX),
        ):
            if bad := quantity_exceeds(small, large):
                raise ValueError(f"{message} ({', '.join(bad)})")
        return self


class TotalQuota(ApiModel):
    """Limits on the sum of usage across all selected namespaces together."""

    hard: ResourceList = Field(
        min_length=1,
        description=(
            "Aggregate hard limits across all selected namespaces, with the same keys as perNamespace.hard. The "
            "combined usage is reported in status.used, and the QuotaExceeded condition is set when it reaches a "
            "limit. Each value must be at least the perNamespace.hard value of the same resource."
        ),
    )


class NamespaceQuotaSpec(ApiModel):
    """Which namespaces the quota governs, and the quota, container defaults and network isolation it gives them."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "has(self.namespaceSelector) || (has(self.namespaces) && size(self.namespaces) > 0)",
                _NO_TARGET,
                reason="FieldValueRequired",
            ),
            cel(
                "!has(self.perNamespace) || !has(self.total) || ("
                + quantity_rule("perNamespace.hard", "total.hard")
                + ")",
                _TOTAL_BELOW,
                field_path=".total.hard",
            ),
        )
    )

    namespace_selector: LabelSelector | None = Field(
        default=None,
        description=(
            "Selects namespaces by label, e.g. matchLabels: {plinth.dev/team: shop}. Must not be empty: an empty "
            "selector would select every namespace, including kube-system. Combined with namespaces as a union."
        ),
        json_schema_extra=validations(
            cel(
                "(has(self.matchLabels) && size(self.matchLabels) > 0)"
                " || (has(self.matchExpressions) && size(self.matchExpressions) > 0)",
                _EMPTY_SELECTOR,
            )
        ),
    )
    namespaces: Annotated[list[DNS1123Label], UniqueStrings] | None = Field(
        default=None,
        max_length=256,
        description=(
            "Namespaces selected by name, in addition to those matched by namespaceSelector. Namespaces that do not "
            "exist yet are picked up when they are created."
        ),
        json_schema_extra=list_set(),
    )
    per_namespace: PerNamespaceQuota | None = Field(
        default=None,
        description="Limits for each selected namespace on its own (a ResourceQuota in every namespace).",
    )
    defaults: ContainerDefaults | None = Field(
        default=None,
        description="Default requests and limits for containers that set none (a LimitRange in every namespace).",
    )
    total: TotalQuota | None = Field(
        default=None,
        description="Limits on the combined usage of all selected namespaces.",
    )
    network_isolation: NetworkIsolation = Field(
        default="None",
        description=(
            "NetworkPolicy placed in every selected namespace. None: no policy, traffic is unrestricted. "
            "DefaultDeny: all ingress traffic to Pods is denied unless another policy allows it. "
            "AllowSameNamespace: Pods accept ingress traffic only from Pods in the same namespace. "
            "Both admit the ingress controller (Pods in namespaces labelled plinth.dev/ingress-controller=true), "
            "so exposed services stay reachable through their URL."
        ),
    )

    @model_validator(mode="after")
    def _consistent(self) -> NamespaceQuotaSpec:
        if self.namespace_selector is None and not self.namespaces:
            raise ValueError(_NO_TARGET)
        if self.namespace_selector is not None and self.namespace_selector.is_empty():
            raise ValueError(_EMPTY_SELECTOR)
        if self.per_namespace and self.total and (bad := quantity_exceeds(self.per_namespace.hard, self.total.hard)):
            raise ValueError(f"{_TOTAL_BELOW} ({', '.join(bad)})")
        return self


class SelectedNamespaces(ApiModel):
    """The namespaces the quota currently governs."""

    count: int = Field(ge=0, description="How many namespaces are currently selected.")
    names: list[Annotated[str, StringConstraints(max_length=63)]] = Field(
        default_factory=list,
        max_length=MAX_LISTED_NAMESPACES,
        description=(
            f"Names of the selected namespaces in alphabetical order. Only the first {MAX_LISTED_NAMESPACES} are "
            "listed; count has the total."
        ),
    )


class NamespaceQuotaStatus(StatusBase):
    """Observed state of a NamespaceQuota, written by the operator."""

    namespaces: SelectedNamespaces | None = Field(
        default=None, description="The namespaces currently selected by the quota."
    )
    used: ResourceList = Field(
        default_factory=dict,
        description="Combined usage across all selected namespaces, for every resource named in total.hard.",
    )
    hard: ResourceList = Field(
        default_factory=dict,
        description="The combined limits in force across all selected namespaces (total.hard).",
    )
    summary: Annotated[str, StringConstraints(max_length=256)] | None = Field(
        default=None,
        description=(
            "Combined usage against spec.total.hard for kubectl get, such as: pods 7/50, requests.cpu 2/20 "
            "(first three resources)."
        ),
    )
