"""The plinth.dev/v1alpha1 API: pydantic models of every kind, and the per-kind metadata that makes them CRDs.

Field-level facts (types, descriptions, validation, CEL rules) live on the pydantic models; kind-level facts
(names, scope, printer columns, rules on the whole object) live in one ``KindInfo`` per kind, in ``KINDS``.
``plinth.operator.api.crdgen`` turns the two into the CRD manifests under ``crds/`` and ``docs/reference.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from .common import (
    ApiModel,
    Condition,
    ConditionStatus,
    LabelSelector,
    LabelSelectorRequirement,
    LocalObjectReference,
    Quantity,
    ResourceList,
    StatusBase,
    format_time,
    parse_duration,
    parse_quantity,
    parse_time,
)
from .modeldeployment import (
    Auth,
    Autoscaling,
    Canary,
    CanaryAutoPromote,
    CanaryMetricGate,
    CanaryRollback,
    EnvVar,
    EnvVarSource,
    HistoryEntry,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    ModelFormat,
    ModelSource,
    Monitoring,
    Outcome,
    RateLimit,
    Resources,
    Runtime,
    SecretKeySelector,
    Storage,
)
from .namespacequota import (
    ContainerDefaults,
    NamespaceQuotaSpec,
    NamespaceQuotaStatus,
    NetworkIsolation,
    PerNamespaceQuota,
    SelectedNamespaces,
    TotalQuota,
)
from .previewenvironment import (
    GeneratedSecret,
    PreviewEnvironmentSpec,
    PreviewEnvironmentStatus,
    PreviewIngress,
    PreviewModel,
    PreviewSecret,
    PreviewService,
    PreviewServiceStatus,
    PreviewSource,
    SecretCopy,
)

__all__ = [
    "API_VERSION",
    "CATEGORY",
    "GROUP",
    "KINDS",
    "MODEL_DEPLOYMENT",
    "NAMESPACE_QUOTA",
    "PREVIEW_ENVIRONMENT",
    "VERSION",
    "ApiModel",
    "Auth",
    "Autoscaling",
    "Canary",
    "CanaryAutoPromote",
    "CanaryMetricGate",
    "CanaryRollback",
    "Condition",
    "ConditionStatus",
    "ContainerDefaults",
    "EnvVar",
    "EnvVarSource",
    "GeneratedSecret",
    "HistoryEntry",
    "KindInfo",
    "LabelSelector",
    "LabelSelectorRequirement",
    "LocalObjectReference",
    "ModelDeploymentSpec",
    "ModelDeploymentStatus",
    "ModelFormat",
    "ModelSource",
    "Monitoring",
    "NamespaceQuotaSpec",
    "NamespaceQuotaStatus",
    "NetworkIsolation",
    "Outcome",
    "PerNamespaceQuota",
    "PreviewEnvironmentSpec",
    "PreviewEnvironmentStatus",
    "PreviewIngress",
    "PreviewModel",
    "PreviewSecret",
    "PreviewService",
    "PreviewServiceStatus",
    "PreviewSource",
    "PrinterColumn",
    "Quantity",
    "RateLimit",
    "ResourceList",
    "Resources",
    "Runtime",
    "SecretCopy",
    "SecretKeySelector",
    "SelectedNamespaces",
    "StatusBase",
    "Storage",
    "TotalQuota",
    "format_time",
    "kind_info",
    "parse_duration",
    "parse_quantity",
    "parse_time",
]

GROUP = "plinth.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "plinth"


@dataclass(frozen=True)
class PrinterColumn:
    """One ``additionalPrinterColumns`` entry: a column of ``kubectl get``."""

    name: str
    type: Literal["string", "integer", "number", "boolean", "date"]
    json_path: str
    description: str
    priority: int = 0  # 0: always shown; 1: only with `kubectl get -o wide`


@dataclass(frozen=True)
class KindInfo:
    """Everything about a kind that is not a field: names, scope, columns and rules on the whole object."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    scope: Literal["Namespaced", "Cluster"]
    spec_model: type[ApiModel]
    status_model: type[StatusBase]
    printer_columns: tuple[PrinterColumn, ...]
    description: str
    #: CEL rules on the whole object (they may read ``self.metadata.name``), same shape as the fields' rules.
    validations: tuple[Mapping[str, str], ...] = field(default=())
    categories: tuple[str, ...] = (CATEGORY,)

    @property
    def list_kind(self) -> str:
        """``kind`` of a list of these objects."""
        return f"{self.kind}List"

    @property
    def crd_name(self) -> str:
        """``metadata.name`` of the CustomResourceDefinition."""
        return f"{self.plural}.{GROUP}"

    @property
    def namespaced(self) -> bool:
        """Whether objects of the kind live in a namespace."""
        return self.scope == "Namespaced"


