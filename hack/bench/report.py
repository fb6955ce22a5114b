"""Headline figures, target verdicts and the Markdown block of one benchmark run (pure: JSON in, text out)."""

from __future__ import annotations

import re
from typing import Any

from stats import fmt, markdown_table, ratio, verdict

SCENARIO_ORDER = ("baseline", "pe_burst", "md_burst", "steady", "restart", "pe_delete", "md_delete")
DOC_HEADER = "# Performance\n\nResults of `hack/bench/run.py`.\n"
# Targets of issue 9 (2-core machine, same-run ratios); upper bounds.
TARGETS = {
    "pe_ready_ratio": 1.5,
    "lag_p50_s": 0.2,
    "lag_p99_s": 1.0,
    "writes_ratio": 1.2,
    "restart_writes": 0,
    "rss_mb_1000": 150,
    "rss_mb_5000": 300,
}


def _get(data: dict[str, Any], *path: str) -> Any:
    node: Any = data
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def operator_writes_seen_by_apiserver(window: dict[str, Any]) -> float:
    """Writes only the operator makes, as the API server counted them: server-side applies (controllers and the
    bench client never apply in the burst windows) and patches of Plinth objects (status, kopf's finalizer and
    annotations; the bench creates them with POST)."""
    out = 0.0
    for key, value in (window.get("apiserver_writes_by_resource") or {}).items():
        verb, resource = key.split("/")[:2]
        if verb == "APPLY" or (verb == "PATCH" and resource in ("previewenvironments", "modeldeployments")):
            out += value
    return out


def summary(data: dict[str, Any]) -> dict[str, Any]:
    r = data["results"]
    n = data["n"]
    out: dict[str, Any] = {"n": n}
    base = _get(r, "baseline", "all_ready_s")
    pe = _get(r, "pe_burst", "all_ready_s")
    out["baseline_ready_s"] = base
    out["pe_ready_s"] = pe
    out["pe_ready_ratio"] = ratio(pe, base)
    out["md_ready_s"] = _get(r, "md_burst", "all_ready_s")
    for kind in ("pe", "md"):
        window = r.get(f"{kind}_burst")
        if not window:
            continue
        minimum = window["children_per_object"] + 1
        adapter_writes = _get(window, "operator", "adapter_writes")
        seen = operator_writes_seen_by_apiserver(window)
        out[f"{kind}_min_writes_per_object"] = minimum
        out[f"{kind}_adapter_writes_per_object"] = ratio(adapter_writes, n)
        out[f"{kind}_apiserver_writes_per_object"] = seen / n
        out[f"{kind}_writes_ratio"] = ratio(seen / n, minimum)
        out[f"{kind}_reconciles_per_object"] = _get(window, "operator", "reconciles_per_object")
        out[f"{kind}_reads_per_reconcile"] = ratio(
            _get(window, "operator", "adapter_reads"), _get(window, "operator", "reconciles_total")
        )
    steady = r.get("steady") or {}
    out["lag_watched"] = steady.get("watched_lag_s")
    out["lag_operator_histogram"] = steady.get("operator_lag_histogram_s")
    out["rollout_lag"] = steady.get("deployment_rollout_lag_s")
    out["operator_overhead"] = steady.get("operator_overhead_s")
    out["ready_before_rollout"] = steady.get("ready_before_rollout")
    out["steady_writes_per_change"] = ratio(_get(steady, "operator", "adapter_writes"), steady.get("changes_sent"))
    out["steady_reconciles_per_change"] = ratio(
        _get(steady, "operator", "reconciles_total"), steady.get("changes_sent")
    )
    out["steady_rss_growth_mb"] = (
        steady["rss_last_minute_max_mb"] - steady["rss_first_minute_max_mb"] if steady else None
    )
    out["restart_operator_writes"] = _get(r, "restart", "operator_writes")
    out["restart_apiserver_writes"] = _get(r, "restart", "apiserver_writes_total")
    out["restart_objects"] = _get(r, "restart", "objects")
    out["restart_resumed_s"] = _get(r, "restart", "all_resumed_s")
    out["restart_rss_at_rest_mb"] = _get(r, "restart", "rss_at_rest_mb")
    peaks = [r.get("operator_peak_rss_mb")] + [_get(w, "operator", "peak_rss_mb") for w in r.values()]
    out["peak_rss_mb"] = max((p for p in peaks if p is not None), default=None)
    out["pe_delete_s"] = _get(r, "pe_delete", "all_gone_s")
    out["baseline_delete_s"] = _get(r, "baseline", "delete_all_gone_s")
    out["pe_delete_ratio"] = ratio(out["pe_delete_s"], out["baseline_delete_s"])
    out["verdicts"] = {
        "pe_ready_ratio": verdict(out["pe_ready_ratio"], TARGETS["pe_ready_ratio"]),
        "lag_p50": verdict((out["lag_watched"] or {}).get("p50"), TARGETS["lag_p50_s"]),
        "lag_p99": verdict((out["lag_watched"] or {}).get("p99"), TARGETS["lag_p99_s"]),
        "pe_writes_ratio": verdict(out.get("pe_writes_ratio"), TARGETS["writes_ratio"]),
        "md_writes_ratio": verdict(out.get("md_writes_ratio"), TARGETS["writes_ratio"]),
        # Zero writes from an operator that never resumed is no result: it has to have reconciled every object.
        "restart_writes": verdict(out["restart_apiserver_writes"], TARGETS["restart_writes"])
        if out["restart_resumed_s"] is not None
        else "did not resume",
        "rss": verdict(out["peak_rss_mb"], TARGETS["rss_mb_1000"] if n <= 1000 else TARGETS["rss_mb_5000"]),
    }
    return out


