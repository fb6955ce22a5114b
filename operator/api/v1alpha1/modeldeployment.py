"""ModelDeployment: serve one version of a machine-learning model, optionally with a canary of the next one."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, Strict, StringConstraints, model_validator

from .common import (
    SEMVER_PATTERN,
    ApiModel,
    DNS1123Label,
    DNS1123Subdomain,
    Duration,
    GatewayRef,
    LocalObjectReference,
    PositiveDuration,
    ResourceList,
    StatusBase,
    Time,
    UniqueStrings,
    cel,
    list_map,
    list_set,
    named,
    quantity_exceeds,
    quantity_rule,
    validations,
)

__all__ = [
    "MODEL_URI_PATTERN",
    "Auth",
    "Autoscaling",
    "Canary",
    "CanaryAutoPromote",
    "CanaryRollback",
    "EnvList",
    "EnvVar",
    "EnvVarSource",
    "HistoryEntry",
    "ModelDeploymentSpec",
    "ModelDeploymentStatus",
    "ModelFormat",
    "ModelRoute",
    "ModelSource",
    "Monitoring",
    "Outcome",
    "RateLimit",
    "Resources",
    "Runtime",
    "SecretKeySelector",
    "Storage",
]

#: Where model artifacts may be fetched from.
MODEL_URI_PATTERN = r"^(s3|gs|https|pvc|oci)://[^\s]+$"
_ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"

SemVer = Annotated[str, StringConstraints(max_length=64, pattern=SEMVER_PATTERN)]
ModelUri = Annotated[str, StringConstraints(max_length=2048, pattern=MODEL_URI_PATTERN)]
Image = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^\S+$")]
Port = Annotated[int, Strict(), Field(ge=1, le=65535)]
Outcome = Literal["Active", "Promoted", "RolledBack", "Superseded"]

_URI_HELP = (
    "Where the model artifact is fetched from: s3://bucket/path, gs://bucket/path, https://host/path, "
    "pvc://claim-name/path or oci://registry/repository:tag."
)
_REPLICAS_XOR = "replicas and autoscaling are mutually exclusive: set one of them"
_CANARY_SAME_VERSION = "canary.version must differ from model.version"
_MIN_ABOVE_MAX = "minReplicas must not exceed maxReplicas"
_REQUESTS_ABOVE_LIMITS = "requests must not exceed limits for the same resource"
_VALUE_XOR = "set value or valueFrom, not both"


class ModelSource(ApiModel):
    """Which model is served and where its artifact lives."""

    name: DNS1123Label = Field(
        description=(
            "Name of the model, e.g. fraud-scorer. Immutable: to serve another model, create another ModelDeployment."
        ),
        json_schema_extra=validations(
            cel(
                "self == oldSelf",
                "model.name is immutable; create a new ModelDeployment to serve another model",
                reason="FieldValueForbidden",
            )
        ),
    )
    version: SemVer = Field(
        description=(
            "Version of the model to serve, a semantic version without a leading v, e.g. 1.4.0 or 2.0.0-rc.1. "
            "Changing it rolls out the new version (directly, or through canary when one is configured)."
        ),
    )
    uri: ModelUri = Field(description=_URI_HELP)


class SecretKeySelector(ApiModel):
    """A key of a Secret in the same namespace."""

    name: DNS1123Subdomain = Field(description="Name of the Secret, in the same namespace.")
    key: Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")] = Field(
        description="Key within the Secret whose value is used."
    )


class EnvVarSource(ApiModel):
    """Where the value of an environment variable comes from."""

    secret_key_ref: SecretKeySelector = Field(description="Take the value from a key of a Secret.")


class EnvVar(ApiModel):
    """An environment variable of the container: a literal value, or a reference to a Secret key."""

    model_config = ConfigDict(
        json_schema_extra=validations(cel("!(has(self.value) && has(self.valueFrom))", _VALUE_XOR))
    )

    name: Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=_ENV_NAME_PATTERN)] = Field(
        description="Name of the environment variable, e.g. LOG_LEVEL."
    )
    value: Annotated[str, StringConstraints(max_length=32768)] | None = Field(
        default=None, description="Literal value. Leave unset when valueFrom is used."
    )
    value_from: EnvVarSource | None = Field(
        default=None, description="Take the value from a Secret instead of writing it here."
    )

    @model_validator(mode="after")
    def _one_source(self) -> EnvVar:
        if self.value is not None and self.value_from is not None:
            raise ValueError(_VALUE_XOR)
        return self


#: Environment of a container, merged by name by server-side apply.
EnvList = Annotated[
    list[EnvVar],
    named("environment variable"),
    Field(max_length=64, json_schema_extra=list_map("name")),
]

_ENV_HELP = "Environment variables of the container. Names are unique."


ModelFormat = Literal["sklearn", "onnx"]


#: What Plinth sets in the model server's environment from the spec; runtime.env may not override it (a later
#: entry of the same name wins in Kubernetes, so a canary would load the stable's MODEL_URI).
SPEC_ENV = (
    "MODEL_NAME",
    "MODEL_VERSION",
    "MODEL_URI",
    "MODEL_FORMAT",
    "MODEL_STORAGE_CREDENTIALS_DIR",
    "AUTH_TOKENS_FILE",
    "RATE_LIMIT_RPS",
    "RATE_LIMIT_BURST",
)
_SPEC_ENV_MESSAGE = (
    f"runtime.env may not set {', '.join(SPEC_ENV)}: Plinth sets them from the spec (model, storage, auth, "
    "rateLimit, runtime.format); nor PORT with Plinth's server: set runtime.port"
)
_SPEC_ENV_CEL = "[" + ", ".join(f"'{name}'" for name in SPEC_ENV) + "]"


class Runtime(ApiModel):
    """The container that serves the model: Plinth's model server by default, or an image of your own."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.env) || self.env.all(e, "
                f"!(e.name in {_SPEC_ENV_CEL}) && (has(self.image) || e.name != 'PORT'))",
                _SPEC_ENV_MESSAGE,
                field_path=".env",
            )
        )
    )

    image: Image | None = Field(
        default=None,
        description=(
            "Container image of the model server, e.g. ghcr.io/acme/model-server:2.1. Unset: Plinth's own server "
            "(the Open Inference Protocol v2; docs/serving.md), with probes on its health endpoints and its metrics "
            "scraped. A custom image reads MODEL_URI, MODEL_NAME and MODEL_VERSION from its environment."
        ),
    )
    format: ModelFormat | None = Field(
        default=None,
        description=(
            "Format of the model artifact for Plinth's server (MODEL_FORMAT): sklearn (joblib) or onnx. Unset: "
            "from the artifact's file name (.joblib, .pkl, .onnx)."
        ),
    )
    port: Port = Field(default=8080, description="Port the model server listens on for inference requests.")
    env: EnvList = Field(default_factory=list, description=_ENV_HELP)
    args: list[Annotated[str, StringConstraints(max_length=4096)]] = Field(
        default_factory=list,
        max_length=64,
        description="Arguments passed to the model server, in order.",
    )

    @model_validator(mode="after")
    def _env_left_to_plinth(self) -> Runtime:
        if any(e.name in SPEC_ENV or (self.image is None and e.name == "PORT") for e in self.env):
            raise ValueError(_SPEC_ENV_MESSAGE)
        return self


