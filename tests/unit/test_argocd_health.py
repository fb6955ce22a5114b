"""The Argo CD health scripts (charts/plinth/files/argocd/*.lua) run in a real Lua 5.1 interpreter (lupa), as
Argo CD's gopher-lua runs them, over statuses captured from real reconciles (tests/data/statuses, refreshed by
tests/integration/test_gitops.py with PLINTH_UPDATE_SNAPSHOTS=1)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from lupa import lua51
from plinth.operator.conditions import NEGATIVE_POLARITY

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "charts" / "plinth" / "files" / "argocd"
SNAPSHOTS = ROOT / "tests" / "data" / "statuses"
KINDS = ("ModelDeployment", "PreviewEnvironment", "NamespaceQuota")

# Every committed snapshot and what Argo CD must say about it: (health status, a piece of the message).
EXPECTED: dict[str, tuple[str, str]] = {
    "namespacequota/ready.json": ("Healthy", "quota applied in 1 namespace"),
    "namespacequota/new-generation.json": ("Progressing", "observe generation 2 (status describes 1)"),
    "namespacequota/conflict.json": ("Degraded", "NamespaceClaimedByOlderQuota"),
    "modeldeployment/ready.json": ("Healthy", "serving"),
    "modeldeployment/new-generation.json": ("Progressing", "observe generation 2 (status describes 1)"),
    "modeldeployment/rollout-in-progress.json": ("Progressing", "RolloutInProgress"),
    "modeldeployment/crashloop.json": ("Degraded", "CrashLoopBackOff"),
    "modeldeployment/canary-rolled-back.json": ("Degraded", "CanaryRolledBack"),
    "previewenvironment/ready.json": ("Healthy", "all services ready"),
    "previewenvironment/new-generation.json": ("Progressing", "observe generation 2 (status describes 1)"),
    "previewenvironment/crashloop.json": ("Degraded", "CrashLoopBackOff"),
    "previewenvironment/asleep.json": ("Suspended", "Asleep"),
}


def script(kind: str) -> str:
    return (SCRIPTS / f"{kind.lower()}.lua").read_text()


def _to_lua(runtime: Any, value: Any) -> Any:
    """JSON -> Lua as Argo CD converts objects: objects and arrays become tables (arrays 1-based), null is nil."""
    if isinstance(value, Mapping):
        return runtime.table_from({k: _to_lua(runtime, v) for k, v in value.items() if v is not None})
    if isinstance(value, list):
        return runtime.table_from([_to_lua(runtime, v) for v in value])
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # Lua 5.1 has only doubles, like gopher-lua's LNumber
    return value


def argocd_health(obj: Mapping[str, Any]) -> dict[str, str]:
    """Run the health script for *obj*'s kind the way Argo CD does: a fresh VM, `obj` as a global, no io/os/debug."""
    runtime = lua51.LuaRuntime(register_eval=False, register_builtins=False)
    env = runtime.globals()
    for unsafe in ("io", "os", "debug", "dofile", "loadfile", "load", "loadstring", "require", "package"):
        env[unsafe] = None
    env.obj = _to_lua(runtime, obj)
    result = runtime.execute(script(obj["kind"]))
    return {"status": result["status"], "message": result["message"]}


