"""The reconcile wrapper: the error ladder, status writes, events on change only, metrics — without a cluster.

The adapter is replaced by a tiny in-memory recorder of status patches: this tests the wrapper's logic, not the
Kubernetes API (the integration tests do that against the real API server).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
import pytest
from plinth.adapters.kubernetes import Manifest
from plinth.operator.api.v1alpha1 import NamespaceQuotaSpec, kind_info
from plinth.operator.conditions import Observation
from plinth.operator.errors import Stalled, Waiting
from plinth.operator.metrics import Metrics
from plinth.operator.reconcile import Reconciler
from plinth.operator.reconcilers import Outcome

INFO = kind_info("NamespaceQuota")


class StatusRecorder:
    """Implements the adapter protocol; only status patches matter here."""

    def __init__(self) -> None:
        self.patches: list[dict[str, Any]] = []

    def apply(self, manifest: Manifest, *, live: Manifest | None = None) -> Manifest:
        return manifest

    def get(self, api_version: str, kind: str, name: str, *, namespace: str | None = None) -> Manifest | None:
        return None

    def list(
        self, api_version: str, kind: str, *, namespace: str | None = None, label_selector: str | None = None
    ) -> list[Manifest]:
        return []

    def has_api(self, api_version: str, kind: str) -> bool:
        return True

    def delete(self, api_version: str, kind: str, name: str, *, namespace: str | None = None) -> bool:
        return False

    def patch_status(
        self, api_version: str, kind: str, name: str, status: dict[str, Any], *, namespace: str | None = None
    ) -> bool:
        self.patches.append(status)
        return True


def _obj(spec: dict[str, Any], generation: int = 1) -> Manifest:
    return {
        "apiVersion": "plinth.dev/v1alpha1",
        "kind": "NamespaceQuota",
        "metadata": {"name": "q", "uid": "uid-1", "generation": generation},
        "spec": spec,
    }


VALID = {"namespaces": ["a"], "perNamespace": {"hard": {"pods": 3}}}


def _conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


@pytest.fixture
def setup() -> tuple[Reconciler, StatusRecorder, list[tuple[str, str, str]], Metrics]:
    kube, events, metrics = StatusRecorder(), [], Metrics()
    reconciler = Reconciler(kube, metrics, lambda obj, type_, reason, msg: events.append((type_, reason, msg)))
    return reconciler, kube, events, metrics


def _ok(kube: Any, obj: Manifest, spec: NamespaceQuotaSpec) -> Outcome:
    return Outcome(status={"used": {}}, observations=[Observation("Ready", True, "Reconciled", "fine")])


def test_success_writes_status_once_and_posts_one_event(setup: Any) -> None:
    reconciler, kube, events, metrics = setup
    reconciler.run(INFO, _obj(VALID), _ok)
    reconciler.run(INFO, _obj(VALID), _ok)  # same outcome, same stale body: nothing new to write or say
    assert len(kube.patches) == 1
    status = kube.patches[0]
    assert status["observedGeneration"] == 1
    assert _conditions(status)["Ready"]["status"] == "True"
    assert [e[:2] for e in events] == [("Normal", "Reconciled")]
    assert (
        metrics.registry.get_sample_value("plinth_reconcile_total", {"kind": "NamespaceQuota", "result": "success"})
        == 2
    )
    assert metrics.registry.get_sample_value("plinth_reconcile_lag_seconds_count", {"kind": "NamespaceQuota"}) == 1
    assert metrics.registry.get_sample_value("plinth_reconcile_in_progress", {"kind": "NamespaceQuota"}) == 0


def test_invalid_spec_stalls_without_echoing_values(setup: Any) -> None:
    reconciler, kube, events, _ = setup
    secretish = "hunter2-not-a-quantity"
    with pytest.raises(kopf.PermanentError):
        reconciler.run(INFO, _obj({"namespaces": ["a"], "perNamespace": {"hard": {"pods": secretish}}}), _ok)
    conditions = _conditions(kube.patches[-1])
    assert conditions["Stalled"]["status"] == "True"
    assert conditions["Stalled"]["reason"] == "InvalidSpec"
    assert "spec.perNamespace.hard.pods" in conditions["Stalled"]["message"]
    assert conditions["Ready"]["status"] == "False"
    assert "Reconciling" not in conditions
    assert all(secretish not in str(part) for e in events for part in e)
    assert secretish not in str(kube.patches)


def test_stalled_then_recovered(setup: Any) -> None:
    reconciler, kube, events, _ = setup

    def refuse(kube: Any, obj: Manifest, spec: NamespaceQuotaSpec) -> Outcome:
        raise Stalled("SecretNotShared", "secret db is not shared with this namespace")

    with pytest.raises(kopf.PermanentError):
        reconciler.run(INFO, _obj(VALID), refuse)
    assert _conditions(kube.patches[-1])["Stalled"]["reason"] == "SecretNotShared"
    reconciler.run(INFO, _obj(VALID, generation=2), _ok)
    conditions = _conditions(kube.patches[-1])
    assert "Stalled" not in conditions  # failure conditions disappear on recovery
    assert conditions["Ready"]["status"] == "True"
    assert ("Normal", "StalledResolved") in [e[:2] for e in events]


def test_waiting_is_reconciling_and_retried_after_its_delay(setup: Any) -> None:
    reconciler, kube, _, _ = setup

    def wait(kube: Any, obj: Manifest, spec: NamespaceQuotaSpec) -> Outcome:
        raise Waiting("PodsStarting", "2/3 pods ready", delay=7)

    with pytest.raises(kopf.TemporaryError) as raised:
        reconciler.run(INFO, _obj(VALID), wait)
    assert raised.value.delay == 7
    conditions = _conditions(kube.patches[-1])
    assert conditions["Reconciling"]["status"] == "True"
    assert conditions["Ready"]["status"] == "False"
    assert "Stalled" not in conditions


def test_unexpected_error_never_crashes_and_hides_details(setup: Any) -> None:
    reconciler, kube, _, metrics = setup

    def boom(kube: Any, obj: Manifest, spec: NamespaceQuotaSpec) -> Outcome:
        raise RuntimeError("password=hunter2")

    with pytest.raises(kopf.TemporaryError):
        reconciler.run(INFO, _obj(VALID), boom)
    ready = _conditions(kube.patches[-1])["Ready"]
    assert ready["reason"] == "ReconcileError"
    assert "hunter2" not in ready["message"]
    assert (
        metrics.registry.get_sample_value("plinth_reconcile_total", {"kind": "NamespaceQuota", "result": "error"}) == 1
    )


def test_steps_see_the_status_last_written_not_a_stale_body(setup: Any) -> None:
    """Child events hand over the owner's body from an index, which may predate our last status write."""
    reconciler, _, _, _ = setup
    seen: list[Any] = []

    def remember(kube: Any, obj: Manifest, spec: NamespaceQuotaSpec) -> Outcome:
        seen.append((obj.get("status") or {}).get("used"))
        return Outcome(
            status={"used": {"pods": str(len(seen))}}, observations=[Observation("Ready", True, "Reconciled", "fine")]
        )

    stale = _obj(VALID)
    reconciler.run(INFO, stale, remember)
    reconciler.run(INFO, stale, remember)  # same stale body, without status
    assert seen == [None, {"pods": "1"}]


