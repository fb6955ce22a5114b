"""PreviewEnvironment: a short-lived copy of an application for one pull request, in its own namespace."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import ConfigDict, Field, StrictBool, StringConstraints, model_validator

from .common import (
    DNS1123_SUBDOMAIN_PATTERN,
    ApiModel,
    DNS1035Label,
    DNS1123Label,
    DNS1123Subdomain,
    GatewayRef,
    PositiveDuration,
    StatusBase,
    Time,
    UniqueStrings,
    cel,
    list_map,
    named,
    validations,
)
from .modeldeployment import EnvList, Image, ModelDeploymentSpec, Port, Resources

__all__ = [
    "GeneratedSecret",
    "LastUpdate",
    "PreviewEnvironmentSpec",
    "PreviewEnvironmentStatus",
    "PreviewIngress",
    "PreviewModel",
    "PreviewSecret",
    "PreviewService",
    "PreviewServiceStatus",
    "PreviewSource",
    "SecretCopy",
]

_SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
_ONE_SECRET_SOURCE = "set exactly one of copyFrom or generate"


class PreviewSource(ApiModel):
    """The code under review: repository, pull request and revision."""

    repository: Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^\S+$")] = Field(
        description="Repository of the pull request, e.g. github.com/acme/shop. Immutable.",
        json_schema_extra=validations(
            cel(
                "self == oldSelf",
                "source.repository is immutable; create a new PreviewEnvironment for another repository",
                reason="FieldValueForbidden",
            )
        ),
    )
    pull_request: int = Field(
        ge=1,
        le=2147483647,
        description="Number of the pull request this environment previews. Immutable.",
        json_schema_extra=validations(
            cel(
                "self == oldSelf",
                "source.pullRequest is immutable; create a new PreviewEnvironment for another pull request",
                reason="FieldValueForbidden",
            )
        ),
    )
    commit: Annotated[str, StringConstraints(min_length=7, max_length=64, pattern=r"^[0-9a-f]+$")] | None = Field(
        default=None,
        description="Commit SHA being previewed (7 to 64 lowercase hex digits). CI updates it on every push.",
    )
    branch: Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\s~^:?*\[\\]+$")] | None = (
        Field(default=None, description="Branch of the pull request, for display.")
    )


class PreviewService(ApiModel):
    """A workload of the preview: a Deployment, plus a Service when it listens on a port."""

    name: DNS1035Label = Field(
        description="Name of the service, unique in this environment; names the Deployment and Service, e.g. web."
    )
    image: Image = Field(description="Container image built from the pull request, e.g. ghcr.io/acme/shop:pr-1234.")
    port: Port = Field(default=8080, description="Port the container listens on.")
    replicas: int = Field(default=1, ge=0, le=10, description="Number of replicas (0 to 10).")
    env: EnvList = Field(default_factory=list, description="Environment variables of the container. Names are unique.")
    resources: Resources | None = Field(
        default=None,
        description="CPU and memory of each replica. When unset, the namespace's defaults (NamespaceQuota) apply.",
    )
    expose: StrictBool = Field(
        default=True,
        description="Route traffic from the preview's ingress host to this service (requires ingress).",
    )
    readiness_path: Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=r"^/\S*$")] | None = Field(
        default=None,
        description=(
            "HTTP path probed for readiness, e.g. /healthz. When unset, a replica is ready once its port accepts "
            "TCP connections."
        ),
    )


class PreviewModel(ApiModel):
    """A model served inside the preview, as a ModelDeployment in the preview namespace."""

    name: Annotated[DNS1035Label, StringConstraints(max_length=50)] = Field(
        description=(
            "Name of the ModelDeployment created in the preview namespace: at most 50 characters, like every "
            "ModelDeployment name."
        )
    )
    spec: ModelDeploymentSpec = Field(
        description="Spec of that ModelDeployment; see kubectl explain modeldeployment.spec."
    )


class SecretCopy(ApiModel):
    """Copy an existing Secret into the preview namespace."""

    name: DNS1123Subdomain = Field(description="Name of the Secret to copy; the copy has the same name.")
    namespace: DNS1123Label | None = Field(
        default=None,
        description=(
            "Namespace of the Secret. Defaults to the PreviewEnvironment's namespace. A Secret in another "
            "namespace is copied only if it opts in: its plinth.dev/preview-namespaces annotation must list the "
            "PreviewEnvironment's namespace (comma-separated names)."
        ),
    )


class GeneratedSecret(ApiModel):
    """Create a Secret with random values."""

    name: DNS1123Subdomain = Field(description="Name of the Secret created in the preview namespace.")
    keys: Annotated[
        list[Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=_SECRET_KEY_PATTERN)]],
        UniqueStrings,
    ] = Field(
        min_length=1,
        max_length=32,
        description="Keys of the Secret; each gets its own random value, e.g. SECRET_KEY. Values are never shown.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    length: int = Field(default=32, ge=16, le=128, description="Length of each random value, in characters.")


class PreviewSecret(ApiModel):
    """A Secret the preview needs: copied from an existing one, or generated. Exactly one of the two."""

    model_config = ConfigDict(
        json_schema_extra=validations(cel("has(self.copyFrom) != has(self.generate)", _ONE_SECRET_SOURCE))
    )

    copy_from: SecretCopy | None = Field(default=None, description="Copy an existing Secret.")
    generate: GeneratedSecret | None = Field(default=None, description="Create a Secret with random values.")

    @model_validator(mode="after")
    def _one_source(self) -> PreviewSecret:
        if (self.copy_from is None) == (self.generate is None):
            raise ValueError(_ONE_SECRET_SOURCE)
        return self

    @property
    def secret_name(self) -> str:
        """Name of the Secret in the preview namespace."""
        source = self.copy_from or self.generate
        assert source is not None  # guaranteed by _one_source
        return source.name


class PreviewIngress(ApiModel):
    """How the preview is reached from outside the cluster."""

    domain: Annotated[str, StringConstraints(min_length=1, max_length=190, pattern=DNS1123_SUBDOMAIN_PATTERN)] = Field(
        description=(
            "Parent DNS domain of preview hosts. The host is <name>-<pullRequest>.<domain>, e.g. "
            "shop-1234.preview.example.com (<name>.<domain> when the name already ends in -<pullRequest>, e.g. "
            "shop-pr-1234.preview.example.com); a wildcard DNS record must point *.<domain> at the ingress controller."
        )
    )
    class_name: DNS1123Subdomain | None = Field(
        default=None,
        description=(
            "IngressClass to use, e.g. nginx. Defaults to the cluster's default IngressClass. A class that does not "
            "exist stops the preview with reason IngressClassNotFound."
        ),
    )
    tls: bool = Field(
        default=True,
        description=(
            "Whether the ingress controller serves the hosts over HTTPS (e.g. with a wildcard certificate for "
            "*.<domain>); decides the scheme of status URLs."
        ),
    )
    gateway: GatewayRef | None = Field(
        default=None,
        description=(
            "Route through this Gateway with Gateway API HTTPRoutes instead of an Ingress. Requires the Gateway API "
            "CRDs; without them the preview stops with reason GatewayAPINotInstalled."
        ),
    )


_NOTHING_TO_RUN = "a preview runs at least one service or model"
_SECRET_NAMES = "secrets: each Secret name (copyFrom.name or generate.name) appears once"
_SECRET_NAME_CEL = "(has({0}.copyFrom) ? {0}.copyFrom.name : (has({0}.generate) ? {0}.generate.name : ''))"


def check_runs_something_with_distinct_secrets(
    services: Sequence[object], models: Sequence[object], secrets: Sequence[PreviewSecret]
) -> None:
    """The rules on a whole preview spec, at every API version: something to run, and each Secret named once."""
    if not services and not models:
        raise ValueError(_NOTHING_TO_RUN)
    names = [s.secret_name for s in secrets]
    if len(set(names)) != len(names):
        raise ValueError(_SECRET_NAMES)


class PreviewEnvironmentSpec(ApiModel):
    """What to run for the pull request, for how long, and how to reach it."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "(has(self.services) && size(self.services) > 0) || (has(self.models) && size(self.models) > 0)",
                _NOTHING_TO_RUN,
                field_path=".services",
            ),
            cel(
                "!has(self.secrets) || self.secrets.all(a, self.secrets.exists_one(b, "
                + _SECRET_NAME_CEL.format("b")
                + " == "
                + _SECRET_NAME_CEL.format("a")
                + "))",
                _SECRET_NAMES,
                field_path=".secrets",
            ),
        )
    )

    source: PreviewSource = Field(description="The pull request being previewed.")
    team: DNS1123Label = Field(
        description=(
            "Team owning the preview. Set as the plinth.dev/team label on the preview namespace, so that the "
            "team's NamespaceQuota applies."
        )
    )
    ttl: PositiveDuration = Field(
        default="72h",
        description=(
            "How long the environment lives after it was last applied, as a duration such as 72h or 30m. "
            "Re-applying the object (e.g. on every push) extends it; when it expires the environment is deleted."
        ),
    )
    sleep_after: PositiveDuration | None = Field(
        default=None,
        description=(
            "Scale every service to zero after this long without a change to the object (e.g. 8h); the next "
            "apply wakes it up. When unset the environment never sleeps."
        ),
    )
    services: Annotated[list[PreviewService], named("service")] = Field(
        default_factory=list,
        max_length=20,
        description="Workloads of the preview. Names are unique.",
        json_schema_extra=list_map("name"),
    )
    models: Annotated[list[PreviewModel], named("model")] = Field(
        default_factory=list,
        max_length=5,
        description="Models served in the preview, each as a ModelDeployment. Names are unique.",
        json_schema_extra=list_map("name"),
    )
    secrets: list[PreviewSecret] = Field(
        default_factory=list,
        max_length=20,
        description="Secrets created in the preview namespace, copied or generated.",
    )
    ingress: PreviewIngress | None = Field(
        default=None,
        description="Expose the preview on a public host. When unset, services are reachable only in the cluster.",
    )

    @model_validator(mode="after")
    def _runs_something_with_distinct_secrets(self) -> PreviewEnvironmentSpec:
        check_runs_something_with_distinct_secrets(self.services, self.models, self.secrets)
        return self


