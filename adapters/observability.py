"""Prometheus behind a small interface: the query the canary health gate asks.

Prometheus is optional: without ``PLINTH_PROMETHEUS_URL`` there is no query backend, and a canary that asks for a
metric gate is held (not promoted) with a condition saying why, never failed by an error loop.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from typing import Protocol

from plinth.adapters.calls import CallRecorder, recorded

ADAPTER = "prometheus"


class QueryError(Exception):
    """Prometheus could not be asked or could not answer; the message says why (never contains a secret)."""


class MetricsQuery(Protocol):
    def value(self, promql: str) -> float | None:
        """The query's single value now; None when it returns no data (e.g. no traffic yet). Raises QueryError."""
        ...


class PrometheusHTTP:
    """``MetricsQuery`` on Prometheus's HTTP API (``/api/v1/query``), counted and traced like every adapter call."""

    def __init__(self, url: str, recorder: CallRecorder, timeout: float = 5.0) -> None:
        self._url = url.rstrip("/")
        self._recorder = recorder
        self._timeout = timeout

    def value(self, promql: str) -> float | None:
        with recorded(self._recorder, ADAPTER, "query"):
            return self._query(promql)

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