def _ready_columns() -> tuple[PrinterColumn, ...]:
    return (
        PrinterColumn(
            "Ready",
            "string",
            '.status.conditions[?(@.type=="Ready")].status',
            "Whether the object is ready: True, False or Unknown.",
        ),
        PrinterColumn(
            "Status",
            "string",
            '.status.conditions[?(@.type=="Ready")].message',
            "What the object is waiting for, or what went wrong.",
            priority=1,
        ),
    )


_AGE = PrinterColumn("Age", "date", ".metadata.creationTimestamp", "Time since the object was created.")


def _name_rule(pattern: str, max_length: int, what: str) -> dict[str, str]:
    return {
        "rule": f"size(self.metadata.name) <= {max_length} && self.metadata.name.matches('{pattern}')",
        "message": f"metadata.name must be at most {max_length} characters long and {what}",
    }


MODEL_DEPLOYMENT = KindInfo(
    kind="ModelDeployment",
    plural="modeldeployments",
    singular="modeldeployment",
    short_names=("md",),
    scope="Namespaced",
    spec_model=ModelDeploymentSpec,
    status_model=ModelDeploymentStatus,
    description=(
        "ModelDeployment serves one version of a machine-learning model behind a stable in-cluster URL, with fixed "
        "or autoscaled replicas, and can run a canary of the next version with a share of the traffic."
    ),
    printer_columns=(
        PrinterColumn("Model", "string", ".spec.model.name", "Name of the served model."),
        PrinterColumn("Version", "string", ".status.activeVersion", "Model version serving most of the traffic."),
        PrinterColumn("Canary", "string", ".status.canaryVersion", "Model version running as canary."),
        PrinterColumn("Canary%", "integer", ".status.canary.trafficPercent", "Share of endpoints on the canary."),
        PrinterColumn("Available", "integer", ".status.readyReplicas", "Replicas ready to serve."),
        *_ready_columns(),
        PrinterColumn("URL", "string", ".status.url", "In-cluster URL of the inference endpoint."),
        _AGE,
    ),
    validations=(
        # The name becomes a Service name (RFC 1035) and prefixes derived names such as <name>-canary.
        _name_rule(
            "^[a-z]([-a-z0-9]*[a-z0-9])?$",
            50,
            "a DNS-1035 label (lowercase letters, digits, '-'; starting with a letter)",
        ),
    ),
)

PREVIEW_ENVIRONMENT = KindInfo(
    kind="PreviewEnvironment",
    plural="previewenvironments",
    singular="previewenvironment",
    short_names=("pe",),
    scope="Namespaced",
    spec_model=PreviewEnvironmentSpec,
    status_model=PreviewEnvironmentStatus,
    description=(
        "PreviewEnvironment runs a short-lived copy of an application for one pull request in a namespace of its "
        "own, with its services, models and secrets, reachable at <name>-<pullRequest>.<domain>. It is deleted "
        "when its ttl expires."
    ),
    printer_columns=(
        PrinterColumn("PR", "integer", ".spec.source.pullRequest", "Number of the previewed pull request."),
        PrinterColumn("Team", "string", ".spec.team", "Team owning the preview.", priority=1),
        PrinterColumn("URL", "string", ".status.url", "Public URL of the preview."),
        *_ready_columns()[:1],
        PrinterColumn("Expires", "string", ".status.expiresAt", "When the preview is deleted unless re-applied."),
        *_ready_columns()[1:],
        _AGE,
    ),
    validations=(
        # The name is the first label of the preview host <name>-<pullRequest>.<domain> and names its namespace.
        _name_rule("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", 40, "a DNS-1123 label (lowercase letters, digits, '-')"),
    ),
)

NAMESPACE_QUOTA = KindInfo(
    kind="NamespaceQuota",
    plural="namespacequotas",
    singular="namespacequota",
    short_names=("nsq",),
    scope="Cluster",
    spec_model=NamespaceQuotaSpec,
    status_model=NamespaceQuotaStatus,
    description=(
        "NamespaceQuota gives every namespace it selects (by label or by name) the same ResourceQuota, container "
        "defaults (LimitRange) and network isolation (NetworkPolicy), and limits the combined usage of all of them."
    ),
    printer_columns=(
        PrinterColumn("Namespaces", "integer", ".status.namespaces.count", "Number of selected namespaces."),
        PrinterColumn("Used/Total", "string", ".status.summary", "Combined usage against spec.total.hard."),
        *_ready_columns(),
        _AGE,
    ),
)

#: Every kind of the API, in the order the documentation presents them.
KINDS: tuple[KindInfo, ...] = (MODEL_DEPLOYMENT, PREVIEW_ENVIRONMENT, NAMESPACE_QUOTA)


def kind_info(kind: str) -> KindInfo:
    """The KindInfo of ``kind`` (e.g. "ModelDeployment"); KeyError if the API has no such kind."""
    for info in KINDS:
        if info.kind == kind:
            return info
    raise KeyError(kind)
