"""Prometheus metrics of one server, in a registry of its own (no module-global state, so tests and several apps in
one process never share counters). Labels stay low-cardinality: model, version, endpoint and the status class."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Latency buckets from 1 ms: a small model answers in a few milliseconds, and p99s are read off these.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "plinth_serving_requests",
            "Requests answered, by endpoint and status class (2xx, 4xx, 5xx).",
            ["model", "version", "endpoint", "code"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "plinth_serving_request_duration_seconds",
            "Time from the request's arrival to its response, by endpoint.",
            ["model", "version", "endpoint"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "plinth_serving_requests_in_flight",
            "Requests being answered now.",
            ["model", "version"],
            registry=self.registry,
        )
        self.load_seconds = Gauge(
            "plinth_serving_model_load_seconds",
            "How long fetching, loading and warming up the model took.",
            ["model", "version"],
            registry=self.registry,
        )
        self.model_bytes = Gauge(
            "plinth_serving_model_size_bytes",
            "Size of the model artifact.",
            ["model", "version"],
            registry=self.registry,
        )
        self.ready = Gauge(
            "plinth_serving_model_ready",
            "1 once the model answered its warm-up inference.",
            ["model", "version"],
            registry=self.registry,
        )
