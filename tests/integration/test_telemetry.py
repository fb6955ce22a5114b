"""The operator's own telemetry end to end: traces exported over OTLP/HTTP (received here by a minimal collector
endpoint), one span per reconcile with child spans per adapter call, the trace id in log lines and Events; metrics
that move with reconciles (parsed with prometheus-client's parser); lag in status; no Event re-posted on a no-op
resync."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Cluster, Operator, wait_for
from tests.otlp import Collector

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def traced(
    cluster: Cluster, operator: Operator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Operator, Collector]]:
    """The session operator, restarted with OTLP tracing to a local collector endpoint."""
    collector = Collector()
    operator.stop()
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    log: Path = tmp_path_factory.mktemp("traced") / "operator.log"
    traced_operator = Operator(cluster, log, env=env)
    try:
        yield traced_operator, collector
    finally:
        traced_operator.stop()
        collector.server.shutdown()
        operator.start()


def _quota(name: str, namespace: str, pods: int) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "plinth.dev/v1alpha1",
            "kind": "NamespaceQuota",
            "metadata": {"name": name},
            "spec": {"namespaces": [namespace], "perNamespace": {"hard": {"pods": str(pods)}}},
        }
    )


def _samples(op: Operator, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(op.metrics()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def test_traces_logs_events_metrics_and_lag(
    cluster: Cluster, traced: tuple[Operator, Collector], namespace: str
) -> None:
    op, collector = traced
    name = f"tel-{uuid.uuid4().hex[:6]}"
    lag_before = _samples(op, "plinth_reconcile_lag_seconds_count", kind="NamespaceQuota")
    try:
        cluster.kubectl("apply", "--server-side", "--field-manager=tests", "-f", "-", input=_quota(name, namespace, 5))
        cluster.kubectl("wait", "--for=condition=Ready", f"namespacequota/{name}", "--timeout=60s")

        # One span per reconcile, with the object's attributes, parent of the adapter calls it made.
        def reconcile_span() -> Any:
            return next(
                (
                    s
                    for s in collector.spans
                    if s["name"] == "reconcile NamespaceQuota" and s["attributes"].get("plinth.name") == name
                ),
                None,
            )

        span = wait_for(reconcile_span, what="reconcile span exported")
        assert span["attributes"]["plinth.generation"] == 1
        assert span["attributes"]["plinth.result"] == "success"
        assert span["parent"] == ""
        children = [s for s in collector.spans if s["parent"] == span["span_id"]]
        assert {"kubernetes.apply", "kubernetes.list"} <= {c["name"] for c in children}
        assert all(c["trace_id"] == span["trace_id"] for c in children)

        # The same trace id in the operator's log line for that reconcile, and in the Ready Event.
        lines = [json.loads(line) for line in op.log.read_text().splitlines() if line.startswith("{")]
        assert any(
            line.get("trace_id") == span["trace_id"] and (line.get("ref") or {}).get("name") == name for line in lines
        )
        events = cluster.get("events", "-A", "--field-selector", f"involvedObject.name={name}")["items"]
        assert any(span["trace_id"] in e["message"] for e in events)

        # Lag: one histogram observation for the generation, and the figure in status.
        obj = cluster.get("namespacequota", name)
        assert obj["status"]["lastReconcileLagSeconds"] >= 0
        assert _samples(op, "plinth_reconcile_lag_seconds_count", kind="NamespaceQuota") == lag_before + 1
        assert _samples(op, "plinth_reconcile_total", kind="NamespaceQuota", result="success") > 0
        assert _samples(op, "plinth_queue_lag_seconds_count", kind="NamespaceQuota") > 0

        # A new generation: a second lag observation; no-op resyncs post no further Event.
        cluster.kubectl("apply", "--server-side", "--field-manager=tests", "-f", "-", input=_quota(name, namespace, 6))
        wait_for(
            lambda: _samples(op, "plinth_reconcile_lag_seconds_count", kind="NamespaceQuota") == lag_before + 2,
            what="lag observed for generation 2",
        )
        posted = len(cluster.get("events", "-A", "--field-selector", f"involvedObject.name={name}")["items"])
        before = _samples(op, "plinth_reconcile_total", kind="NamespaceQuota", result="success")
        cluster.kubectl("annotate", "namespace", namespace, f"touch={uuid.uuid4().hex[:6]}")  # a namespace event
        wait_for(
            lambda: _samples(op, "plinth_reconcile_total", kind="NamespaceQuota", result="success") > before,
            what="a no-op reconcile",
        )
        assert len(cluster.get("events", "-A", "--field-selector", f"involvedObject.name={name}")["items"]) == posted
    finally:
        cluster.kubectl("delete", "namespacequota", name, "--wait=false", check=False)
