"""Pure arithmetic of the benchmark: percentiles, Prometheus text parsing and histogram quantiles, counter deltas,
ratios and the Markdown report. No cluster, no I/O: unit-tested in tests/unit/test_bench.py."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# One sample of the Prometheus text format: name{labels} value (timestamps are not used by our sources).
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
Labels = tuple[tuple[str, str], ...]
Samples = dict[str, dict[Labels, float]]
# Verbs that change something (the API server's apiserver_request_total spells server-side apply as APPLY).
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"})


def percentile(values: Sequence[float], q: float) -> float | None:
    """The *q*-th percentile (0..100) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def parse_prometheus(text: str) -> Samples:
    """name -> {sorted label pairs -> value}; comments and malformed lines are skipped."""
    out: Samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match:
            continue
        name, raw_labels, raw_value = match.groups()
        try:
            value = float(raw_value)
        except ValueError:
            continue
        labels = tuple(sorted(_LABEL.findall(raw_labels or "")))
        out.setdefault(name, {})[labels] = value
    return out


def select(samples: Samples, name: str, **match: str) -> dict[Labels, float]:
    """The series of *name* whose labels include every *match* pair."""
    return {
        labels: value
        for labels, value in samples.get(name, {}).items()
        if all(dict(labels).get(k) == v for k, v in match.items())
    }


def total(samples: Samples, name: str, **match: str) -> float:
    return sum(select(samples, name, **match).values())


def delta(before: Samples, after: Samples, name: str) -> dict[Labels, float]:
    """Per series: after - before for a counter (a series absent before counts from 0; zero deltas are dropped)."""
    old = before.get(name, {})
    out = {}
    for labels, value in after.get(name, {}).items():
        change = value - old.get(labels, 0.0)
        if change:
            out[labels] = change
    return out


def group_by(series: Mapping[Labels, float], *keys: str) -> dict[tuple[str, ...], float]:
    """Sum series by the values of *keys* (missing labels group as "")."""
    out: dict[tuple[str, ...], float] = {}
    for labels, value in series.items():
        as_dict = dict(labels)
        key = tuple(as_dict.get(k, "") for k in keys)
        out[key] = out.get(key, 0.0) + value
    return out


def histogram_buckets(samples: Samples, name: str, **match: str) -> list[tuple[float, float]]:
    """Cumulative (upper bound, count) pairs of histogram *name*, summed over the series matching *match*."""
    merged: dict[float, float] = {}
    for labels, value in select(samples, f"{name}_bucket", **match).items():
        bound = dict(labels).get("le")
        if bound is None:
            continue
        le = math.inf if bound in ("+Inf", "Inf") else float(bound)
        merged[le] = merged.get(le, 0.0) + value
    return sorted(merged.items())


def bucket_delta(before: list[tuple[float, float]], after: list[tuple[float, float]]) -> list[tuple[float, float]]:
    old = dict(before)
    return [(le, count - old.get(le, 0.0)) for le, count in after]


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket holding the q-th observation (0 < q <
    1). A quantile in the +Inf bucket is reported as the highest finite bound (a lower limit, as Prometheus does)."""
    if not buckets:
        return None
    count = buckets[-1][1]
    if count <= 0:
        return None
    rank = q * count
    previous_bound, previous_count = 0.0, 0.0
    for bound, cumulative in buckets:
        if cumulative >= rank:
            if math.isinf(bound):
                return previous_bound
            if cumulative == previous_count:
                return bound
            return previous_bound + (bound - previous_bound) * (rank - previous_count) / (cumulative - previous_count)
        previous_bound, previous_count = bound, cumulative
    return previous_bound


def ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference == 0:
        return None
    return value / reference


def summarize(values: Iterable[float]) -> dict[str, float | int | None]:
    data = list(values)
    return {
        "count": len(data),
        "p50": percentile(data, 50),
        "p95": percentile(data, 95),
        "p99": percentile(data, 99),
        "max": max(data) if data else None,
    }


def verdict(value: float | None, target: float) -> str:
    """ "met" / "missed" against an upper bound; "n/a" when there is no measurement."""
    if value is None:
        return "n/a"
    return "met" if value <= target else "missed"


def fmt(value: Any, digits: int = 2, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:.{digits}f}" if isinstance(value, float) else str(value)
    return f"{text}{unit}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
