"""The workload side of observability, without a cluster: OTEL_* injection, ServiceMonitor, the canary metric gate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from plinth.adapters.observability import QueryError
from plinth.operator.api.v1alpha1 import Canary, ModelDeploymentSpec, PreviewEnvironmentSpec
from plinth.operator.builders import model, preview
from plinth.operator.reconcilers.modeldeployment import GateVerdict, metric_gate, next_canary
from plinth.operator.telemetry import Telemetry

OWNER = {
    "apiVersion": "plinth.dev/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "scorer", "namespace": "ml", "uid": "u1"},
}
TELEMETRY = Telemetry(otlp_endpoint="http://otel-collector.observability:4318", resource_attributes="env=prod")


def md_spec(**extra: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {
            "model": {"name": "scorer", "version": "1.0.0", "uri": "s3://m/1"},
            "runtime": {"image": "r.example/serve:1", "env": [{"name": "OTEL_SERVICE_NAME", "value": "mine"}]},
            **extra,
        }
    )


def env_of(deployment: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_otel_variables_are_injected_and_the_users_own_win() -> None:
    env = env_of(model.deployment(OWNER, md_spec(), telemetry=TELEMETRY))
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4318"
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == "k8s.namespace.name=ml,service.version=1.0.0,env=prod"
    assert env["OTEL_SERVICE_NAME"] == "mine"  # set by the user, not overwritten
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in env_of(model.deployment(OWNER, md_spec()))


def test_preview_services_get_the_commit_as_service_version() -> None:
    owner = {"metadata": {"name": "shop", "namespace": "team", "uid": "u"}}
    spec = PreviewEnvironmentSpec.model_validate(
        {
            "source": {"repository": "r", "pullRequest": 1, "commit": "abcdef1"},
            "team": "t",
            "services": [{"name": "web", "image": "i:1"}],
        }
    )
    owner["spec"] = {"source": {"pullRequest": 1}}
    env = env_of(preview.deployment(owner, spec, spec.services[0], sleeping=False, telemetry=TELEMETRY))
    assert env["OTEL_SERVICE_NAME"] == "web"
    assert "service.version=abcdef1" in env["OTEL_RESOURCE_ATTRIBUTES"]


def test_service_monitor_scrapes_the_metrics_port() -> None:
    spec = md_spec(monitoring={"metricsPort": 9090, "metricsPath": "/stats"})
    monitor = model.service_monitor(OWNER, spec)
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/stats", "interval": "30s"}]
    assert [p["name"] for p in model.service(OWNER, spec)["spec"]["ports"]] == ["http", "metrics"]
    same_port = md_spec(monitoring={})
    assert model.service_monitor(OWNER, same_port)["spec"]["endpoints"][0]["port"] == "http"


class Answers:
    """A MetricsQuery answering from a list (the unit under test is the gate's decision, not Prometheus)."""

    def __init__(self, *answers: float | Exception | None) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    def value(self, promql: str) -> float | None:
        self.asked.append(promql)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def canary(**rollback: Any) -> Canary:
    return Canary.model_validate(
        {"version": "1.1.0", "uri": "s3://m/1.1", "trafficPercent": 20, "autoPromote": {"after": "1m"}, **rollback}
    )


GATED = canary(rollback={"metric": {"query": 'err{ns="{{namespace}}",v="{{version}}",md="{{name}}"}', "max": 0.05}})
GATED_SPEC = md_spec()  # a custom image: no default gate


@pytest.mark.parametrize(
    ("answer", "failed", "hold", "words"),
    [
        (0.01, False, False, "ok: 0.01 <= 0.05"),
        (0.2, True, False, "failed: 0.2 > 0.05"),
        (None, False, True, "no data"),
        (QueryError("Prometheus query failed: timeout"), False, True, "timeout"),
    ],
)
def test_metric_gate_verdicts(answer: float | Exception | None, failed: bool, hold: bool, words: str) -> None:
    prometheus = Answers(answer)
    verdict = metric_gate(GATED_SPEC, GATED, OWNER, prometheus)
    assert verdict is not None
    assert (verdict.failed, verdict.hold) == (failed, hold)
    assert words in verdict.message
    assert prometheus.asked == ['err{ns="ml",v="1.1.0",md="scorer"}']


def test_metric_gate_without_prometheus_holds_and_without_a_gate_says_nothing() -> None:
    verdict = metric_gate(GATED_SPEC, GATED, OWNER, None)
    assert verdict is not None and verdict.hold and not verdict.failed
    assert metric_gate(GATED_SPEC, canary(), OWNER, Answers()) is None


def test_plinths_server_gets_the_5xx_ratio_gate_when_the_operator_has_prometheus() -> None:
    spec = ModelDeploymentSpec.model_validate(
        {"model": {"name": "scorer", "version": "1.0.0", "uri": "s3://m/1"}, "runtime": {}}
    )
    prometheus = Answers(0.5)
    verdict = metric_gate(spec, canary(), OWNER, prometheus)
    assert verdict is not None and verdict.failed and "0.5 > 0.05" in verdict.message
    (query,) = prometheus.asked
    assert 'code="5xx"' in query and 'version="1.1.0"' in query and 'namespace="ml"' in query
    assert metric_gate(spec, canary(), OWNER, None) is None  # no Prometheus: no default gate holding promotion
    custom_canary = canary(image="r.example/serve:2")
    assert metric_gate(spec, custom_canary, OWNER, Answers()) is None


def test_a_held_gate_blocks_promotion_and_a_failed_one_rolls_back() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    healthy = {
        "version": "1.1.0",
        "phase": "Healthy",
        "startedAt": "2026-01-01T00:00:00Z",
        "healthySince": "2026-01-01T00:00:00Z",
    }
    later = now + timedelta(minutes=5)
    held = next_canary(
        healthy, GATED, ready=1, want=1, failed=False, now=later, gate=GateVerdict(False, True, "no data")
    )
    assert held["phase"] == "Healthy"
    assert held["message"] == "no data"
    passed = next_canary(healthy, GATED, ready=1, want=1, failed=False, now=later, gate=GateVerdict(False, False, "ok"))
    assert passed["phase"] == "Promoted"
    failed = next_canary(healthy, GATED, ready=1, want=1, failed=False, now=later, gate=GateVerdict(True, False, "bad"))
    assert (failed["phase"], failed["message"]) == ("RolledBack", "bad")


def test_slo_alerts_become_a_prometheus_rule_for_the_active_version() -> None:
    slo = {
        "errorRatioQuery": 'err{ns="{{namespace}}",md="{{name}}",v="{{version}}"}',
        "maxErrorRatio": 0.02,
        "latencyQuery": 'p99{ns="{{namespace}}"}',
        "maxLatencySeconds": 0.5,
        "for": "10m",
    }
    rule = model.prometheus_rule(OWNER, md_spec(monitoring={"slo": slo}), "1.0.0")
    assert rule is not None
    (group,) = rule["spec"]["groups"]
    error, latency = group["rules"]
    assert error["alert"] == "ModelErrorRatioHigh"
    assert error["expr"] == '(err{ns="ml",md="scorer",v="1.0.0"}) > 0.02'
    assert error["for"] == "10m"
    assert error["labels"] == {"namespace": "ml", "modeldeployment": "scorer", "severity": "warning"}
    assert latency["expr"] == '(p99{ns="ml"}) > 0.5'
    assert model.prometheus_rule(OWNER, md_spec(monitoring={}), "1.0.0") is None
    assert model.prometheus_rule(OWNER, md_spec(), "1.0.0") is None
