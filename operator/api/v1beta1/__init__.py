"""The plinth.dev/v1beta1 API: v1alpha1 with what it taught, each difference deliberate (docs/api-versions.md).

- ModelDeployment: how many replicas, fixed or autoscaled, is one field (``scaling``), so the two cannot both be set
  by accident and a reader finds both in one place; who may call and how fast is one field (``access``); a canary
  names its model like ``spec.model`` does (``canary.model.version``/``uri``), so promoting it is copying one object.
  The same spec is embedded in a PreviewEnvironment's ``models[].spec``.
- PreviewEnvironment: when a preview stops costing (``ttl`` and ``sleepAfter``) is one field, ``lifecycle``.
- NamespaceQuota: which namespaces it governs is one field, ``namespaces`` (``selector`` and/or ``names``).

Every other type is v1alpha1's, unchanged; status is the same in both versions. The operator works on the v1alpha1
models internally (``api.conversion`` turns one version into the other, exactly and both ways).
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Annotated, Any

from plinth.operator.api import v1alpha1
from plinth.operator.api.v1alpha1 import (
    ApiModel,
    Auth,
    Autoscaling,
    CanaryAutoPromote,
    CanaryRollback,
    KindInfo,
    LabelSelector,
    ModelDeploymentSpec,
    ModelSource,
    Monitoring,
    NamespaceQuotaSpec,
    NetworkIsolation,
    PreviewEnvironmentSpec,
    RateLimit,
    Resources,
    Runtime,
    Storage,
)
from plinth.operator.api.v1alpha1.common import DNS1123Label, PositiveDuration, UniqueStrings, cel, validations
from plinth.operator.api.v1alpha1.modeldeployment import Canary, Image, ModelRoute
from plinth.operator.api.v1alpha1.namespacequota import ContainerDefaults, PerNamespaceQuota, TotalQuota
from plinth.operator.api.v1alpha1.previewenvironment import (
    PreviewIngress,
    PreviewModel,
    PreviewSecret,
    PreviewService,
    PreviewSource,
    check_runs_something_with_distinct_secrets,
)
from pydantic import ConfigDict, Field, model_validator
from pydantic.fields import FieldInfo

GROUP = v1alpha1.GROUP
VERSION = "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"

_REPLICAS_XOR = "scaling: set replicas or autoscaling, not both"
_CANARY_SAME_VERSION = "canary.model.version must differ from model.version"
_EMPTY_SELECTOR = (
    "namespaces.selector must not be empty: an empty selector selects every namespace, including kube-system; "
    "add matchLabels or matchExpressions, or list the namespaces in namespaces.names"
)
_NO_NAMESPACES = "namespaces: set selector or names (or both) to choose the namespaces this quota applies to"


def same(model: type[ApiModel], name: str, **changes: Any) -> Any:
    """A field exactly as *model* (a v1alpha1 type) declares it: type constraints, default and description, with
    *changes* (e.g. a description that names the field's new place)."""
    field: FieldInfo = copy.copy(model.model_fields[name])
    field.alias = field.validation_alias = field.serialization_alias = field.alias_priority = None  # from the new name
    for key, value in changes.items():
        setattr(field, key, value)
    return field


class Scaling(ApiModel):
    """How many replicas serve the model: a fixed count or autoscaling, one of them. Unset: one replica."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel("!(has(self.replicas) && has(self.autoscaling))", _REPLICAS_XOR, field_path=".autoscaling")
        )
    )

    replicas: int | None = same(
        ModelDeploymentSpec,
        "replicas",
        description=(
            "Fixed number of model server replicas; 1 when neither replicas nor autoscaling is set. 0 stops serving "
            "but keeps the object."
        ),
    )
    autoscaling: Autoscaling | None = same(
        ModelDeploymentSpec, "autoscaling", description="Scale replicas with load instead of a fixed count."
    )

    @model_validator(mode="after")
    def _one_of(self) -> Scaling:
        if self.replicas is not None and self.autoscaling is not None:
            raise ValueError(_REPLICAS_XOR)
        return self


class Access(ApiModel):
    """Who may call the model and how fast. Unset: anyone in the cluster, at any rate."""

    auth: Auth | None = same(ModelDeploymentSpec, "auth")
    rate_limit: RateLimit | None = same(ModelDeploymentSpec, "rate_limit")


class CanaryModel(ApiModel):
    """The canary's model: the same name as spec.model, another version and artifact."""

    version: str = same(Canary, "version", description="Version of the canary model. Must differ from model.version.")
    uri: str = same(Canary, "uri")


class CanaryV1beta1(ApiModel):
    """A second version served next to the active one, receiving a share of the traffic."""

    model: CanaryModel = Field(description="The candidate model: its version and artifact location.")
    image: Image | None = same(Canary, "image")
    traffic_percent: int = same(Canary, "traffic_percent")
    auto_promote: CanaryAutoPromote | None = same(
        Canary,
        "auto_promote",
        description=(
            "Promote the canary automatically. When unset, promote it by setting model.version and model.uri to "
            "canary.model's and removing canary."
        ),
    )
    rollback: CanaryRollback = same(Canary, "rollback")


class ModelDeploymentSpecV1beta1(ApiModel):
    """The model to serve and how to serve it."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.canary) || self.canary.model.version != self.model.version",
                _CANARY_SAME_VERSION,
                field_path=".canary.model.version",
            ),
        )
    )

    model: ModelSource = same(ModelDeploymentSpec, "model")
    runtime: Runtime = same(ModelDeploymentSpec, "runtime")
    storage: Storage | None = same(ModelDeploymentSpec, "storage")
    access: Access | None = Field(default=None, description="Who may call the model (a token) and how fast.")
    scaling: Scaling | None = Field(
        default=None, description="How many replicas serve the model, fixed or autoscaled. Unset: one replica."
    )
    resources: Resources | None = same(ModelDeploymentSpec, "resources")
    canary: CanaryV1beta1 | None = same(ModelDeploymentSpec, "canary")
    route: ModelRoute | None = same(ModelDeploymentSpec, "route")
    monitoring: Monitoring | None = same(ModelDeploymentSpec, "monitoring")

    @model_validator(mode="after")
    def _consistent(self) -> ModelDeploymentSpecV1beta1:
        if self.canary is not None and self.canary.model.version == self.model.version:
            raise ValueError(_CANARY_SAME_VERSION)
        return self


class PreviewModelV1beta1(ApiModel):
    """A model served inside the preview, as a ModelDeployment in the preview namespace."""

    name: str = same(PreviewModel, "name")
    spec: ModelDeploymentSpecV1beta1 = same(PreviewModel, "spec")


class Lifecycle(ApiModel):
    """When the preview stops costing: deleted after its ttl, asleep after sleepAfter without a change."""

    ttl: str = same(PreviewEnvironmentSpec, "ttl")
    sleep_after: PositiveDuration | None = same(PreviewEnvironmentSpec, "sleep_after")


def _rules(model: type[ApiModel]) -> list[dict[str, str]]:
    """The CEL rules a v1alpha1 type carries on the whole object."""
    extra = model.model_config.get("json_schema_extra")
    return list(extra["x-kubernetes-validations"]) if isinstance(extra, dict) else []  # type: ignore[arg-type]


_PE_RULES = validations(*_rules(PreviewEnvironmentSpec))


class PreviewEnvironmentSpecV1beta1(ApiModel):
    """What to run for the pull request, for how long, and how to reach it."""

    model_config = ConfigDict(json_schema_extra=_PE_RULES)

    source: PreviewSource = same(PreviewEnvironmentSpec, "source")
    team: str = same(PreviewEnvironmentSpec, "team")
    lifecycle: Lifecycle = Field(
        default_factory=Lifecycle, description="How long the preview lives, and when it sleeps. Unset: ttl 72h."
    )
    services: list[PreviewService] = same(PreviewEnvironmentSpec, "services")
    models: list[PreviewModelV1beta1] = same(PreviewEnvironmentSpec, "models")
    secrets: list[PreviewSecret] = same(PreviewEnvironmentSpec, "secrets")
    ingress: PreviewIngress | None = same(PreviewEnvironmentSpec, "ingress")

    @model_validator(mode="after")
    def _runs_something_with_distinct_secrets(self) -> PreviewEnvironmentSpecV1beta1:
        check_runs_something_with_distinct_secrets(self.services, self.models, self.secrets)
        return self


class NamespaceSelection(ApiModel):
    """The namespaces a quota governs: those its selector matches and those it names (a union)."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "has(self.selector) || (has(self.names) && size(self.names) > 0)",
                _NO_NAMESPACES,
                reason="FieldValueRequired",
            )
        )
    )

    selector: LabelSelector | None = same(
        NamespaceQuotaSpec,
        "namespace_selector",
        description=(
            "Selects namespaces by label, e.g. matchLabels: {plinth.dev/team: shop}. Must not be empty: an empty "
            "selector would select every namespace, including kube-system. Combined with names as a union."
        ),
        json_schema_extra=validations(
            cel(
                "(has(self.matchLabels) && size(self.matchLabels) > 0)"
                " || (has(self.matchExpressions) && size(self.matchExpressions) > 0)",
                _EMPTY_SELECTOR,
            )
        ),
    )
    names: Annotated[list[DNS1123Label], UniqueStrings] | None = same(
        NamespaceQuotaSpec,
        "namespaces",
        description=(
            "Namespaces selected by name, in addition to those matched by selector. Namespaces that do not exist "
            "yet are picked up when they are created."
        ),
    )

    @model_validator(mode="after")
    def _chooses_some(self) -> NamespaceSelection:
        if self.selector is None and not self.names:
            raise ValueError(_NO_NAMESPACES)
        if self.selector is not None and self.selector.is_empty():
            raise ValueError(_EMPTY_SELECTOR)
        return self


