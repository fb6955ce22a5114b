"""The dashboards, alert rules and runbooks: promtool validates and unit-tests the rules, every PromQL expression
(rules, dashboards, docs) parses and names only metrics the operator exports, and every runbook link resolves.

promtool comes from hack/promtool.sh (Debian's prometheus package, cached under ~/.cache/plinth/promtool); a
machine where it cannot be obtained fails these tests instead of skipping them."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from plinth.operator.metrics import Metrics
from prometheus_client.metrics import MetricWrapperBase

ROOT = Path(__file__).resolve().parents[2]
ALERTS_DIR = ROOT / "charts" / "plinth" / "files" / "alerts"
RULES = ALERTS_DIR / "plinth-rules.yaml"
RULE_TESTS = ALERTS_DIR / "plinth-rules.test.yaml"
DASHBOARDS = {
    name: ROOT / "charts" / "plinth" / "files" / "dashboards" / f"{name}.json"
    for name in ("executive", "oncall", "debug")
}
RUNBOOKS = ROOT / "docs" / "runbooks"
OBSERVABILITY_DOC = ROOT / "docs" / "observability.md"

# Series every Prometheus has (scrape health, the alert state of rules), and the API server's own, with the labels
# Kubernetes documents for them.
STANDARD_METRICS: dict[str, frozenset[str]] = {
    "up": frozenset(),
    "ALERTS": frozenset({"alertname", "alertstate", "severity", "kind", "slo", "window", "reason"}),
    "apiserver_request_total": frozenset(
        {"group", "version", "resource", "subresource", "verb", "scope", "component", "code", "dry_run"}
    ),
    "apiserver_requested_deprecated_apis": frozenset(
        {"group", "version", "resource", "subresource", "removed_release"}
    ),
}
# Labels Prometheus attaches to every scraped series.
TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod", "service", "container", "endpoint"})
# Grafana's built-in and dashboard variables, replaced by representative values before promtool parses a query.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1d", "$kind": ".*", "$adapter": ".*"}

PROMQL_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset", "inf"}
)


# --- promtool ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def promtool() -> Path:
    """The promtool binary; installed by hack/promtool.sh on first use (a few seconds, cached afterwards)."""
    result = subprocess.run(
        ["bash", str(ROOT / "hack" / "promtool.sh")], capture_output=True, text=True, check=False, timeout=1800
    )
    if result.returncode != 0:
        pytest.fail(f"hack/promtool.sh could not provide promtool:\n{result.stderr}")
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path.is_file(), result.stdout + result.stderr
    return path


def _promtool(promtool: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(promtool), *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=300)


def test_promtool_check_rules(promtool: Path) -> None:
    result = _promtool(promtool, "check", "rules", RULES.name, cwd=ALERTS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_test_rules(promtool: Path) -> None:
    """Input series for every alert, with the alerts that must (and must not) fire at given times."""
    result = _promtool(promtool, "test", "rules", RULE_TESTS.name, cwd=ALERTS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_dashboard_and_doc_queries_parse(promtool: Path, tmp_path: Path) -> None:
    """promtool only checks rule files, so every dashboard and docs query becomes a recording rule for the check."""
    queries = [(where, _substitute(expr)) for where, expr in [*_dashboard_queries(), *_doc_queries()]]
    assert len(queries) > 40, "expected the dashboards and docs to carry their queries"
    rules = [{"record": f"check:query_{i}", "expr": expr} for i, (_, expr) in enumerate(queries)]
    (tmp_path / "queries.yaml").write_text(yaml.safe_dump({"groups": [{"name": "queries", "rules": rules}]}))
    result = _promtool(promtool, "check", "rules", "queries.yaml", cwd=tmp_path)
    index = "\n".join(f"check:query_{i}: {where}" for i, (where, _) in enumerate(queries))
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\nwhich query is which:\n{index}"


# --- rules --------------------------------------------------------------------------------------------------------


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def test_every_alert_has_severity_summary_description_and_runbook() -> None:
    alerts = _alerts()
    assert {a["alert"] for a in alerts} >= {
        "PlinthOperatorDown",
        "PlinthReconcileErrorBudgetBurn",
        "PlinthReconcileLagBudgetBurn",
        "PlinthReconcileStuck",
        "PlinthPolicyDenialSpike",
    }
    for alert in alerts:
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}, alert["alert"]
        for key in ("summary", "description", "runbook_url"):
            assert alert["annotations"].get(key, "").strip(), f"{alert['alert']} has no {key}"


def test_runbook_urls_resolve_to_runbooks() -> None:
    for alert in _alerts():
        url = alert["annotations"]["runbook_url"]
        assert url.startswith("docs/runbooks/") and url.endswith(".md"), url
        assert (ROOT / url).is_file(), f"{alert['alert']}: {url} does not exist"
        assert alert["alert"] in (ROOT / url).read_text(), f"{url} does not name {alert['alert']}"
    linked = {(ROOT / a["annotations"]["runbook_url"]).resolve() for a in _alerts()}
    assert set(RUNBOOKS.glob("*.md")) <= linked, "a runbook no alert links to"


def test_burn_rate_alerts_page_fast_and_ticket_slow() -> None:
    """Multi-window, multi-burn-rate: each SLO alert has a 1h/5m page and a 6h/30m ticket."""
    for name in ("PlinthReconcileErrorBudgetBurn", "PlinthReconcileLagBudgetBurn"):
        rules = {a["labels"]["window"]: a for a in _alerts() if a["alert"] == name}
        assert set(rules) == {"1h", "6h"}, name
        assert rules["1h"]["labels"]["severity"] == "critical"
        assert "ratio_rate1h > (14.4 *" in rules["1h"]["expr"] and "ratio_rate5m > (14.4 *" in rules["1h"]["expr"]
        assert rules["6h"]["labels"]["severity"] == "warning"
        assert "ratio_rate6h > (6 *" in rules["6h"]["expr"] and "ratio_rate30m > (6 *" in rules["6h"]["expr"]


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    """Each alert has a promtool case where it must fire and one where it must stay silent."""
    cases = [
        case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"] for case in test.get("alert_rule_test", [])
    ]
    for name in {a["alert"] for a in _alerts()}:
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case.get("exp_alerts") for case in mine), f"no test where {name} fires"
        assert any(not case.get("exp_alerts") for case in mine), f"no test where {name} stays silent"


# --- dashboards ---------------------------------------------------------------------------------------------------


def _dashboard(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARDS[name].read_text())
    return loaded


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _dashboard_queries() -> Iterator[tuple[str, str]]:
    for name in DASHBOARDS:
        for panel in _panels(_dashboard(name)["panels"]):
            for target in panel.get("targets", []):
                yield f"{name}: {panel['title']} ({target['refId']})", target["expr"]


def _doc_queries() -> Iterator[tuple[str, str]]:
    for i, block in enumerate(re.findall(r"```promql\n(.*?)```", OBSERVABILITY_DOC.read_text(), re.S)):
        yield f"docs/observability.md promql block {i + 1}", block.strip()


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_model(name: str) -> None:
    board = _dashboard(name)
    assert board["uid"] == f"plinth-{name}"
    assert board["schemaVersion"] >= 36
    assert board["id"] is None, "exported dashboards must not pin a database id"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["kind"]["type"] == "query" and variables["kind"]["includeAll"]
    panels = list(_panels(board["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {name}"
    occupied: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & occupied, f"{name}: {panel['title']} overlaps another panel"
        occupied |= cells
        if panel["type"] in {"row", "text"}:
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", panel["datasource"]) == panel["datasource"], panel["title"]
            assert target["expr"].strip(), panel["title"]


def test_dashboards_have_their_panels() -> None:
    """What docs/observability.md promises each audience sees."""
    titles = {name: " | ".join(p.get("title", "") for p in _panels(_dashboard(name)["panels"])) for name in DASHBOARDS}
    for needle in (
        "availability",
        "Reconciles without error",
        "provisioning success",
        "lag p95 vs objective",
        "Objects by kind and Ready",
    ):
        assert needle.lower() in titles["executive"].lower(), needle
    for needle in ("error budget burn rate", "lag p50 / p95 / p99", "in progress", "Retries", "Queue lag"):
        assert needle.lower() in titles["oncall"].lower(), needle
    for needle in (
        "duration p50 / p95 / p99 by kind",
        "Adapter calls",
        "Adapter errors",
        "Adapter latency",
        "memory",
        "CPU",
    ):
        assert needle.lower() in titles["debug"].lower(), needle


# --- metric names -------------------------------------------------------------------------------------------------


def _exported_metrics() -> dict[str, frozenset[str]]:
    """Series names (with their label names) that a Metrics() registry exposes, samples or not."""
    metrics = Metrics()
    labels_of = {
        wrapper.describe()[0].name: frozenset(wrapper._labelnames)
        for wrapper in vars(metrics).values()
        if isinstance(wrapper, MetricWrapperBase)
    }
    suffixes = {
        "counter": ("_total",),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum"),
        "summary": ("", "_count", "_sum"),
        "info": ("_info",),
    }
    exported: dict[str, frozenset[str]] = {}
    for family in metrics.registry.collect():
        labels = labels_of.get(family.name, frozenset())
        for suffix in suffixes.get(family.type, ("",)):
            exported[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return exported


def _recorded() -> dict[str, frozenset[str]]:
    """Series the recording rules produce (alerts may use them); their labels are those they aggregate by."""
    out: dict[str, frozenset[str]] = {}
    for rule in _rules():
        if "record" in rule:
            by = re.findall(r"\bby \(([^)]*)\)", rule["expr"])
            out[rule["record"]] = frozenset(label.strip() for group in by for label in group.split(","))
    return out


def _selectors(expr: str) -> Iterator[tuple[str, frozenset[str]]]:
    """(metric name, label names matched) for every series selector in a PromQL expression.

    A small lexer, not a parser: strings, ranges and label groupings are removed, then every identifier that is not
    a function call, keyword or number is a metric name; the `{...}` right after it holds its matchers."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string contents may hold anything
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges and subqueries: [5m], [30d:5m]
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    for token in _TOKEN.finditer(expr):
        name, matchers = token.group("name"), token.group("matchers")
        assert not token.group("bare"), f"selector without a metric name in {expr!r}"
        if not name or name.lower() in PROMQL_KEYWORDS:
            continue
        if not matchers and expr[token.end() :].lstrip().startswith("("):
            continue  # a function call
        yield name, frozenset(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", matchers or ""))


_TOKEN = re.compile(
    r"(?P<number>\d[\w.]*)|(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)\s*(?P<matchers>\{[^}]*\})?|(?P<bare>\{[^}]*\})"
)


def test_selector_lexer() -> None:
    """The lexer behind the metric-name check finds names and labels, and ignores functions, keywords and ranges."""
    found = list(
        _selectors(
            'sum by (kind) (rate(plinth_reconcile_total{result="error", kind=~"a|b"}[5m] offset 1h)) '
            'or histogram_quantile(0.95, sum by (le) (rate(x_bucket[1h]))) * 0 / on (kind) up{job=~".*"} > bool 2'
        )
    )
    assert found == [
        ("plinth_reconcile_total", frozenset({"result", "kind"})),
        ("x_bucket", frozenset()),
        ("up", frozenset({"job"})),
    ]
    assert list(_selectors('vector(30) + label_values_not_a_call{a="{b}"}')) == [
        ("label_values_not_a_call", frozenset({"a"}))
    ]


def _all_queries() -> Iterator[tuple[str, str]]:
    for rule in _rules():
        yield f"rule {rule.get('record') or rule.get('alert')}", rule["expr"]
    yield from _dashboard_queries()
    yield from _doc_queries()
    for name in DASHBOARDS:
        for variable in _dashboard(name)["templating"]["list"]:
            if variable["type"] == "query":
                metric = re.fullmatch(r"label_values\((\w+), *(\w+)\)", variable["definition"])
                assert metric, variable["definition"]
                yield f"{name}: variable {variable['name']}", f'{metric.group(1)}{{{metric.group(2)}!=""}}'


def test_queries_use_only_exported_metrics_and_labels() -> None:
    known = {**STANDARD_METRICS, **_exported_metrics(), **_recorded()}
    unknown = []
    for where, expr in _all_queries():
        names = list(_selectors(_substitute(expr)))
        for name, labels in names:
            if name not in known:
                unknown.append(f"{where}: metric {name}")
            elif extra := labels - known[name] - TARGET_LABELS:
                unknown.append(f"{where}: {name} has no label(s) {sorted(extra)}")
    assert not unknown, "\n".join(unknown)


def test_exported_metrics_are_what_the_operator_defines() -> None:
    """Guards the registry walk above: it must see the operator's real metrics with their labels."""
    exported = _exported_metrics()
    assert exported["plinth_reconcile_total"] == {"kind", "result"}
    assert exported["plinth_reconcile_lag_seconds_bucket"] == {"kind", "le"}
    assert exported["plinth_resources"] == {"kind", "ready"}
    assert exported["plinth_adapter_duration_seconds_count"] == {"adapter", "operation"}


def _substitute(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
    return expr


# --- docs ---------------------------------------------------------------------------------------------------------


def test_docs_list_every_alert_and_link_its_runbook() -> None:
    doc = OBSERVABILITY_DOC.read_text()
    for alert in _alerts():
        assert alert["alert"] in doc, f"docs/observability.md does not list {alert['alert']}"
        runbook = Path(alert["annotations"]["runbook_url"]).name
        assert f"(runbooks/{runbook})" in doc, f"docs/observability.md does not link {runbook}"
    for sli in (
        "Availability",
        "Error rate",
        "Latency",
        "Queue depth",
        "Reconciliation lag",
        "Provisioning success",
        "Retry rate",
        "Policy-denial rate",
    ):
        assert f"### {sli}" in doc, f"docs/observability.md has no section for the {sli} SLI"


def test_relative_links_in_observability_docs_resolve() -> None:
    for page in [OBSERVABILITY_DOC, *RUNBOOKS.glob("*.md")]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if re.match(r"[a-z]+://", target):
                continue
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} links to missing {target}"