class Storage(ApiModel):
    """Access to the model artifact store."""

    secret_ref: LocalObjectReference | None = Field(
        default=None,
        description=(
            "Secret in the same namespace with the credentials to fetch the model artifact (for example "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for s3://)."
        ),
    )


class Auth(ApiModel):
    """Bearer-token authentication of inference requests."""

    secret_ref: LocalObjectReference = Field(
        description=(
            "Secret in the same namespace whose every key holds one accepted bearer token. It is mounted into the "
            "model server (AUTH_TOKENS_FILE); rotating the Secret rotates the tokens without a restart. Requests "
            "without a token get 401, with an unknown one 403; health and metrics stay open."
        )
    )


class RateLimit(ApiModel):
    """A token bucket per bearer token (one bucket for all callers without auth)."""

    requests_per_second: float = Field(
        ge=0.001,
        le=1_000_000,
        description="Requests per second each token may make on average, e.g. 50.",
        # The API server compares an integer against the minimum truncated to an integer (0 would pass).
        json_schema_extra=validations(cel("double(self) >= 0.001", "must be at least 0.001")),
    )
    burst: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Requests a token may make at once before the rate applies. Defaults to requestsPerSecond.",
    )


class Autoscaling(ApiModel):
    """Horizontal autoscaling of the model server (a HorizontalPodAutoscaler)."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.minReplicas) || self.minReplicas <= self.maxReplicas",
                _MIN_ABOVE_MAX,
                field_path=".minReplicas",
            )
        )
    )

    min_replicas: int = Field(default=1, ge=1, le=1000, description="Fewest replicas to run.")
    max_replicas: int = Field(ge=1, le=1000, description="Most replicas to run. Must be at least minReplicas.")
    target_cpu_utilization_percentage: int | None = Field(
        default=None,
        alias="targetCPUUtilizationPercentage",
        ge=1,
        le=1000,
        description=(
            "Average CPU usage, as a percentage of the CPU request, to keep replicas at. When neither target is set, "
            "80 is used."
        ),
    )
    target_memory_utilization_percentage: int | None = Field(
        default=None,
        alias="targetMemoryUtilizationPercentage",
        ge=1,
        le=1000,
        description="Average memory usage, as a percentage of the memory request, to keep replicas at.",
    )

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(_MIN_ABOVE_MAX)
        return self


class Resources(ApiModel):
    """Compute resources of the container, as in a Pod's resources field."""

    model_config = ConfigDict(
        json_schema_extra=validations(cel(quantity_rule("requests", "limits"), _REQUESTS_ABOVE_LIMITS))
    )

    requests: ResourceList | None = Field(
        default=None,
        description="Resources reserved for the container, e.g. cpu: 500m, memory: 1Gi.",
    )
    limits: ResourceList | None = Field(
        default=None,
        description="The most the container may use, e.g. memory: 2Gi. Must be at least the request.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Resources:
        if bad := quantity_exceeds(self.requests, self.limits):
            raise ValueError(f"{_REQUESTS_ABOVE_LIMITS} ({', '.join(bad)})")
        return self


class CanaryAutoPromote(ApiModel):
    """Promote the canary automatically once it has been healthy long enough."""

    after: Duration = Field(
        description=(
            "How long the canary must stay healthy (CanaryHealthy=True) before it is promoted, as a duration such "
            "as 10m or 1h30m."
        )
    )


class CanaryMetricGate(ApiModel):
    """A Prometheus query the canary must keep at or below a threshold (e.g. its error rate)."""

    query: Annotated[str, StringConstraints(min_length=1, max_length=4096)] = Field(
        description=(
            "PromQL returning one number for the canary; {{name}}, {{namespace}} and {{version}} are replaced by the "
            "ModelDeployment's name, namespace and the canary version, e.g. sum(rate(http_requests_total{namespace=\""
            '{{namespace}}",version="{{version}}",code=~"5.."}[1m])) / sum(rate(http_requests_total{namespace='
            '"{{namespace}}",version="{{version}}"}[1m])).'
        )
    )
    max: float = Field(ge=0, description="Roll the canary back when the query's value is above this, e.g. 0.05.")


class CanaryRollback(ApiModel):
    """When a canary is given up."""

    max_restarts: int = Field(
        default=3,
        ge=1,
        le=100,
        description=(
            "Roll the canary back when one of its containers has restarted this many times, or is in CrashLoopBackOff."
        ),
    )
    ready_timeout: PositiveDuration = Field(
        default="10m",
        description=(
            "Roll the canary back when its pods are not all Ready this long after it started (Go duration, e.g. "
            "10m): a canary that never becomes Ready is given up, not waited for forever."
        ),
    )
    metric: CanaryMetricGate | None = Field(
        default=None,
        description=(
            "Also roll back when this Prometheus query is above its maximum while the canary is Healthy; promotion "
            "waits until the query returns data. Needs the operator's Prometheus URL (PLINTH_PROMETHEUS_URL)."
        ),
    )


class Canary(ApiModel):
    """A second version served next to the active one, receiving a share of the traffic."""

    version: SemVer = Field(description="Version of the canary model. Must differ from model.version.")
    uri: ModelUri = Field(description=_URI_HELP)
    image: Image | None = Field(
        default=None,
        description="Container image of the canary's model server. Defaults to runtime.image (or Plinth's server).",
    )
    traffic_percent: int = Field(
        default=10, ge=0, le=100, description="Percentage of requests sent to the canary (0 to 100)."
    )
    auto_promote: CanaryAutoPromote | None = Field(
        default=None,
        description=(
            "Promote the canary automatically. When unset, promote it by setting model.version and model.uri to "
            "the canary's and removing canary."
        ),
    )
    rollback: CanaryRollback = Field(
        default_factory=CanaryRollback,
        description="When the canary is rolled back. When unset, it is rolled back after 3 restarts.",
    )


class ServiceLevelObjective(ApiModel):
    """Alerts on the model's own service level, as a PrometheusRule (when the Prometheus Operator is installed)."""

    error_ratio_query: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = Field(
        default=None,
        description=(
            "PromQL for the share of failed requests (0 to 1); {{name}}, {{namespace}} and {{version}} are "
            'substituted (version: the active one), e.g. sum(rate(http_requests_total{namespace="{{namespace}}",'
            'code=~"5.."}[5m])) / sum(rate(http_requests_total{namespace="{{namespace}}"}[5m])).'
        ),
    )
    max_error_ratio: float | None = Field(
        default=None, ge=0, le=1, description="Alert when the error ratio is above this (default 0.01)."
    )
    latency_query: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = Field(
        default=None,
        description="PromQL for a latency in seconds (e.g. a p99 from histogram_quantile); placeholders as above.",
    )
    max_latency_seconds: float | None = Field(
        default=None,
        ge=0.001,
        description="Alert when the latency is above this, in seconds (default 1).",
        json_schema_extra=validations(cel("double(self) >= 0.001", "must be at least 0.001")),
    )
    for_: Duration = Field(
        default="5m", alias="for", description="How long the objective must be missed before the alert fires."
    )


class Monitoring(ApiModel):
    """Where Prometheus scrapes the model server's metrics."""

    metrics_port: Port | None = Field(default=None, description="Port serving metrics. Defaults to runtime.port.")
    metrics_path: Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^/\S*$")] = Field(
        default="/metrics", description="HTTP path serving metrics in the Prometheus text format."
    )
    slo: ServiceLevelObjective | None = Field(
        default=None,
        description=(
            "Error-ratio and latency alerts for this model, created as a PrometheusRule when the cluster serves "
            "monitoring.coreos.com/v1 PrometheusRule."
        ),
    )


