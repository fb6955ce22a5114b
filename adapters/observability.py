"""Observability for workloads behind a small interface: the Prometheus query the canary health gate asks, and the
OpenTelemetry settings injected into serving and preview pods.

Prometheus is optional: without ``PLINTH_PROMETHEUS_URL`` there is no query backend, and a canary that asks for a
metric gate is held (not promoted) with a condition saying why, never failed by an error loop.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Protocol

from plinth.operator.metrics import Metrics
from plinth.operator.tracing import tracer

ADAPTER = "prometheus"


class QueryError(Exception):
    """Prometheus could not be asked or could not answer; the message says why (never contains a secret)."""


class MetricsQuery(Protocol):
    def value(self, promql: str) -> float | None:
        """The query's single value now; None when it returns no data (e.g. no traffic yet). Raises QueryError."""
        ...


class PrometheusHTTP:
    """``MetricsQuery`` on Prometheus's HTTP API (``/api/v1/query``), counted and traced like every adapter call."""

    def __init__(self, url: str, metrics: Metrics, timeout: float = 5.0) -> None:
        self._url = url.rstrip("/")
        self._metrics = metrics
        self._timeout = timeout

    def value(self, promql: str) -> float | None:
        started, result = time.perf_counter(), "ok"
        with tracer().start_as_current_span(f"{ADAPTER}.query"):
            try:
                return self._query(promql)
            except QueryError:
                result = "error"
                raise
            finally:
                self._metrics.adapter_requests.labels(ADAPTER, "query", result).inc()
                self._metrics.adapter_duration.labels(ADAPTER, "query").observe(time.perf_counter() - started)

    def _query(self, promql: str) -> float | None:
        url = f"{self._url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        try:
            with urllib.request.urlopen(url, timeout=self._timeout) as resp:
                body = json.load(resp)
        except (OSError, ValueError) as err:
            raise QueryError(f"Prometheus query failed: {type(err).__name__}: {err}") from err
        if body.get("status") != "success":
            raise QueryError(f"Prometheus refused the query: {body.get('error', 'unknown error')}")
        data = body.get("data") or {}
        if data.get("resultType") == "scalar":
            samples = [data["result"]]
        elif data.get("resultType") == "vector":
            samples = [r["value"] for r in data.get("result") or []]
        else:
            raise QueryError(f"the query must return a scalar or an instant vector, not {data.get('resultType')}")
        if not samples:
            return None
        if len(samples) > 1:
            raise QueryError(f"the query returned {len(samples)} series; aggregate it to one (e.g. sum(...))")
        value = float(samples[0][1])
        return None if math.isnan(value) else value


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
