"""The operator's Prometheus metrics. One ``Metrics`` object per process, passed around explicitly (kopf memo),
with its own registry: no module-global mutable state, and tests can build a fresh one."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_LAG_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)


@dataclass
class Metrics:
    """Low-cardinality metrics only: labels are kinds, results and adapter operations, never object names."""

    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        r = self.registry
        ProcessCollector(registry=r)  # process_resident_memory_bytes, process_cpu_seconds_total: the debug dashboard
        self.reconcile_total = Counter(
            "plinth_reconcile_total", "Reconciles by kind and result.", ["kind", "result"], registry=r
        )
        self.reconcile_duration = Histogram(
            "plinth_reconcile_duration_seconds",
            "Time spent in one reconcile.",
            ["kind"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.reconcile_lag = Histogram(
            "plinth_reconcile_lag_seconds",
            "From a new metadata.generation being observed to Ready for it.",
            ["kind"],
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.queue_lag = Histogram(
            "plinth_queue_lag_seconds",
            "From an event of an object being dequeued by kopf to its reconcile starting (executor and lock waits).",
            ["kind"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "plinth_reconcile_retries_total",
            "Reconciles that asked to be retried later, by kind and condition reason.",
            ["kind", "reason"],
            registry=r,
        )
        self.policy_denials = Counter(
            "plinth_policy_denials_total",
            "Objects newly refused by a policy (quota, secret opt-in, team), by kind and reason.",
            ["kind", "reason"],
            registry=r,
        )
        self.conversions = Counter(
            "plinth_conversions_total",
            "Objects the conversion webhook was asked to convert, by their API version, the one asked for and result.",
            ["from_version", "to_version", "result"],
            registry=r,
        )
        self.in_progress = Gauge(
            "plinth_reconcile_in_progress", "Reconciles running now (stuck ones stay up).", ["kind"], registry=r
        )
        self.resources = Gauge(
            "plinth_resources",
            "Plinth objects this operator reconciled, by kind and Ready status.",
            ["kind", "ready"],
            registry=r,
        )
        self.adapter_requests = Counter(
            "plinth_adapter_requests_total", "Calls made by adapters.", ["adapter", "operation", "result"], registry=r
        )
        self.adapter_duration = Histogram(
            "plinth_adapter_duration_seconds",
            "Duration of adapter calls.",
            ["adapter", "operation"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )

    def conversion(self, from_version: str, to_version: str, result: str, count: int) -> None:
        """A ConversionReview answered (``webhook.Recorder``)."""
        self.conversions.labels(from_version, to_version, result).inc(count)

    def record(self, adapter: str, operation: str, result: str, seconds: float) -> None:
        """An adapter's call (``plinth.adapters.calls.CallRecorder``)."""
        self.adapter_requests.labels(adapter, operation, result).inc()
        self.adapter_duration.labels(adapter, operation).observe(seconds)


class _Handler(BaseHTTPRequestHandler):
    metrics: Metrics
    healthy: threading.Event

    def do_GET(self) -> None:
        if self.path.startswith("/metrics"):
            self._send(200, generate_latest(self.metrics.registry), CONTENT_TYPE_LATEST)
        elif self.path.startswith("/healthz"):
            ok = self.healthy.is_set()
            self._send(200 if ok else 503, b"ok\n" if ok else b"starting\n", "text/plain")
        else:
            self._send(404, b"not found\n", "text/plain")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def serve(metrics: Metrics, healthy: threading.Event, port: int, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """Serve /metrics and /healthz on a daemon thread."""
    handler = type("Handler", (_Handler,), {"metrics": metrics, "healthy": healthy})
    server = ThreadingHTTPServer((host, port), handler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