def test_resources_gauge_follows_ready_and_forget(setup: Any) -> None:
    reconciler, _, _, metrics = setup

    def gauge(ready: str) -> float | None:
        return metrics.registry.get_sample_value("plinth_resources", {"kind": "NamespaceQuota", "ready": ready})

    def wait(kube: Any, obj: Manifest, spec: NamespaceQuotaSpec) -> Outcome:
        raise Waiting("PodsStarting", "not yet")

    with pytest.raises(kopf.TemporaryError):
        reconciler.run(INFO, _obj(VALID), wait)
    assert (gauge("False"), gauge("True")) == (1, None)
    reconciler.run(INFO, _obj(VALID), _ok)
    reconciler.run(INFO, _obj(VALID), _ok)
    assert (gauge("False"), gauge("True")) == (0, 1)
    reconciler.forget("uid-1")
    assert gauge("True") == 0


def test_a_body_older_than_one_already_reconciled_is_skipped(setup: Any) -> None:
    reconciler, kube, _, _ = setup
    calls: list[int] = []

    def count(kube: Any, obj: Manifest, spec: NamespaceQuotaSpec) -> Outcome:
        calls.append(obj["metadata"]["generation"])
        return _ok(kube, obj, spec)

    reconciler.run(INFO, _obj(VALID, generation=3), count)
    reconciler.run(INFO, _obj(VALID, generation=2), count)  # stale: must not re-apply the older spec
    reconciler.run(INFO, _obj(VALID, generation=3), count)
    assert calls == [3, 3]
    assert kube.patches[-1]["observedGeneration"] == 3


