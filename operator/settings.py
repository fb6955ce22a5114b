"""Operator settings, read once from the environment (PLINTH_*) at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass

FIELD_MANAGER = "plinth"
FINALIZER = "plinth.dev/finalizer"
MANAGED_BY = {"app.kubernetes.io/managed-by": "plinth"}


@dataclass(frozen=True)
class Settings:
    log_level: str = "INFO"
    """Log level of the operator's JSON logs."""

    max_workers: int = 20
    """kopf's cap on concurrently handled objects: bounds memory and API load on a 2-core operator pod."""

    watch_timeout_seconds: int = 300
    """Server-side timeout of each watch request; kopf re-establishes the watch, so silent stalls cannot last."""

    workload_otlp_endpoint: str | None = None
    """OTLP endpoint injected into model servers and preview services as OTEL_EXPORTER_OTLP_ENDPOINT (with
    OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES); nothing is injected when unset."""

    workload_resource_attributes: str | None = None
    """Extra OTEL_RESOURCE_ATTRIBUTES for workloads, e.g. deployment.environment=prod,k8s.cluster.name=eu-1."""

    prometheus_url: str | None = None
    """Prometheus the canary metric gate queries (spec.canary.rollback.metric), e.g. http://prometheus.monitoring:9090."""

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            workload_otlp_endpoint=env.get("PLINTH_WORKLOAD_OTLP_ENDPOINT") or None,
            workload_resource_attributes=env.get("PLINTH_WORKLOAD_RESOURCE_ATTRIBUTES") or None,
            prometheus_url=env.get("PLINTH_PROMETHEUS_URL") or None,
            log_level=env.get("PLINTH_LOG_LEVEL", cls.log_level),
            max_workers=int(env.get("PLINTH_MAX_WORKERS", cls.max_workers)),
            watch_timeout_seconds=int(env.get("PLINTH_WATCH_TIMEOUT_SECONDS", cls.watch_timeout_seconds)),
        )
