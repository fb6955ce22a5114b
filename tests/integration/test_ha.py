"""High availability: several `plinth run --no-standalone` replicas, one working, the others standing by.

The replicas peer through kopf's ClusterKopfPeering object (charts/plinth/files/peering/). The oldest live replica
works; the others answer /healthz but make no write. When the working replica is SIGKILLed, a standby takes over once
the dead one's keep-alive expires (PLINTH_PEERING_LIFETIME_SECONDS, 10 s by default); on SIGTERM the stopping replica
withdraws its keep-alive and the handover is immediate. Proven on the real API server: which replica logged
"reconciled" for which object, each replica's own count of write requests (plinth_adapter_requests_total), and
managedFields of the children. The session operator (standalone) is stopped for these tests and restarted after.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT, Cluster, Operator, wait_for

pytestmark = pytest.mark.cluster

PEERING_CRD = ROOT / "charts" / "plinth" / "files" / "peering" / "clusterkopfpeerings.kopf.dev.yaml"
CRD_NAME = "clusterkopfpeerings.kopf.dev"
# A correctness bound with a wide margin over the design figure (lifetime 10 s + relist + one reconcile).
TAKEOVER_BOUND_SECONDS = 20.0
WRITES = ("apply", "patch_status", "delete", "create")


def _remove_peering_crd(cluster: Cluster) -> None:
    cluster.kubectl("delete", "crd", CRD_NAME, "--ignore-not-found", "--wait=true", "--timeout=60s")


@pytest.fixture(scope="module")
def peering_crd(cluster: Cluster, operator: Operator) -> Iterator[None]:
    """The peering CRD installed and the standalone session operator stopped (it would reconcile everything too);
    both undone afterwards, so the rest of the session runs as before."""
    assert operator.stop() == 0
    try:
        cluster.kubectl("apply", "--server-side", "--field-manager=plinth-tests", "-f", str(PEERING_CRD))
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", CRD_NAME)
        yield
    finally:
        _remove_peering_crd(cluster)
        operator.start()


def _env(peering: str) -> dict[str, str]:
    return {"PLINTH_STANDALONE": "false", "PLINTH_PEERING_NAME": peering}


def _log_entries(log: Path) -> list[dict[str, Any]]:
    entries = []
    for line in log.read_text().splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return entries


def _reconciles(op: Operator, kind: str, name: str) -> list[dict[str, Any]]:
    """The "reconciled" log entries *op* wrote for kind/name."""
    return [
        e
        for e in _log_entries(op.log)
        if e.get("message") == "reconciled" and (e.get("ref") or {}).get("kind") == kind and e["ref"]["name"] == name
    ]


def _reconciled(op: Operator, kind: str, name: str) -> list[str]:
    """The results *op* logged for kind/name."""
    return [e["result"] for e in _reconciles(op, kind, name)]


def _reconciled_times(op: Operator, kind: str, name: str) -> list[datetime]:
    return [datetime.fromisoformat(e["time"]) for e in _reconciles(op, kind, name)]


def _last_logged(op: Operator, text: str) -> datetime | None:
    """When *op* last logged a message containing *text*."""
    times = [e["time"] for e in _log_entries(op.log) if text in e.get("message", "")]
    return datetime.fromisoformat(times[-1]) if times else None


def _peering_state(op: Operator) -> str | None:
    """What *op*'s own reading of the peering object last said (its "peering: working/standing by/unknown" lines)."""
    states = [
        message.removeprefix("peering: ")
        for e in _log_entries(op.log)
        if (message := e.get("message", "")).startswith(
            ("peering: working", "peering: standing by", "peering: unknown")
        )
    ]
    return states[-1] if states else None


def _is_active(op: Operator) -> bool:
    """kopf logs "Resuming operations" when a replica (re)starts working, and the replica's schedule has read the
    same from the peering object; a standby starts paused, and kopf logs nothing."""
    resumed = any("Resuming operations" in e.get("message", "") for e in _log_entries(op.log))
    return resumed and _peering_state(op) == "working"