class PreviewServiceStatus(ApiModel):
    """Observed state of one service of the preview."""

    name: Annotated[str, StringConstraints(max_length=63)] = Field(description="Name of the service.")
    url: Annotated[str, StringConstraints(max_length=2048)] | None = Field(
        default=None, description="URL of the service, when it is exposed."
    )
    ready_replicas: int = Field(default=0, ge=0, description="Replicas ready to serve.")
    replicas: int = Field(default=0, ge=0, description="Replicas that exist.")


class LastUpdate(ApiModel):
    """The latest change of the spec the operator saw (e.g. a push): ttl and sleepAfter count from its time."""

    generation: int = Field(ge=0, description="metadata.generation of that change.")
    time: Time = Field(description="When the operator first saw that generation (RFC 3339).")


class PreviewEnvironmentStatus(StatusBase):
    """Observed state of a PreviewEnvironment, written by the operator."""

    namespace: Annotated[str, StringConstraints(max_length=63)] | None = Field(
        default=None, description="Namespace created for the preview."
    )
    url: Annotated[str, StringConstraints(max_length=2048)] | None = Field(
        default=None, description="Public URL of the preview, when ingress is configured."
    )
    expires_at: Time | None = Field(
        default=None, description="When the environment will be deleted unless it is re-applied (RFC 3339)."
    )
    sleeping: bool = Field(default=False, description="True while services are scaled to zero because of sleepAfter.")
    last_update: LastUpdate | None = Field(
        default=None, description="The latest spec change: ttl and sleepAfter count from its time."
    )
    secrets: Annotated[
        list[Annotated[str, StringConstraints(max_length=253)]],
        UniqueStrings,
    ] = Field(
        default_factory=list,
        max_length=20,
        description="Names of the Secrets Plinth wrote into the preview namespace (never their values).",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    services: Annotated[list[PreviewServiceStatus], named("service")] = Field(
        default_factory=list,
        max_length=20,
        description="State of each service.",
        json_schema_extra=list_map("name"),
    )
