"""Structured JSON logs: one object per line with the resource reference and the trace id when there is one."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from plinth.operator.tracing import current_trace_id

_EXTRA_KEYS = ("ref", "generation", "result", "duration")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _EXTRA_KEYS:
            if (value := getattr(record, key, None)) is not None:
                entry[key] = value
        # kopf attaches the object reference to its per-object loggers.
        if (k8s := getattr(record, "k8s_ref", None)) and isinstance(k8s, dict):
            entry.setdefault("ref", {k: k8s.get(k) for k in ("kind", "namespace", "name") if k8s.get(k)})
        if trace_id := current_trace_id():
            entry["trace_id"] = trace_id
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # kopf logs every handler success at INFO; Plinth logs one line per reconcile instead.
    for noisy in ("urllib3", "kubernetes.client.rest", "aiohttp.access", "kopf.objects"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