def snapshot(name: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads((SNAPSHOTS / name).read_text())
    return obj


def test_every_snapshot_has_an_expectation() -> None:
    committed = {p.relative_to(SNAPSHOTS).as_posix() for p in SNAPSHOTS.rglob("*.json")}
    assert committed == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_health_of_captured_status(name: str) -> None:
    status, message = EXPECTED[name]
    health = argocd_health(snapshot(name))
    assert health["status"] == status, health
    assert message in health["message"], health


def _ready_snapshot_of(kind: str) -> dict[str, Any]:
    """A captured Ready object of *kind*, to derive the states a live cluster rarely holds still for."""
    return copy.deepcopy(snapshot(f"{kind.lower()}/ready.json"))


@pytest.mark.parametrize("kind", KINDS)
def test_no_status_yet_is_progressing(kind: str) -> None:
    obj = _ready_snapshot_of(kind)
    del obj["status"]
    assert argocd_health(obj) == {
        "status": "Progressing",
        "message": "Waiting for the Plinth operator to report status",
    }


@pytest.mark.parametrize("kind", KINDS)
def test_ready_true_from_an_older_generation_is_not_healthy(kind: str) -> None:
    """Even when status.observedGeneration caught up, a Ready carried over from an older generation does not count."""
    obj = _ready_snapshot_of(kind)
    generation = obj["metadata"]["generation"]
    obj["metadata"]["generation"] = obj["status"]["observedGeneration"] = generation + 1
    health = argocd_health(obj)
    assert health["status"] == "Progressing"
    assert f"Ready describes generation {generation}, not {generation + 1}" in health["message"]


@pytest.mark.parametrize("kind", KINDS)
def test_stalled_wins_over_ready(kind: str) -> None:
    obj = _ready_snapshot_of(kind)
    obj["status"]["conditions"].append(
        {"type": "Stalled", "status": "True", "reason": "InvalidSpec", "message": "spec.x: bad"}
    )
    assert argocd_health(obj) == {"status": "Degraded", "message": "InvalidSpec: spec.x: bad"}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("condition", sorted(NEGATIVE_POLARITY))
def test_negative_polarity_condition_degrades(kind: str, condition: str) -> None:
    obj = _ready_snapshot_of(kind)
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    ready.update(status="False", reason="Blocked", message="blocked")
    obj["status"]["conditions"].append({"type": condition, "status": "True", "reason": "Over", "message": "over"})
    assert argocd_health(obj) == {"status": "Degraded", "message": "Over: over"}


def test_scripts_know_exactly_the_negative_polarity_conditions_of_the_contract() -> None:
    """operator/conditions.py is the source of truth; a new negative-polarity condition must reach the scripts."""
    for kind in KINDS:
        listed = re.search(r"for _, kind in ipairs\(\{([^}]*)\}\)", script(kind))
        assert listed is not None, kind
        assert set(re.findall(r'"(\w+)"', listed.group(1))) == NEGATIVE_POLARITY, kind


@pytest.mark.parametrize("kind", KINDS)
def test_reconciling_without_ready_is_progressing_with_its_message(kind: str) -> None:
    obj = _ready_snapshot_of(kind)
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    ready.update(status="False", reason="QuotaRebalancing", message="moving limits")
    obj["status"]["conditions"].append(
        {"type": "Reconciling", "status": "True", "reason": "QuotaRebalancing", "message": "moving limits"}
    )
    assert argocd_health(obj) == {"status": "Progressing", "message": "QuotaRebalancing: moving limits"}


def test_sleeping_preview_is_suspended_unless_it_is_failing() -> None:
    obj = _ready_snapshot_of("PreviewEnvironment")
    obj["status"]["sleeping"] = True
    assert argocd_health(obj)["status"] == "Suspended"
    obj["status"]["conditions"].append({"type": "QuotaExceeded", "status": "True", "reason": "Over", "message": "x"})
    assert argocd_health(obj)["status"] == "Degraded"
    # `sleeping` means nothing to the other kinds.
    other = _ready_snapshot_of("ModelDeployment")
    other["status"]["sleeping"] = True
    assert argocd_health(other)["status"] == "Healthy"


def test_failed_canary_degrades_only_model_deployments() -> None:
    """CanaryHealthy=False is Degraded even if Stalled were gone (the stable version still serves)."""
    obj = _ready_snapshot_of("ModelDeployment")
    obj["status"]["conditions"].append(
        {"type": "CanaryHealthy", "status": "False", "reason": "CanaryRolledBack", "message": "rolled back"}
    )
    assert argocd_health(obj) == {"status": "Degraded", "message": "CanaryRolledBack: rolled back"}


def test_scripts_differ_only_in_their_kind_specific_rules() -> None:
    """The three scripts share one body; drift in one (a fix applied to only one kind) shows up here."""

    def core(text: str) -> str:
        text = re.sub(r"^--.*\n", "", text, flags=re.MULTILINE)
        text = re.sub(r'local canary = find\(conditions, "CanaryHealthy"\)\n(.*\n){5}', "", text)
        return re.sub(r"if obj\.status\.sleeping == true then\n(.*\n){4}", "", text)

    bodies = {kind: core(script(kind)) for kind in KINDS}
    assert bodies["ModelDeployment"] == bodies["NamespaceQuota"] == bodies["PreviewEnvironment"]
    assert "CanaryHealthy" in script("ModelDeployment")
    assert "sleeping" in script("PreviewEnvironment")


def test_docs_embed_the_scripts_verbatim() -> None:
    """docs/gitops.md carries the argocd-cm snippet; it must be byte-for-byte the shipped scripts."""
    doc = (ROOT / "docs" / "gitops.md").read_text()
    for kind in KINDS:
        key = f"    resource.customizations.health.plinth.dev_{kind}: |\n"
        assert key in doc, kind
        block = doc.split(key, 1)[1]
        lines = []
        for line in block.splitlines():
            if not line.startswith("      ") and line.strip():
                break
            lines.append(line[6:])
        embedded = "\n".join(lines).rstrip("\n") + "\n"
        assert embedded == script(kind), kind