def _writes(op: Operator) -> float:
    """Write requests this replica made to the Kubernetes API (its own counter)."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(op.metrics())
        if family.name == "plinth_adapter_requests"
        for sample in family.samples
        if sample.name == "plinth_adapter_requests_total" and sample.labels.get("operation") in WRITES
    )


def _peers(cluster: Cluster, peering: str) -> dict[str, Any]:
    found = cluster.kubectl("get", "clusterkopfpeering", peering, "-o", "json", check=False)
    if found.returncode != 0:
        return {}
    status: dict[str, Any] = json.loads(found.stdout).get("status") or {}
    return status


def _ready(cluster: Cluster, *ref: str) -> bool:
    found = cluster.kubectl("get", *ref, "-o", "json", check=False)
    if found.returncode != 0:
        return False
    obj = json.loads(found.stdout)
    status = obj.get("status") or {}
    ready = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), None)
    return bool(
        ready and ready["status"] == "True" and status.get("observedGeneration") == obj["metadata"]["generation"]
    )


def _apply(cluster: Cluster, body: dict[str, Any]) -> None:
    cluster.kubectl("apply", "--server-side", "--field-manager=plinth-tests", "-f", "-", input=yaml.safe_dump(body))


def _quota(name: str, team: str) -> dict[str, Any]:
    return {
        "apiVersion": "plinth.dev/v1alpha1",
        "kind": "NamespaceQuota",
        "metadata": {"name": name},
        "spec": {
            "namespaceSelector": {"matchLabels": {"plinth.dev/team": team}},
            "perNamespace": {"hard": {"pods": 10}},
        },
    }


def _model(name: str, namespace: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "plinth.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"name": "fraud-scorer", "version": "1.4.0", "uri": "s3://models/fraud/1.4.0"},
            "runtime": {"image": "registry.example/model-server:2.1", "port": 8080},
            "replicas": replicas,
        },
    }


def _resumed_at(op: Operator) -> datetime | None:
    """When *op* last started working (kopf's "Resuming operations" line)."""
    return _last_logged(op, "Resuming operations")


def _takeover(
    cluster: Cluster, leaving: Operator, standby: Operator, hand_over: Any, created: list[str]
) -> tuple[float, float]:
    """Hand over (kill/stop *leaving*, the working replica), create a NamespaceQuota at once, and wait until
    *standby* alone has made it Ready. Returns the seconds from the hand-over to the standby resuming work and to the
    quota being Ready. The quota selects a team of its own: two quotas on one namespace would conflict."""
    name = f"ha-{uuid.uuid4().hex[:8]}"
    created.append(name)
    started, wall = time.monotonic(), datetime.now(UTC)
    hand_over()
    _apply(cluster, _quota(name, f"team-{uuid.uuid4().hex[:6]}"))
    wait_for(lambda: _ready(cluster, "nsq", name), timeout=TAKEOVER_BOUND_SECONDS, interval=0.1, what=f"{name} Ready")
    ready = time.monotonic() - started
    assert "success" in _reconciled(standby, "NamespaceQuota", name)
    assert _reconciled(leaving, "NamespaceQuota", name) == [], "a stopping replica takes no new work"
    resumed = _resumed_at(standby)
    assert resumed is not None and resumed >= wall, "the standby started working only after the hand-over"
    return (resumed - wall).total_seconds(), ready


def _assert_single_writer(
    cluster: Cluster, working: Operator, standby: Operator, quota: str, model: tuple[str, str]
) -> None:
    """Only *working* reconciled and wrote; *standby* made no write request at all."""
    namespace, name = model
    assert "success" in _reconciled(working, "NamespaceQuota", quota)
    assert "success" in _reconciled(working, "ModelDeployment", name)
    assert not _is_active(standby)
    assert _reconciled(standby, "NamespaceQuota", quota) == [] == _reconciled(standby, "ModelDeployment", name)
    assert _writes(working) > 0 and _writes(standby) == 0, "the standby made no write request"
    # One writer identity on the children: a single server-side-apply entry, by plinth.
    deployment = cluster.get("-n", namespace, "deployment", name, "--show-managed-fields")
    appliers = [e["manager"] for e in deployment["metadata"]["managedFields"] if e["operation"] == "Apply"]
    assert appliers == ["plinth"], deployment["metadata"]["managedFields"]


def test_peering_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Peering is forced on or off (never kopf's auto-detection), mandatory when on; priorities favour the oldest."""
    from plinth.operator.runtime import kopf_settings, peering_priority
    from plinth.operator.settings import Settings

    standalone = kopf_settings(Settings()).peering
    assert standalone.standalone is True and standalone.mandatory is False
    peering = kopf_settings(Settings(peering_name="p", peering_lifetime_seconds=12), standalone=False).peering
    assert (peering.standalone, peering.mandatory, peering.clusterwide) == (False, True, True)
    assert (peering.name, peering.lifetime) == ("p", 12)
    monkeypatch.setattr(time, "time_ns", lambda: 1_800_000_000_000_001_000)
    older = peering_priority(Settings())
    monkeypatch.setattr(time, "time_ns", lambda: 1_800_000_000_000_002_000)
    assert peering_priority(Settings()) < older < 0 <= peering_priority(Settings(peering_priority=0))


def test_peering_without_its_crd_fails_at_start_up(cluster: Cluster, tmp_path: Path) -> None:
    """No CRD, no peering: a clear error and exit code 2, not a replica that silently never works."""
    _remove_peering_crd(cluster)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "plinth"), "run", "--no-standalone", "--metrics-port", "0"],
        env=cluster.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "ClusterKopfPeering CRD (clusterkopfpeerings.kopf.dev) is not installed" in result.stdout