def _sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_lag_is_written_to_status_once_per_generation(setup: Any) -> None:
    reconciler, kube, _, metrics = setup
    reconciler.run(INFO, _obj(VALID), _ok)
    assert kube.patches[-1]["lastReconcileLagSeconds"] >= 0
    assert _sample(metrics, "plinth_reconcile_lag_seconds_count", kind="NamespaceQuota") == 1
    reconciler.run(INFO, _obj(VALID), _ok)  # same generation: no second observation, nothing new to write
    assert len(kube.patches) == 1
    assert _sample(metrics, "plinth_reconcile_lag_seconds_count", kind="NamespaceQuota") == 1
    reconciler.run(INFO, _obj(VALID, generation=2), _ok)
    assert "lastReconcileLagSeconds" in kube.patches[-1]
    assert _sample(metrics, "plinth_reconcile_lag_seconds_count", kind="NamespaceQuota") == 2


def test_queue_lag_is_observed_for_the_event_that_was_stamped(setup: Any) -> None:
    reconciler, _, _, metrics = setup
    obj = _obj(VALID)
    obj["metadata"]["resourceVersion"] = "7"
    reconciler.received("uid-1", "6")  # an older event: not the body being reconciled
    reconciler.run(INFO, obj, _ok)
    assert _sample(metrics, "plinth_queue_lag_seconds_count", kind="NamespaceQuota") == 0
    reconciler.received("uid-1", "7")
    reconciler.run(INFO, obj, _ok)
    reconciler.run(INFO, obj, _ok)  # the stamp is used once
    assert _sample(metrics, "plinth_queue_lag_seconds_count", kind="NamespaceQuota") == 1


def test_requeue_writes_status_then_retries_and_counts_it(setup: Any) -> None:
    reconciler, kube, _, metrics = setup

    def waiting(kube: Any, obj: Manifest, spec: NamespaceQuotaSpec) -> Outcome:
        return Outcome(
            status={"used": {}},
            observations=[Observation("QuotaExceeded", True, "QuotaExceeded", "pods needs 3, allowed 2")],
            requeue_after=30,
        )

    with pytest.raises(kopf.TemporaryError) as raised:
        reconciler.run(INFO, _obj(VALID), waiting)
    assert raised.value.delay == 30
    assert "pods needs 3" in str(raised.value)
    assert _conditions(kube.patches[-1])["Ready"]["status"] == "False"
    assert _sample(metrics, "plinth_reconcile_retries_total", kind="NamespaceQuota", reason="QuotaExceeded") == 1
    # A policy denial is counted when it starts, not on every retry while it lasts.
    with pytest.raises(kopf.TemporaryError):
        reconciler.run(INFO, _obj(VALID), waiting)
    assert _sample(metrics, "plinth_policy_denials_total", kind="NamespaceQuota", reason="QuotaExceeded") == 1


def test_stalled_keeps_the_status_fields_the_step_already_knew(setup: Any) -> None:
    reconciler, kube, _, metrics = setup

    def refused(kube: Any, obj: Manifest, spec: NamespaceQuotaSpec) -> Outcome:
        raise Stalled("SecretCopyRefused", "Secret x/y may not be copied", status={"summary": "known"})

    with pytest.raises(kopf.PermanentError):
        reconciler.run(INFO, _obj(VALID), refused)
    assert kube.patches[-1]["summary"] == "known"
    assert _conditions(kube.patches[-1])["Stalled"]["reason"] == "SecretCopyRefused"
    assert _sample(metrics, "plinth_policy_denials_total", kind="NamespaceQuota", reason="SecretCopyRefused") == 1


