"""The benchmark harness' pure parts (hack/bench): percentiles, Prometheus parsing and histogram quantiles, the
steady-state change tracker, the baseline's children and the report. The harness itself needs a cluster and is run
by hand (`python hack/bench/run.py`), never by `make test`."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "hack" / "bench"
sys.path.insert(0, str(BENCH))  # the harness is a directory of scripts, not a package

import report  # noqa: E402
import stats  # noqa: E402
import tracker  # noqa: E402
import workload  # noqa: E402

APISERVER_METRICS = """\
# HELP apiserver_request_total Counter of apiserver requests.
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",resource="deployments",subresource="",verb="APPLY"} 40
apiserver_request_total{code="200",resource="deployments",subresource="status",verb="PUT"} 7
apiserver_request_total{code="200",resource="previewenvironments",subresource="status",verb="PATCH"} 3
apiserver_request_total{code="200",resource="pods",subresource="",verb="LIST"} 1e+02
weird_metric{message="a \\"quoted\\" value"} 1
not a sample line
"""


def test_percentile_interpolates_between_ranks_like_numpy() -> None:
    values = [float(v) for v in range(10, 0, -1)]  # unordered input
    assert stats.percentile(values, 0) == 1
    assert stats.percentile(values, 50) == pytest.approx(5.5)
    assert stats.percentile(values, 90) == pytest.approx(9.1)
    assert stats.percentile(values, 100) == 10
    assert stats.percentile([], 50) is None
    with pytest.raises(ValueError):
        stats.percentile(values, 101)


def test_prometheus_text_is_parsed_with_labels_and_escaped_quotes() -> None:
    samples = stats.parse_prometheus(APISERVER_METRICS)
    assert stats.total(samples, "apiserver_request_total") == 150
    assert stats.total(samples, "apiserver_request_total", verb="APPLY") == 40
    assert stats.select(samples, "weird_metric") == {(("message", 'a \\"quoted\\" value'),): 1.0}


def test_counter_deltas_group_by_verb_and_drop_unchanged_series() -> None:
    before = stats.parse_prometheus(APISERVER_METRICS)
    after = stats.parse_prometheus(
        APISERVER_METRICS.replace("} 40", "} 55").replace("} 3", "} 4")
        + 'apiserver_request_total{code="201",resource="secrets",subresource="",verb="APPLY"} 2\n'
    )
    changed = stats.delta(before, after, "apiserver_request_total")
    assert len(changed) == 3  # PUT and LIST did not move
    assert stats.group_by(changed, "verb") == {("APPLY",): 17.0, ("PATCH",): 1.0}
    assert stats.group_by(changed, "resource", "subresource")[("previewenvironments", "status")] == 1.0


def test_histogram_quantile_interpolates_inside_the_bucket() -> None:
    buckets = [(0.1, 0.0), (0.25, 50.0), (0.5, 90.0), (1.0, 100.0), (math.inf, 100.0)]
    assert stats.histogram_quantile(0.5, buckets) == pytest.approx(0.25)
    assert stats.histogram_quantile(0.9, buckets) == pytest.approx(0.5)
    assert stats.histogram_quantile(0.99, buckets) == pytest.approx(0.95)
    # Beyond the last finite bound the quantile is only known to be at least that bound.
    assert stats.histogram_quantile(0.9, [(1.0, 5.0), (math.inf, 10.0)]) == 1.0
    assert stats.histogram_quantile(0.5, []) is None
    assert stats.histogram_quantile(0.5, [(1.0, 0.0), (math.inf, 0.0)]) is None


def test_histogram_buckets_are_summed_over_series_and_diffed() -> None:
    text = "\n".join(
        [
            'lag_bucket{kind="A",le="0.5"} 1',
            'lag_bucket{kind="A",le="+Inf"} 2',
            'lag_bucket{kind="B",le="0.5"} 3',
            'lag_bucket{kind="B",le="+Inf"} 3',
        ]
    )
    samples = stats.parse_prometheus(text)
    assert stats.histogram_buckets(samples, "lag") == [(0.5, 4.0), (math.inf, 5.0)]
    assert stats.histogram_buckets(samples, "lag", kind="A") == [(0.5, 1.0), (math.inf, 2.0)]
    later = stats.parse_prometheus(text.replace('"+Inf"} 2', '"+Inf"} 7'))
    assert stats.bucket_delta(stats.histogram_buckets(samples, "lag"), stats.histogram_buckets(later, "lag")) == [
        (0.5, 0.0),
        (math.inf, 5.0),
    ]


def _preview(generation: int, ready: bool, observed: int | None = None) -> dict[str, Any]:
    seen = generation if observed is None else observed
    return {
        "metadata": {"namespace": "bench-pe", "name": "pe-00001", "generation": generation},
        "status": {
            "observedGeneration": seen,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False", "observedGeneration": seen}],
        },
    }


def _deployment(revision: str, available: bool) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "preview-x", "name": "web", "generation": 3},
        "spec": {"replicas": 1, "template": {"metadata": {"annotations": {"plinth.dev/commit": revision}}}},
        "status": {
            "observedGeneration": 3 if available else 2,
            "replicas": 1,
            "updatedReplicas": 1,
            "availableReplicas": 1 if available else 0,
        },
    }


def test_tracker_measures_lag_rollout_and_the_operators_share() -> None:
    changes = tracker.ChangeTracker()
    changes.sent(tracker.Change("bench-pe/pe-00001", "preview-x/web", 2, "abc1234", sent=10.0))
    assert changes.pending("bench-pe/pe-00001")
    deployments = {"preview-x/web": _deployment("abc1234", available=False)}
    changes.owner_event(_preview(1, ready=True), 10.1, deployments.get)  # the old generation: not this change
    changes.owner_event(_preview(2, ready=True, observed=1), 10.2, deployments.get)  # not observed yet
    changes.deployment_event(deployments["preview-x/web"], 10.3)  # template updated, not available yet
    deployments["preview-x/web"] = _deployment("abc1234", available=True)
    changes.deployment_event(deployments["preview-x/web"], 10.5)
    changes.owner_event(_preview(2, ready=True), 10.75, deployments.get)
    assert not changes.pending("bench-pe/pe-00001")
    assert changes.lags() == [pytest.approx(0.75)]
    assert changes.rollout_lags() == [pytest.approx(0.5)]
    assert changes.operator_overhead() == [pytest.approx(0.25)]
    assert changes.early() == 0


def test_tracker_flags_ready_before_the_deployment_rolled_out() -> None:
    changes = tracker.ChangeTracker()
    changes.sent(tracker.Change("bench-pe/pe-00001", "preview-x/web", 2, "abc1234", sent=0.0))
    stale = {"preview-x/web": _deployment("0ld0000", available=True)}
    changes.owner_event(_preview(2, ready=True), 0.2, stale.get)
    assert changes.early() == 1
    changes.deployment_event(_deployment("abc1234", available=True), 0.9)
    assert changes.operator_overhead() == [pytest.approx(-0.7)]


def test_tracker_forgets_a_change_whose_patch_failed() -> None:
    changes = tracker.ChangeTracker()
    changes.sent(tracker.Change("bench-pe/pe-00001", "preview-x/web", 2, "abc1234", sent=0.0))
    changes.failed("bench-pe/pe-00001")
    assert changes.open == 0
    assert changes.changes == []


def test_baseline_creates_exactly_the_operators_children_for_a_preview() -> None:
    owner = workload.preview_environment(7, workload.BASELINE_OWNER_NAMESPACE)
    children = workload.preview_children(owner)
    assert [c["kind"] for c in children] == ["Namespace", "Secret", "Deployment", "Service"]
    target = workload.preview.namespace_name(owner)
    assert children[0]["metadata"]["name"] == target
    assert {c["metadata"].get("namespace") for c in children[1:]} == {target}
    assert children[0]["metadata"]["labels"][workload.preview.OWNER_NAMESPACE_LABEL] == "bench-baseline"
    assert workload.template_commit(children[2]) == owner["spec"]["source"]["commit"]


def test_kstatus_ready_needs_the_current_generation() -> None:
    assert workload.is_current_and_ready(_preview(2, ready=True))
    assert not workload.is_current_and_ready(_preview(2, ready=True, observed=1))
    assert not workload.is_current_and_ready(_preview(2, ready=False))


def _run(**results: Any) -> dict[str, Any]:
    return {
        "n": 100,
        "date": "2026-11-25 03:00 UTC",
        "command": "python hack/bench/run.py --n 100",
        "machine": {"cpus": 2, "cpu_model": "cpu", "memory_gb": 8, "python": "3.11", "commit": "abc"},
        "results": results,
    }


def test_summary_reports_ratios_against_the_baseline_and_the_minimum_writes() -> None:
    data = _run(
        baseline={"all_ready_s": 10.0, "delete_all_gone_s": 20.0},
        pe_burst={
            "all_ready_s": 14.0,
            "children_per_object": 4,
            # 100 objects x (4 applies + 1 status + 1 kopf finalizer patch); the POSTs are the bench's own.
            "apiserver_writes_by_resource": {
                "APPLY/namespaces": 100,
                "APPLY/secrets": 100,
                "APPLY/deployments": 100,
                "APPLY/services": 100,
                "PATCH/previewenvironments/status": 100,
                "PATCH/previewenvironments": 100,
                "POST/previewenvironments": 100,
                "PUT/deployments/status": 300,
            },
            "operator": {"adapter_writes": 500, "reconciles_total": 200, "adapter_reads": 1000},
        },
        restart={
            "operator_writes": 0,
            "apiserver_writes_total": 0,
            "objects": 100,
            "all_resumed_s": 3.0,
            "rss_at_rest_mb": 120.0,
        },
        operator_peak_rss_mb=120.0,
    )
    summary = report.summary(data)
    assert summary["pe_ready_ratio"] == pytest.approx(1.4)
    assert summary["pe_apiserver_writes_per_object"] == 6
    assert summary["pe_writes_ratio"] == pytest.approx(1.2)
    assert summary["pe_reads_per_reconcile"] == 5
    assert summary["verdicts"]["pe_ready_ratio"] == "met"
    assert summary["verdicts"]["pe_writes_ratio"] == "met"
    assert summary["verdicts"]["restart_writes"] == "met"
    assert summary["verdicts"]["rss"] == "met"
    assert summary["restart_rss_at_rest_mb"] == 120.0
    assert summary["verdicts"]["lag_p99"] == "n/a"  # no steady-state run: no verdict rather than a guess
    text = report.render({**data, "summary": summary})
    assert "1.40x" in text
    assert "python hack/bench/run.py --n 100" in text


def test_summary_misses_targets_it_does_not_meet() -> None:
    data = _run(
        baseline={"all_ready_s": 10.0},
        pe_burst={"all_ready_s": 31.0, "children_per_object": 4, "apiserver_writes_by_resource": {}},
        steady={
            "watched_lag_s": {"p50": 0.8, "p95": 1.5, "p99": 2.0},
            "rss_first_minute_max_mb": 100.0,
            "rss_last_minute_max_mb": 101.0,
        },
        restart={"apiserver_writes_total": 300, "objects": 100, "all_resumed_s": 9.0},
    )
    verdicts = report.summary(data)["verdicts"]
    assert verdicts["pe_ready_ratio"] == "missed"
    assert verdicts["lag_p50"] == "missed"
    assert verdicts["lag_p99"] == "missed"
    assert verdicts["restart_writes"] == "missed"


def test_a_restart_that_never_resumed_is_not_zero_writes() -> None:
    data = _run(restart={"apiserver_writes_total": 0, "operator_writes": 0, "objects": 200, "all_resumed_s": None})
    assert report.summary(data)["verdicts"]["restart_writes"] == "did not resume"


def test_update_doc_replaces_its_own_block_and_keeps_the_rest() -> None:
    doc = "# Performance\n\nAnalysis written by hand.\n"
    once = report.update_doc(doc, "n100", "first run\n")
    assert once.startswith(doc.rstrip())
    assert "first run" in once
    other = report.update_doc(once, "n1000", "big run\n")
    twice = report.update_doc(other, "n100", "second run\n")
    assert "first run" not in twice
    assert "second run" in twice
    assert "big run" in twice
    assert twice.count("<!-- bench:n100:start -->") == 1
    assert "Analysis written by hand." in twice