def test_one_replica_works_and_a_standby_takes_over(
    cluster: Cluster, peering_crd: None, namespace: str, tmp_path: Path
) -> None:
    peering = f"plinth-ha-{uuid.uuid4().hex[:6]}"
    team = f"team-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("label", "namespace", namespace, f"plinth.dev/team={team}")
    first = Operator(cluster, tmp_path / "first.log", env=_env(peering))
    replicas, quotas = [first], []
    model = f"md-{uuid.uuid4().hex[:6]}"
    try:
        # The peering object is created by the first replica; the first replica works.
        wait_for(lambda: _is_active(first), what="first replica active")
        assert len(_peers(cluster, peering)) == 1
        second = Operator(cluster, tmp_path / "second.log", env=_env(peering))
        replicas.append(second)
        wait_for(lambda: len(_peers(cluster, peering)) == 2, what="second replica's keep-alive")
        assert second.healthz() == 200, "a standby is alive: liveness and readiness stay green"

        # Work done while both run: by the first replica only.
        quota = f"ha-{uuid.uuid4().hex[:8]}"
        quotas.append(quota)
        _apply(cluster, _quota(quota, team))
        _apply(cluster, _model(model, namespace, replicas=1))
        wait_for(lambda: _ready(cluster, "nsq", quota), what="NamespaceQuota Ready")
        wait_for(lambda: _ready(cluster, "-n", namespace, "md", model), timeout=90, what="ModelDeployment Ready")
        _assert_single_writer(cluster, first, second, quota, (namespace, model))

        # SIGKILL: no goodbye; the standby waits for the dead replica's keep-alive to expire, then works.
        resumed, ready = _takeover(cluster, first, second, lambda: (first.proc.kill(), first.proc.wait()), quotas)
        print(f"\ntakeover after SIGKILL: working after {resumed:.2f} s, new object Ready after {ready:.2f} s")
        # The survivor resumed every existing object and follows changes to them.
        _apply(cluster, _model(model, namespace, replicas=2))
        wait_for(lambda: _ready(cluster, "-n", namespace, "md", model), timeout=90, what="MD Ready after takeover")
        assert cluster.get("-n", namespace, "deployment", model)["spec"]["replicas"] == 2
        wait_for(lambda: len(_peers(cluster, peering)) == 1, what="the dead replica's keep-alive cleaned up")

        # SIGTERM: the stopping replica withdraws its keep-alive; the next one takes over at once.
        third = Operator(cluster, tmp_path / "third.log", env=_env(peering))
        replicas.append(third)
        wait_for(lambda: len(_peers(cluster, peering)) == 2, what="third replica's keep-alive")
        assert not _is_active(third) and _writes(third) == 0
        codes: list[int] = []
        resumed, ready = _takeover(cluster, second, third, lambda: codes.append(second.stop()), quotas)
        print(f"takeover after SIGTERM: working after {resumed:.2f} s, new object Ready after {ready:.2f} s")
        assert codes == [0]
        assert len(_peers(cluster, peering)) == 1, "the stopped replica removed its own keep-alive"

        cluster.kubectl("-n", namespace, "delete", "md", model, "--timeout=60s")
        cluster.kubectl("delete", "nsq", *quotas, "--timeout=60s")
    finally:
        # Whatever is left is finalized by the session operator, restarted after this module.
        cluster.kubectl("-n", namespace, "delete", "md", model, "--ignore-not-found", "--wait=false", check=False)
        cluster.kubectl("delete", "nsq", *quotas, "--ignore-not-found", "--wait=false", check=False)
        for op in replicas:
            if op.proc.poll() is None:
                op.stop()
        cluster.kubectl("delete", "clusterkopfpeering", peering, "--ignore-not-found", check=False)