class ModelRoute(ApiModel):
    """Serve the model through a Gateway API Gateway: an HTTPRoute named like the ModelDeployment, attached to the
    Gateway, whose backend weights give a canary exactly canary.trafficPercent of the requests that come through it."""

    gateway: GatewayRef = Field(description="The Gateway to attach to, e.g. {name: public, namespace: gateways}.")
    hostnames: Annotated[list[DNS1123Subdomain], UniqueStrings] | None = Field(
        default=None,
        max_length=16,
        description=(
            "Host names the route answers, e.g. [iris.models.example.com]. Unset: every host the Gateway's listener "
            "accepts."
        ),
        json_schema_extra=list_set(),
    )
    path_prefix: Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^/[^\s?#]*$")] = Field(
        default="/",
        description=(
            "Requests whose path starts with this go to the model, e.g. /v2/models/iris for one model on a shared "
            "host; sent on unchanged."
        ),
    )


class ModelDeploymentSpec(ApiModel):
    """The model to serve and how to serve it."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel("!(has(self.replicas) && has(self.autoscaling))", _REPLICAS_XOR, field_path=".autoscaling"),
            cel(
                "!has(self.canary) || self.canary.version != self.model.version",
                _CANARY_SAME_VERSION,
                field_path=".canary.version",
            ),
        )
    )

    model: ModelSource = Field(description="The model to serve: its name, version and artifact location.")
    runtime: Runtime = Field(
        default_factory=Runtime, description="The container that serves the model. Unset: Plinth's model server."
    )
    storage: Storage | None = Field(default=None, description="Credentials for fetching the model artifact.")
    auth: Auth | None = Field(
        default=None, description="Require a bearer token on inference requests. When unset, no token is asked."
    )
    rate_limit: RateLimit | None = Field(
        default=None, description="Limit each caller's request rate (429 with Retry-After above it)."
    )
    replicas: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description=(
            "Fixed number of model server replicas; 1 when neither replicas nor autoscaling is set. 0 stops serving "
            "but keeps the object. Mutually exclusive with autoscaling."
        ),
    )
    autoscaling: Autoscaling | None = Field(
        default=None, description="Scale replicas with load instead of a fixed count. Mutually exclusive with replicas."
    )
    resources: Resources | None = Field(default=None, description="CPU, memory and other resources of each replica.")
    canary: Canary | None = Field(
        default=None,
        description="Serve a candidate version next to the active one with a share of the traffic. Remove to cancel.",
    )
    route: ModelRoute | None = Field(
        default=None,
        description=(
            "Serve the model through a Gateway (north-south), with the canary's share split by route weights. "
            "Unset: the model is reached through its Service only."
        ),
    )
    monitoring: Monitoring | None = Field(
        default=None,
        description=(
            "Expose the model server's metrics to Prometheus. When unset: Plinth's server is scraped on its /metrics; "
            "a custom image gets no scrape target."
        ),
    )

    @model_validator(mode="after")
    def _consistent(self) -> ModelDeploymentSpec:
        if self.replicas is not None and self.autoscaling is not None:
            raise ValueError(_REPLICAS_XOR)
        if self.canary is not None and self.canary.version == self.model.version:
            raise ValueError(_CANARY_SAME_VERSION)
        return self

    @property
    def plinth_server(self) -> bool:
        """Whether Plinth's own model server runs (runtime.image unset), so its endpoints and metrics are known."""
        return self.runtime.image is None

    @property
    def effective_monitoring(self) -> Monitoring | None:
        """spec.monitoring, or the server's own /metrics on runtime.port when Plinth's server runs."""
        if self.monitoring is None and self.plinth_server:
            return Monitoring()
        return self.monitoring

    @property
    def fixed_replicas(self) -> int | None:
        """Replica count to set on the Deployment, or None when a HorizontalPodAutoscaler owns it."""
        if self.autoscaling is not None:
            return None
        return 1 if self.replicas is None else self.replicas