# v1alpha1's rules on the whole spec but the one on the namespaces chosen, which NamespaceSelection holds.
_QUOTA_RULES = [rule for rule in _rules(NamespaceQuotaSpec) if "namespaceSelector" not in rule["rule"]]


class NamespaceQuotaSpecV1beta1(ApiModel):
    """Which namespaces the quota governs, and the quota, container defaults and network isolation it gives them."""

    model_config = ConfigDict(json_schema_extra=validations(*_QUOTA_RULES))

    namespaces: NamespaceSelection = Field(description="Which namespaces the quota governs.")
    per_namespace: PerNamespaceQuota | None = same(NamespaceQuotaSpec, "per_namespace")
    defaults: ContainerDefaults | None = same(NamespaceQuotaSpec, "defaults")
    total: TotalQuota | None = same(NamespaceQuotaSpec, "total")
    network_isolation: NetworkIsolation = same(NamespaceQuotaSpec, "network_isolation")


_SPECS: dict[str, type[ApiModel]] = {
    "ModelDeployment": ModelDeploymentSpecV1beta1,
    "PreviewEnvironment": PreviewEnvironmentSpecV1beta1,
    "NamespaceQuota": NamespaceQuotaSpecV1beta1,
}
#: Every kind of the API at v1beta1: v1alpha1's names, scope, columns and status, with the v1beta1 specs.
KINDS: tuple[KindInfo, ...] = tuple(replace(info, spec_model=_SPECS[info.kind]) for info in v1alpha1.KINDS)
