"""What workloads get from the operator's observability settings: the OpenTelemetry variables injected into serving
and preview pods, and the Prometheus that answers a canary's metric gate (an adapter, or None)."""

from __future__ import annotations

from dataclasses import dataclass, field

from plinth.adapters.observability import MetricsQuery


@dataclass(frozen=True)
class Telemetry:
    """What workloads get from the operator's configuration: where to send OpenTelemetry data, and who can answer
    Prometheus queries. Empty by default (nothing injected, no metric gate backend)."""

    otlp_endpoint: str | None = None
    resource_attributes: str | None = None
    prometheus: MetricsQuery | None = field(default=None, compare=False)

    def env(self, service: str, namespace: str, version: str | None = None) -> list[dict[str, str]]:
        """Standard OTEL_* variables for a container: service name, resource attributes, exporter endpoint."""
        if self.otlp_endpoint is None:
            return []
        attributes = [f"k8s.namespace.name={namespace}"]
        if version:
            attributes.append(f"service.version={version}")
        if self.resource_attributes:
            attributes.append(self.resource_attributes)
        return [
            {"name": "OTEL_SERVICE_NAME", "value": service},
            {"name": "OTEL_RESOURCE_ATTRIBUTES", "value": ",".join(attributes)},
            {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": self.otlp_endpoint},
        ]


NO_TELEMETRY = Telemetry()
