"""The kstatus checker (tests/kstatus.py) on good and bad objects, and on every status captured from a real
reconcile (tests/data/statuses)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml

from tests import kstatus
from tests.unit.test_argocd_health import EXPECTED

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOTS = ROOT / "tests" / "data" / "statuses"


def _cond(type_: str, status: str, reason: str = "Reason", generation: int = 3) -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": "",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
        "observedGeneration": generation,
    }


def _obj(*conditions: dict[str, Any], generation: int = 3, observed: int | None = 3) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": list(conditions)}
    if observed is not None:
        status["observedGeneration"] = observed
    return {
        "apiVersion": "plinth.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "m", "namespace": "ns", "generation": generation},
        "status": status,
    }


GOOD = {
    "ready": _obj(_cond("Ready", "True", "Serving")),
    "reconciling": _obj(_cond("Ready", "False", "RolloutInProgress"), _cond("Reconciling", "True")),
    "stalled": _obj(_cond("Ready", "False", "CrashLoopBackOff"), _cond("Stalled", "True")),
    "stale after a spec change": _obj(_cond("Ready", "True", "Serving", generation=2), generation=3, observed=2),
    "stale and failing": _obj(
        _cond("Ready", "False", "InvalidSpec", generation=2), _cond("Stalled", "True", generation=2), observed=2
    ),
    "conflict with stalled": _obj(
        _cond("Ready", "False", "NamespaceClaimedByOlderQuota"), _cond("Conflict", "True"), _cond("Stalled", "True")
    ),
    "no status yet": {**_obj(), "status": {}},
}

BAD = {
    "no Ready": (_obj(_cond("Reconciling", "True")), "without a Ready condition"),
    "Ready True while Reconciling": (
        _obj(_cond("Ready", "True"), _cond("Reconciling", "True")),
        "Ready is True while Reconciling is True",
    ),
    "Ready True while Stalled": (_obj(_cond("Ready", "True"), _cond("Stalled", "True")), "Stalled is True"),
    "Ready True while a negative-polarity condition holds": (
        _obj(_cond("Ready", "True"), _cond("TotalExceeded", "True")),
        "Ready is True while TotalExceeded is True",
    ),
    "both Reconciling and Stalled": (
        _obj(_cond("Ready", "False"), _cond("Reconciling", "True"), _cond("Stalled", "True")),
        "Reconciling and Stalled are both True",
    ),
    "observedGeneration ahead of generation": (
        _obj(_cond("Ready", "True", generation=3), generation=3, observed=4),
        "status.observedGeneration 4 > metadata.generation 3",
    ),
    "condition observedGeneration ahead of generation": (
        _obj(_cond("Ready", "False", generation=5), _cond("Reconciling", "True")),
        "condition Ready observedGeneration 5 > generation 3",
    ),
    "Ready True carried over from an older generation": (
        _obj(_cond("Ready", "True", generation=2)),
        "Ready is True for generation 2 but the status describes generation 3",
    ),
    "status without observedGeneration": (_obj(_cond("Ready", "True"), observed=None), "without observedGeneration"),
    "Ready False that kstatus reads as Current": (
        _obj(_cond("Ready", "False", "NamespaceClaimedByOlderQuota"), _cond("Conflict", "True")),
        "neither Reconciling nor Stalled is True, so kstatus reports it Current",
    ),
    "duplicate condition": (_obj(_cond("Ready", "True"), _cond("Ready", "True")), "condition Ready appears twice"),
    "reason not CamelCase": (_obj(_cond("Ready", "True", "all good")), "not a CamelCase constant"),
    "status not True/False/Unknown": (_obj(_cond("Ready", "yes")), "not True/False/Unknown"),
}


@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_objects_have_no_violations(name: str) -> None:
    assert kstatus.violations(GOOD[name]) == []


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_objects_are_reported(name: str) -> None:
    obj, expected = BAD[name]
    found = kstatus.violations(obj)
    assert any(expected in v for v in found), found
    assert all(v.startswith("ModelDeployment ns/m: ") for v in found), found


def test_the_kstatus_truthfulness_rule_can_be_left_out() -> None:
    obj, _ = BAD["Ready False that kstatus reads as Current"]
    assert kstatus.violations(obj, kstatus_truthful=False) == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ready", "Current"),
        ("reconciling", "InProgress"),
        ("stalled", "Failed"),
        ("stale after a spec change", "InProgress"),
        ("stale and failing", "InProgress"),
        ("no status yet", "Current"),  # kstatus's blind spot: why Flux users want healthCheckExprs (docs/gitops.md)
    ],
)
def test_compute_follows_kstatus(name: str, expected: str) -> None:
    assert kstatus.compute(GOOD[name]) == expected


def test_compute_reports_terminating() -> None:
    obj = copy.deepcopy(GOOD["ready"])
    obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert kstatus.compute(obj) == "Terminating"


SNAPSHOT_NAMES = sorted(p.relative_to(SNAPSHOTS).as_posix() for p in SNAPSHOTS.rglob("*.json"))


@pytest.mark.parametrize("name", SNAPSHOT_NAMES)
def test_captured_statuses_conform(name: str) -> None:
    obj = json.loads((SNAPSHOTS / name).read_text())
    assert kstatus.violations(obj) == []


# --- Flux healthCheckExprs (docs/gitops.md), evaluated as kustomize-controller does ------------------------------


def _documented_exprs() -> dict[str, dict[str, str]]:
    doc = (ROOT / "docs" / "gitops.md").read_text()
    block = doc.split("```yaml\n  healthCheckExprs:\n", 1)[1].split("```", 1)[0]
    entries = yaml.safe_load("healthCheckExprs:\n" + block)["healthCheckExprs"]
    assert all(e["apiVersion"] == "plinth.dev/v1beta1" for e in entries)
    return {e["kind"]: e for e in entries}


def flux_health(obj: dict[str, Any], exprs: dict[str, str]) -> str:
    """fluxcd/pkg runtime/cel StatusEvaluator: a stale status is InProgress; then inProgress, failed, current in that
    order; none true -> InProgress. An expression that cannot be evaluated is an error (Flux keeps waiting)."""
    meta, status = obj["metadata"], obj.get("status") or {}
    if "observedGeneration" in status and status["observedGeneration"] != meta.get("generation"):
        return "InProgress"
    env = celpy.Environment()
    activation = {k: celpy.json_to_cel(v) for k, v in obj.items()}
    for key, result in (("inProgress", "InProgress"), ("failed", "Failed"), ("current", "Current")):
        if key not in exprs:
            continue
        try:
            value = env.program(env.compile(exprs[key])).evaluate(activation)
        except celpy.CELEvalError:
            return "Error"
        if value == celpy.celtypes.BoolType(True):
            return result
    return "InProgress"


def test_documented_exprs_cover_every_kind_alike() -> None:
    exprs = _documented_exprs()
    assert set(exprs) == {"ModelDeployment", "PreviewEnvironment", "NamespaceQuota"}
    assert len({(e["inProgress"], e["failed"], e["current"]) for e in exprs.values()}) == 1


# What Flux must conclude about each captured status: the Argo CD verdict, in kstatus words (a sleeping preview is
# Ready, so Current).
FLUX_FOR_ARGO = {"Healthy": "Current", "Suspended": "Current", "Progressing": "InProgress", "Degraded": "Failed"}


def _argo_expectations() -> dict[str, str]:
    return {name: FLUX_FOR_ARGO[health] for name, (health, _) in EXPECTED.items()}


@pytest.mark.parametrize("name", sorted(_argo_expectations()))
def test_flux_exprs_agree_with_argocd_on_captured_statuses(name: str) -> None:
    obj = json.loads((SNAPSHOTS / name).read_text())
    assert flux_health(obj, _documented_exprs()[obj["kind"]]) == _argo_expectations()[name]


def test_a_conflicting_quota_is_failed_for_kstatus_and_the_flux_exprs() -> None:
    """A negative-polarity condition comes with Stalled, so neither kstatus nor the expressions call it Current."""
    obj = json.loads((SNAPSHOTS / "namespacequota/conflict.json").read_text())
    assert kstatus.compute(obj) == "Failed"
    assert flux_health(obj, _documented_exprs()["NamespaceQuota"]) == "Failed"


def test_flux_exprs_wait_for_a_first_status_and_for_ready_at_this_generation() -> None:
    exprs = _documented_exprs()["ModelDeployment"]
    obj = json.loads((SNAPSHOTS / "modeldeployment/ready.json").read_text())
    assert flux_health(obj, exprs) == "Current"
    assert flux_health({k: v for k, v in obj.items() if k != "status"}, exprs) == "Error"  # not Current
    for cond in obj["status"]["conditions"]:
        cond["observedGeneration"] -= 1
    assert flux_health(obj, exprs) == "InProgress"