def _lag_cells(values: dict[str, Any] | None) -> str:
    if not values:
        return "-"
    return " / ".join(fmt(values.get(q), 2) for q in ("p50", "p95", "p99")) + " s"


def render(data: dict[str, Any]) -> str:
    s = data.get("summary") or summary(data)
    r = data["results"]
    m = data["machine"]
    n = data["n"]
    v = s["verdicts"]
    loads = [
        f"{name} {fmt(window.get('load_avg_start', [None])[0], 1)}→{fmt(window.get('load_avg_end', [None])[0], 1)}"
        for name in SCENARIO_ORDER
        if isinstance(window := r.get(name), dict) and "load_avg_start" in window
    ]
    errors = [
        f"{name}: {r[name]['error']}" for name in SCENARIO_ORDER if isinstance(r.get(name), dict) and "error" in r[name]
    ]
    rss_target = TARGETS["rss_mb_1000"] if n <= 1000 else TARGETS["rss_mb_5000"]
    rows = [
        (
            f"{n} PreviewEnvironments all Ready",
            f"{fmt(s['pe_ready_s'], 1)} s",
            f"baseline {fmt(s['baseline_ready_s'], 1)} s → **{fmt(s['pe_ready_ratio'], 2)}x**",
            "≤ 1.5x (at 1,000)",
            v["pe_ready_ratio"],
        ),
        (
            f"{n} ModelDeployments all Ready",
            f"{fmt(s['md_ready_s'], 1)} s",
            f"{fmt(s.get('md_reconciles_per_object'), 1)} reconciles/object",
            "-",
            "-",
        ),
        (
            "Lag p50 / p95 / p99, watched (change → Ready for its generation)",
            _lag_cells(s["lag_watched"]),
            f"operator histogram {_lag_cells(s['lag_operator_histogram'])}; Deployment rollout alone "
            f"{_lag_cells(s['rollout_lag'])}; Ready after rollout (operator's share) "
            f"{_lag_cells(s['operator_overhead'])}",
            "p50 ≤ 0.2 s, p99 ≤ 1 s",
            f"p50 {v['lag_p50']}, p99 {v['lag_p99']}",
        ),
        (
            "Ready reported before the Deployment rolled out the change",
            fmt(s["ready_before_rollout"]),
            f"of {fmt(_get(r, 'steady', 'changes_sent'))} changes sent in {fmt(_get(r, 'steady', 'duration_s'))} s "
            f"({fmt(_get(r, 'steady', 'ticks_skipped_all_pending'))} ticks skipped: every preview still pending; "
            f"{fmt(_get(r, 'steady', 'changes_unfinished'))} not Ready 2 min after the last)",
            "0",
            verdict(s["ready_before_rollout"], 0),
        ),
        (
            "Writes per PreviewEnvironment, burst (API server: applies + patches)",
            fmt(s.get("pe_apiserver_writes_per_object"), 1),
            f"minimum {fmt(s.get('pe_min_writes_per_object'))} (children + 1 status) → "
            f"**{fmt(s.get('pe_writes_ratio'), 1)}x**; {fmt(s.get('pe_reconciles_per_object'), 1)} reconciles, "
            f"{fmt(s.get('pe_reads_per_reconcile'), 1)} reads/reconcile",
            "≤ 1.2x",
            v["pe_writes_ratio"],
        ),
        (
            "Writes per ModelDeployment, burst",
            fmt(s.get("md_apiserver_writes_per_object"), 1),
            f"minimum {fmt(s.get('md_min_writes_per_object'))} → **{fmt(s.get('md_writes_ratio'), 1)}x**; "
            f"{fmt(s.get('md_reads_per_reconcile'), 1)} reads/reconcile",
            "≤ 1.2x",
            v["md_writes_ratio"],
        ),
        (
            "Writes per spec change, steady state (operator adapter)",
            fmt(s["steady_writes_per_change"], 1),
            f"{fmt(s['steady_reconciles_per_change'], 1)} reconciles per change",
            "-",
            "-",
        ),
        (
            f"Writes on a no-op restart over {fmt(s['restart_objects'])} Ready objects",
            fmt(s["restart_apiserver_writes"]),
            f"operator adapter {fmt(s['restart_operator_writes'])}; all resumed in {fmt(s['restart_resumed_s'], 1)} s",
            "0",
            v["restart_writes"],
        ),
        (
            f"Operator peak RSS at {n} PE" + (f" + {n} MD" if r.get("md_burst") else ""),
            f"{fmt(s['peak_rss_mb'], 0)} MB",
            f"steady-state growth {fmt(s['steady_rss_growth_mb'], 1)} MB (last vs first minute);"
            f" at rest after the restart {fmt(s['restart_rss_at_rest_mb'], 0)} MB",
            f"≤ {rss_target} MB (at 1,000)",
            v["rss"],
        ),
        (
            f"Burst-delete {n} PreviewEnvironments",
            f"{fmt(s['pe_delete_s'], 1)} s",
            f"baseline (delete the namespaces) {fmt(s['baseline_delete_s'], 1)} s → {fmt(s['pe_delete_ratio'], 2)}x",
            "-",
            "-",
        ),
    ]
    cpu_rows = []
    for name in SCENARIO_ORDER:
        window = r.get(name)
        if not isinstance(window, dict):
            continue
        op = window.get("operator") or {}
        cp = window.get("control_plane_cpu_s") or {}
        cpu_rows.append(
            (
                name,
                fmt(window.get("elapsed_s"), 1),
                fmt(op.get("cpu_s"), 1),
                fmt(op.get("cpu_utilisation"), 2),
                fmt(op.get("peak_rss_mb"), 0),
                ", ".join(f"{k} {fmt(v, 1)}" for k, v in sorted(cp.items()) if v) or "-",
                fmt((window.get("load_avg_end") or [None])[0], 1),
            )
        )
    parts = [
        f"### `{data.get('tag', '')}`: N = {n} ({data['date']})",
        "",
        f"Command: `{data['command']}`  ",
        f"Machine: {m['cpus']} cores ({m['cpu_model']}), {m['memory_gb']} GB, Python {m['python']}, "
        f"commit {m['commit']}  ",
        f"Load average (1 min) at start→end of each scenario: {'; '.join(loads)}",
        "",
        markdown_table(("Measure", "Plinth", "Reference", "Target", "Verdict"), rows),
        "",
        markdown_table(
            (
                "Scenario",
                "Wall s",
                "Operator CPU s",
                "Operator cores",
                "Operator peak RSS MB",
                "Control-plane CPU s",
                "Load avg",
            ),
            cpu_rows,
        ),
    ]
    if errors:
        parts += ["", "Scenarios that failed: " + "; ".join(errors)]
    return "\n".join(parts) + "\n"


def update_doc(doc: str, tag: str, block: str) -> str:
    """Replace the block between this tag's markers (or append one): several result sets live side by side."""
    start, end = f"<!-- bench:{tag}:start -->", f"<!-- bench:{tag}:end -->"
    section = f"{start}\n{block.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(doc):
        return pattern.sub(lambda _: section, doc)
    return doc.rstrip() + "\n\n" + section + "\n"