def test_a_paused_replica_queues_nothing(cluster: Cluster, peering_crd: None, tmp_path: Path) -> None:
    """A working replica paused by a peer of higher priority (a debugging operator) stops its time-based reconciles
    too: its indexes no longer follow the cluster. Proven with a NamespaceQuota in Conflict, which is retried every
    15 s at first: once the first replica has paused, only the new one retries it."""
    peering = f"plinth-ha-{uuid.uuid4().hex[:6]}"
    team = f"team-{uuid.uuid4().hex[:6]}"
    namespace = f"ha-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl("label", "namespace", namespace, f"plinth.dev/team={team}")
    # Creation times have a resolution of a second, and between two quotas created in the same second the smaller
    # name wins the namespaces: the names keep "older" the winner whichever second each was created in.
    suffix = uuid.uuid4().hex[:8]
    older, newer = f"ha-a-{suffix}", f"ha-b-{suffix}"
    first = Operator(cluster, tmp_path / "first.log", env=_env(peering))
    replicas = [first]
    try:
        wait_for(lambda: _is_active(first), what="first replica active")
        _apply(cluster, _quota(older, team))
        wait_for(lambda: _ready(cluster, "nsq", older), what="the older quota Ready")
        _apply(cluster, _quota(newer, team))  # the same namespaces: Conflict, not Ready, retried every 15 s
        wait_for(lambda: len(_reconciled_times(first, "NamespaceQuota", newer)) >= 2, timeout=60, what="a retry")
        debugging = Operator(cluster, tmp_path / "debugging.log", env={**_env(peering), "PLINTH_PEERING_PRIORITY": "0"})
        replicas.append(debugging)
        wait_for(lambda: _last_logged(first, "Pausing operations") is not None, what="the first replica paused")
        paused = _last_logged(first, "Pausing operations")
        # Its schedule read the same from the peering object (not from kopf's log).
        wait_for(
            lambda: (_peering_state(first) or "").startswith("standing by in favour of"),
            what="the first replica's schedule standing by",
        )
        wait_for(lambda: _is_active(debugging), what="the debugging replica working")
        resumed = _last_logged(debugging, "Resuming operations")
        assert paused is not None and resumed is not None
        # Counted from the debugging replica's own start: it may resume (and reconcile) just before the first
        # replica logs its pause. Its resume and two retries (15 s apart) span a retry of the first replica's.
        wait_for(
            lambda: len([t for t in _reconciled_times(debugging, "NamespaceQuota", newer) if t >= resumed]) >= 3,
            timeout=120,
            what="the debugging replica's resume and two retries",
        )
        # A reconcile already running when kopf paused may still finish; none may start later (a paused replica
        # that kept retrying would have logged two by now).
        grace = paused + timedelta(seconds=2)
        assert [t for t in _reconciled_times(first, "NamespaceQuota", newer) if t > grace] == []
    finally:
        for op in replicas:
            if op.proc.poll() is None:
                op.stop()
        cluster.kubectl("delete", "nsq", older, newer, "--ignore-not-found", "--wait=false", check=False)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        cluster.kubectl("delete", "clusterkopfpeering", peering, "--ignore-not-found", check=False)


def test_standalone_ignores_peering_objects(cluster: Cluster, peering_crd: None, tmp_path: Path) -> None:
    """With the peering CRD and kopf's auto-detected "default" object present, a standalone operator still runs
    standalone: it works at once and never writes a keep-alive."""
    objects = [
        {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": name}}
        for name in ("default", "plinth")
    ]
    cluster.kubectl(
        "apply", "--server-side", "--field-manager=plinth-tests", "-f", "-", input=yaml.safe_dump_all(objects)
    )
    standalone = Operator(cluster, tmp_path / "standalone.log")
    quota = f"ha-{uuid.uuid4().hex[:8]}"
    try:
        _apply(cluster, _quota(quota, f"team-{uuid.uuid4().hex[:6]}"))
        wait_for(lambda: _ready(cluster, "nsq", quota), what="NamespaceQuota Ready")
        assert "success" in _reconciled(standalone, "NamespaceQuota", quota)
        assert _peers(cluster, "default") == {} and _peers(cluster, "plinth") == {}
        cluster.kubectl("delete", "nsq", quota, "--timeout=60s")
    finally:
        assert standalone.stop() == 0
        cluster.kubectl("delete", "clusterkopfpeering", "default", "plinth", "--ignore-not-found", check=False)
