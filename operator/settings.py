"""Operator settings, read once from the environment (PLINTH_*) at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass

FIELD_MANAGER = "plinth"
FINALIZER = "plinth.dev/finalizer"
MANAGED_BY = {"app.kubernetes.io/managed-by": "plinth"}
MANAGED_BY_SELECTOR = ",".join(f"{k}={v}" for k, v in MANAGED_BY.items())
# kopf's diff base (the spec it last handled, as JSON): kopf's own bookkeeping, read by kopf only.
DIFFBASE_ANNOTATION = "plinth.dev/last-handled-spec"
INITIAL_LISTINGS = ("auto", "stream", "list")
#: Plinth's model server image, run by a ModelDeployment without runtime.image (the chart sets PLINTH_SERVING_IMAGE
#: to the image it installs with; `plinth cluster up` builds and loads this name).
SERVING_IMAGE = "plinth.local/plinth-serving:dev"


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    if value.lower() not in ("true", "false", "1", "0"):
        raise ValueError(f"expected true or false, got {value!r}")
    return value.lower() in ("true", "1")


@dataclass(frozen=True)
class Settings:
    log_level: str = "INFO"
    """Log level of the operator's JSON logs."""

    max_workers: int = 20
    """kopf's cap on concurrently handled objects: bounds memory and API load on a 2-core operator pod."""

    watch_timeout_seconds: int = 300
    """Server-side timeout of each watch request; kopf re-establishes the watch, so silent stalls cannot last."""

    resync_seconds: float = 300
    """Each object is reconciled at least this often even when nothing changed, to repair drift of children the
    operator does not watch (Services, Secrets, Ingresses...)."""

    resync_per_second: float = 5
    """At most this many of those resyncs a second, oldest first: over N objects each is resynced every
    max(resync_seconds, N / resync_per_second) seconds, so the load stays flat as N grows."""

    initial_listing: str = "auto"
    """How the operator gets every watched object when it starts: ``stream`` (the API server sends them one at a time
    on the watch itself; Kubernetes 1.34 or newer), ``list`` (one LIST response per kind, held whole while it is
    decoded: the operator's memory peak at a restart) or ``auto`` (``stream`` when the API server is 1.34 or
    newer)."""

    workload_otlp_endpoint: str | None = None
    """OTLP endpoint injected into model servers and preview services as OTEL_EXPORTER_OTLP_ENDPOINT (with
    OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES); nothing is injected when unset."""

    workload_resource_attributes: str | None = None
    """Extra OTEL_RESOURCE_ATTRIBUTES for workloads, e.g. deployment.environment=prod,k8s.cluster.name=eu-1."""

    serving_image: str = SERVING_IMAGE
    """Image of Plinth's model server, for ModelDeployments that set no runtime.image."""

    prometheus_url: str | None = None
    """Prometheus the canary metric gate queries (spec.canary.rollback.metric), e.g. http://prometheus.monitoring:9090."""

    peering_name: str = "plinth"
    """Name of the ClusterKopfPeering object replicas meet in (`plinth run --no-standalone`); replicas with different
    names do not see each other, so every replica of one installation must use the same name."""

    peering_lifetime_seconds: int = 10
    """How long a replica's keep-alive counts: a standby takes over at most this long after the active replica died
    without saying goodbye (SIGKILL, node loss). Must exceed the clock skew between nodes by a few seconds."""

    peering_priority: int | None = None
    """Fixed kopf peering priority. Unset, each replica derives one from its start time (older replicas win, so a
    new replica never pre-empts a working one); set it (>= 0) only for a debugging operator that should pause the
    deployed replicas, never to the same value on two replicas (kopf pauses both)."""

    webhook_port: int = 9443
    """Port of the conversion webhook (HTTPS, /convert); 0: not served."""

    webhook_host: str = "127.0.0.1"
    """Address the conversion webhook listens on: 127.0.0.1 for an operator on the API server's machine (crds/ point
    there), 0.0.0.0 in a Pod (the chart sets it)."""

    webhook_cert_dir: str | None = None
    """Directory of the webhook's tls.crt, tls.key and ca.crt. Unset: ~/.cache/plinth/webhook, generated there on
    first use and shared by every process on the machine."""

    webhook_generate: bool = True
    """Generate the certificate when the directory lacks one (off for a mounted Secret: it must be there)."""

    webhook_dns_names: str | None = None
    """Comma-separated extra names a generated certificate covers (e.g. the webhook Service's DNS names)."""

    webhook_ca_bundle: bool = True
    """Write the webhook's CA into the Plinth CRDs' conversion caBundle at start-up (off when the chart or
    cert-manager's CA injector writes it)."""

    def __post_init__(self) -> None:
        if self.resync_seconds <= 0 or self.resync_per_second <= 0:
            raise ValueError("PLINTH_RESYNC_SECONDS and PLINTH_RESYNC_PER_SECOND must be greater than 0")
        if self.initial_listing not in INITIAL_LISTINGS:
            raise ValueError(f"PLINTH_INITIAL_LISTING must be one of {', '.join(INITIAL_LISTINGS)}")

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            workload_otlp_endpoint=env.get("PLINTH_WORKLOAD_OTLP_ENDPOINT") or None,
            workload_resource_attributes=env.get("PLINTH_WORKLOAD_RESOURCE_ATTRIBUTES") or None,
            prometheus_url=env.get("PLINTH_PROMETHEUS_URL") or None,
            serving_image=env.get("PLINTH_SERVING_IMAGE") or SERVING_IMAGE,
            log_level=env.get("PLINTH_LOG_LEVEL", cls.log_level),
            max_workers=int(env.get("PLINTH_MAX_WORKERS", cls.max_workers)),
            watch_timeout_seconds=int(env.get("PLINTH_WATCH_TIMEOUT_SECONDS", cls.watch_timeout_seconds)),
            resync_seconds=float(env.get("PLINTH_RESYNC_SECONDS", cls.resync_seconds)),
            resync_per_second=float(env.get("PLINTH_RESYNC_PER_SECOND", cls.resync_per_second)),
            initial_listing=env.get("PLINTH_INITIAL_LISTING") or cls.initial_listing,
            peering_name=env.get("PLINTH_PEERING_NAME") or cls.peering_name,
            peering_lifetime_seconds=int(env.get("PLINTH_PEERING_LIFETIME_SECONDS", cls.peering_lifetime_seconds)),
            peering_priority=int(env["PLINTH_PEERING_PRIORITY"]) if env.get("PLINTH_PEERING_PRIORITY") else None,
            webhook_port=int(env.get("PLINTH_WEBHOOK_PORT", cls.webhook_port)),
            webhook_host=env.get("PLINTH_WEBHOOK_HOST") or cls.webhook_host,
            webhook_cert_dir=env.get("PLINTH_WEBHOOK_CERT_DIR") or None,
            webhook_generate=_flag(env.get("PLINTH_WEBHOOK_GENERATE_CERT"), cls.webhook_generate),
            webhook_dns_names=env.get("PLINTH_WEBHOOK_DNS_NAMES") or None,
            webhook_ca_bundle=_flag(env.get("PLINTH_WEBHOOK_CA_BUNDLE"), cls.webhook_ca_bundle),
        )