class HistoryEntry(ApiModel):
    """One version that was served, and how its time ended."""

    version: SemVer = Field(description="The model version.")
    started_at: Time = Field(description="When the version started serving traffic (RFC 3339).")
    ended_at: Time | None = Field(default=None, description="When it stopped serving traffic; unset while active.")
    outcome: Outcome = Field(
        description=(
            "Active: currently served. Promoted: a canary that became the active version. RolledBack: a canary "
            "that was given up. Superseded: replaced by a newer active version."
        )
    )


CanaryPhase = Literal["Progressing", "Healthy", "Promoted", "RolledBack"]


class CanaryStatus(ApiModel):
    """Where the canary stands: the state behind promotion and rollback."""

    version: SemVer = Field(description="The canary version this status describes.")
    phase: CanaryPhase = Field(
        description=(
            "Progressing: canary pods are starting. Healthy: every canary pod is Ready and none crash-loops; "
            "autoPromote counts from healthySince. Promoted: the stable Deployment now serves this version (update "
            "spec.model to it and remove spec.canary to make that permanent). RolledBack: the canary failed its "
            "health gate and was removed; change or remove spec.canary to try again."
        )
    )
    started_at: Time | None = Field(default=None, description="When this canary version started (RFC 3339).")
    healthy_since: Time | None = Field(default=None, description="When the canary last became healthy (RFC 3339).")
    replicas: int = Field(default=0, ge=0, description="Canary replicas that exist.")
    ready_replicas: int = Field(default=0, ge=0, description="Canary replicas that are Ready.")
    traffic_percent: int = Field(
        default=0,
        ge=0,
        le=100,
        description=(
            "Share of requests going to the canary: the HTTPRoute weight when split by HTTPRoute, else the share of "
            "the Service's endpoints that are canary pods."
        ),
    )
    message: Annotated[str, StringConstraints(max_length=512)] | None = Field(
        default=None, description="What the health gate last said, e.g. the metric gate's value against its maximum."
    )
    split_by: Literal["HTTPRoute", "ReplicaRatio"] = Field(
        default="ReplicaRatio",
        description=(
            "How traffic is split: HTTPRoute when a Gateway API implementation has accepted the model's HTTPRoute "
            "(backend weights, exact, for the requests it routes: through spec.route's Gateway, or a mesh that "
            "implements routes attached to the Service), else ReplicaRatio (kube-proxy spreads connections over all "
            "pods of the Service)."
        ),
    )


class ModelDeploymentStatus(StatusBase):
    """Observed state of a ModelDeployment, written by the operator."""

    url: Annotated[str, StringConstraints(max_length=2048)] | None = Field(
        default=None, description="In-cluster URL of the inference endpoint."
    )
    active_version: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        default=None, description="Model version currently serving most of the traffic."
    )
    canary_version: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        default=None, description="Model version currently running as canary, if any."
    )
    canary: CanaryStatus | None = Field(default=None, description="State of the canary, while spec.canary is set.")
    replicas: int | None = Field(default=None, ge=0, description="Replicas of the active version that exist.")
    ready_replicas: int | None = Field(
        default=None, ge=0, description="Replicas of the active version that are ready to serve."
    )
    history: list[HistoryEntry] = Field(
        default_factory=list,
        max_length=20,
        description="Versions served, most recent first; only the 20 most recent are kept.",
    )
