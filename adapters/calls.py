"""How an adapter reports its calls: one span and one record (adapter, operation, result, seconds) per call, handed to
whatever the caller plugs in. Adapters depend on this interface only, never on the operator's metrics or tracing, so
they can be used (and tested) outside the operator."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from opentelemetry import trace

TRACER_NAME = "plinth.adapters"


class CallRecorder(Protocol):
    def record(self, adapter: str, operation: str, result: str, seconds: float) -> None:
        """One finished call; *result* is ``ok`` or ``error``."""
        ...


class NoRecorder:
    """Records nothing: for command-line tools and tests that do not export metrics."""

    def record(self, adapter: str, operation: str, result: str, seconds: float) -> None:
        return None


@contextmanager
def recorded(recorder: CallRecorder, adapter: str, operation: str) -> Iterator[None]:
    """Run the body as the call *adapter*.*operation*: inside its span, recorded as ``error`` if it raises."""
    started, result = time.perf_counter(), "ok"
    with trace.get_tracer(TRACER_NAME).start_as_current_span(f"{adapter}.{operation}"):
        try:
            yield
        except Exception:
            result = "error"
            raise
        finally:
            recorder.record(adapter, operation, result, time.perf_counter() - started)
