"""The canary metric gate against a real Prometheus (Debian's server binary, via hack/promtool.sh) scraping an
exporter this test controls: a low error ratio lets the canary be promoted, a high one rolls it back."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Cluster, Operator, http_get, wait_for
from tests.integration.test_modeldeployment import _apply, _canary_phase, _ready_at
from tests.prometheus import running_prometheus

pytestmark = pytest.mark.cluster
QUERY = 'max(model_error_ratio{namespace="{{namespace}}",version="{{version}}"})'


class Exporter:
    """Serves model_error_ratio gauges in the Prometheus text format; tests set the values."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], float] = {}
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                lines = ["# TYPE model_error_ratio gauge"]
                lines += [
                    f'model_error_ratio{{namespace="{ns}",version="{v}"}} {value}'
                    for (ns, v), value in exporter.values.items()
                ]
                body = ("\n".join(lines) + "\n").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def exporter() -> Iterator[Exporter]:
    running = Exporter()
    yield running
    running.server.shutdown()


@pytest.fixture(scope="module")
def prometheus(exporter: Exporter, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = (
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs: [{{job_name: models, static_configs: [{{targets: ['127.0.0.1:{exporter.port}']}}]}}]\n"
    )
    with running_prometheus(config, tmp_path_factory.mktemp("prometheus")) as url:
        yield url


@pytest.fixture(scope="module")
def gated_operator(
    cluster: Cluster, operator: Operator, prometheus: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    """The session operator, restarted with PLINTH_PROMETHEUS_URL (only one operator runs at a time)."""
    operator.stop()
    log: Path = tmp_path_factory.mktemp("gated") / "operator.log"
    gated = Operator(cluster, log, env={"PLINTH_PROMETHEUS_URL": prometheus})
    try:
        yield gated
    finally:
        gated.stop()
        operator.start()


def _scraped(prometheus: str, namespace: str, version: str) -> bool:
    status, body = http_get(f"{prometheus}/api/v1/query?query=model_error_ratio%7Bnamespace%3D%22{namespace}%22%7D")
    return status == 200 and version in body


def _gated_canary(cluster: Cluster, namespace: str, name: str) -> None:
    _apply(cluster, namespace, name)
    _ready_at(cluster, namespace, name, "1.4.0")
    _apply(
        cluster,
        namespace,
        name,
        canary={
            "version": "1.5.0",
            "uri": "s3://m/1.5.0",
            "trafficPercent": 20,
            "autoPromote": {"after": "3s"},
            "rollback": {"metric": {"query": QUERY, "max": 0.05}},
        },
    )


def test_a_healthy_error_ratio_lets_the_canary_be_promoted(
    cluster: Cluster, gated_operator: Operator, exporter: Exporter, prometheus: str, namespace: str
) -> None:
    exporter.values[(namespace, "1.5.0")] = 0.01
    wait_for(lambda: _scraped(prometheus, namespace, "1.5.0"), what="Prometheus scraped the exporter")
    name = f"md-{uuid.uuid4().hex[:6]}"
    _gated_canary(cluster, namespace, name)
    obj = _canary_phase(cluster, namespace, name, "Promoted")
    assert "metric gate ok: 0.01 <= 0.05" in obj["status"]["canary"]["message"]


def test_a_high_error_ratio_rolls_the_canary_back(
    cluster: Cluster, gated_operator: Operator, exporter: Exporter, prometheus: str, namespace: str
) -> None:
    exporter.values[(namespace, "1.5.0")] = 0.5
    wait_for(lambda: _scraped(prometheus, namespace, "1.5.0"), what="Prometheus scraped the exporter")
    name = f"md-{uuid.uuid4().hex[:6]}"
    _gated_canary(cluster, namespace, name)
    obj = _canary_phase(cluster, namespace, name, "RolledBack")
    gate = next(c for c in obj["status"]["conditions"] if c["type"] == "CanaryHealthy")
    assert gate["status"] == "False"
    assert "metric gate failed: 0.5 > 0.05" in gate["message"]
    assert obj["status"]["activeVersion"] == "1.4.0"


def _queries(op: Operator) -> float:
    """How many Prometheus queries the operator made (its own adapter counter, parsed from /metrics)."""
    for family in text_string_to_metric_families(op.metrics()):
        if family.name == "plinth_adapter_requests":
            return sum(
                s.value for s in family.samples if s.name.endswith("_total") and s.labels.get("adapter") == "prometheus"
            )
    return 0.0


def test_no_data_holds_the_promotion(
    cluster: Cluster, gated_operator: Operator, exporter: Exporter, namespace: str
) -> None:
    name = f"md-{uuid.uuid4().hex[:6]}"
    _gated_canary(cluster, namespace, name)  # nothing exported for this namespace: no data
    _canary_phase(cluster, namespace, name, "Healthy")
    wait_for(
        lambda: "no data" in (cluster.get("-n", namespace, "md", name)["status"]["canary"].get("message") or ""),
        what="gate reports no data",
    )
    # Two more evaluations (the canary is re-checked every 10 s): autoPromote.after (3 s) has long passed, and the
    # gate still holds the promotion.
    asked = _queries(gated_operator)
    wait_for(lambda: _queries(gated_operator) >= asked + 2, timeout=60, what="two more gate evaluations")
    obj = cluster.get("-n", namespace, "md", name)
    assert obj["status"]["canary"]["phase"] == "Healthy"
    assert obj["status"]["activeVersion"] == "1.4.0"