def test_ready_keeps_the_reason_the_step_gave(setup: Any) -> None:
    reconciler, kube, _, _ = setup

    def asleep(kube: Any, obj: Manifest, spec: NamespaceQuotaSpec) -> Outcome:
        return Outcome(observations=[Observation("Ready", True, "Asleep", "scaled to zero")])

    reconciler.run(INFO, _obj(VALID), asleep)
    ready = _conditions(kube.patches[-1])["Ready"]
    assert (ready["status"], ready["reason"], ready["message"]) == ("True", "Asleep", "scaled to zero")


def test_child_events_coalesce_into_one_queued_reconcile(setup: Any) -> None:
    """Events that arrive while a reconcile of the owner waits for a thread add nothing; one that arrives after it
    started (it may have read the children already) queues the next. Queuing never waits for the reconcile."""
    reconciler, _, _, _ = setup
    runs: list[int] = []
    release = threading.Event()

    def counted(kube: Any, obj: Manifest, spec: NamespaceQuotaSpec) -> Outcome:
        runs.append(1)
        return _ok(kube, obj, spec)

    with ThreadPoolExecutor(max_workers=1) as executor:
        busy = executor.submit(release.wait)  # the only thread is taken: reconciles queue
        queued = [reconciler.run_soon(INFO, _obj(VALID), counted, executor) for _ in range(5)]
        assert queued[0] is not None and queued[1:] == [None] * 4  # returned at once; four coalesced
        assert reconciler.queued("uid-1")  # the schedule sees it queued
        release.set()
        busy.result(timeout=30)
        queued[0].result(timeout=30)
        assert len(runs) == 1
        again = reconciler.run_soon(INFO, _obj(VALID), counted, executor)
        assert again is not None
        again.result(timeout=30)
        assert len(runs) == 2


def test_a_queued_reconcile_that_fails_unexpectedly_is_logged_and_unmarked(
    setup: Any, caplog: pytest.LogCaptureFixture
) -> None:
    reconciler, _, _, _ = setup

    def broken_status(*_: Any, **__: Any) -> None:
        raise RuntimeError("boom")

    reconciler.run_quietly = broken_status  # type: ignore[method-assign]  # nothing awaits a queued reconcile
    with ThreadPoolExecutor(max_workers=1) as executor:
        future = reconciler.run_soon(INFO, _obj(VALID), _ok, executor)
        assert future is not None
        with pytest.raises(RuntimeError):
            future.result(timeout=30)
    assert "queued reconcile failed" in caplog.text
    executor_gone = ThreadPoolExecutor(max_workers=1)
    executor_gone.shutdown()
    assert reconciler.run_soon(INFO, _obj(VALID), _ok, executor_gone) is None  # stopping: nothing queued
    assert not reconciler.queued("uid-1")


def test_the_finish_of_each_reconcile_is_kept_until_the_object_is_forgotten(setup: Any) -> None:
    """The schedule counts an object's idle time from it (resyncs and retries stand aside for recent work)."""
    reconciler, _, _, _ = setup
    assert reconciler.finished_at("uid-1") is None
    before = time.monotonic()
    reconciler.run(INFO, _obj(VALID), _ok)
    finished = reconciler.finished_at("uid-1")
    assert finished is not None and before <= finished <= time.monotonic()
    reconciler.forget("uid-1")
    assert reconciler.finished_at("uid-1") is None


def test_stopping_cancels_the_queued_reconciles_that_have_not_started(setup: Any) -> None:
    """Otherwise the executor runs every queued reconcile before the process can exit."""
    reconciler, _, _, _ = setup
    release = threading.Event()
    runs: list[str] = []

    def counted(kube: Any, obj: Manifest, spec: NamespaceQuotaSpec) -> Outcome:
        runs.append(obj["metadata"]["uid"])
        return _ok(kube, obj, spec)

    with ThreadPoolExecutor(max_workers=1) as executor:
        busy = executor.submit(release.wait)
        queued = []
        for i in range(3):
            obj = _obj(VALID)
            obj["metadata"]["uid"] = f"uid-{i}"
            queued.append(reconciler.run_soon(INFO, obj, counted, executor))
        assert reconciler.cancel_queued() == 3
        release.set()
        busy.result(timeout=30)
    assert runs == []
    assert all(f is not None and f.cancelled() for f in queued)
    assert not any(reconciler.queued(f"uid-{i}") for i in range(3))  # no owner is left marked queued
    assert reconciler.cancel_queued() == 0
