"""OpenTelemetry traces of requests: on when the standard OTEL_* variables name an OTLP endpoint, off otherwise (no
span objects are made then, so the hot path pays nothing). Spans continue an incoming W3C `traceparent`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

TRACER_NAME = "plinth.serving"


def configure(env: Mapping[str, str], service_name: str) -> TracerProvider | None:
    """A provider exporting over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT (or the traces variant) is set."""
    if not (env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        return None
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or service_name})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def incoming_context(headers: Iterable[tuple[bytes, bytes]]) -> Context:
    """The caller's trace context from an ASGI scope's headers (`traceparent`, `tracestate`)."""
    carrier = {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in headers
        if name in (b"traceparent", b"tracestate")
    }
    return propagate.extract(carrier)


def trace_id(span: trace.Span) -> str:
    context = span.get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""
