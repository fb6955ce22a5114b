"""The reconcile wrapper: the error ladder, status writes, events on change only, metrics — without a cluster.

The adapter is replaced by a tiny in-memory recorder of status patches: this tests the wrapper's logic, not the
Kubernetes API (the integration tests do that against the real API server).
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from plinth.adapters.kubernetes import Manifest, Refused
from plinth.operator.api.v1alpha1 import NamespaceQuotaSpec, kind_info
from plinth.operator.blockers import Blocker
from plinth.operator.conditions import Observation
from plinth.operator.errors import Stalled, Waiting
from plinth.operator.metrics import Metrics
from plinth.operator.reconcile import REFUSED_RECHECK_SECONDS, Reconciler
from plinth.operator.reconcilers import Outcome
from plinth.operator.workqueue import WorkQueue

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


def test_one_event_per_change_of_the_blocking_child(setup: Any) -> None:
    reconciler, kube, events, _ = setup

    def blocked_by(found: Blocker) -> Any:
        def step(kube: Any, obj: Manifest, spec: NamespaceQuotaSpec) -> Outcome:
            waiting = Observation("Reconciling", True, "RolloutInProgress", "0/1")
            return Outcome(observations=[waiting], blocker=found)

        return step

    pulling = Blocker("Pod", "web-1", "ImagePullBackOff", 'Back-off pulling image "x"', "2026-01-01T00:00:00Z")
    for _ in range(3):  # the same blocker on every resync: one Event
        reconciler.run(INFO, _obj(VALID), blocked_by(pulling))
    assert kube.patches[-1]["blockedBy"] == {
        "kind": "Pod",
        "name": "web-1",
        "reason": "ImagePullBackOff",
        "message": 'Back-off pulling image "x"',
        "since": "2026-01-01T00:00:00Z",
    }
    starting = Blocker("Pod", "web-1", "ContainerCreating", "container web is being created")
    reconciler.run(INFO, _obj(VALID), blocked_by(starting))
    assert [t for t, r, _ in events if r == "ContainerCreating"] == ["Normal"], "progress needs nobody's attention"
    refused = Blocker("Deployment", "web", "FailedCreate", "exceeded quota: plinth-quota")
    reconciler.run(INFO, _obj(VALID), blocked_by(refused))
    reconciler.run(INFO, _obj(VALID), _ok)
    assert kube.patches[-1]["blockedBy"] is None  # removed by the merge patch
    said = [(t, r, m) for t, r, m in events if r in ("ImagePullBackOff", "FailedCreate", "Unblocked")]
    assert said == [
        (
            "Warning",
            "ImagePullBackOff",
            'blocked by Pod web-1: ImagePullBackOff: Back-off pulling image "x" (since '
            "2026-01-01T00:00:00Z): check the image name and tag, and that the node may pull it (imagePullSecrets)",
        ),
        (
            "Warning",
            "FailedCreate",
            "blocked by Deployment web: FailedCreate: exceeded quota: plinth-quota: the "
            "namespace's ResourceQuota or LimitRange refuses the Pod: set resources or the quota",
        ),
        ("Normal", "Unblocked", "Deployment web no longer blocks (was FailedCreate)"),
    ]


def test_invalid_spec_stalls_without_echoing_values(setup: Any) -> None:
    reconciler, kube, events, _ = setup
    secretish = "hunter2-not-a-quantity"
    assert (
        reconciler.run(
            INFO, _obj({"namespaces": ["a"], "perNamespace": {"hard": {"pods": secretish}}}), _ok
        ).requeue_after
        is None
    )  # until the object changes
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

    assert reconciler.run(INFO, _obj(VALID), refuse).requeue_after is None  # until the object changes
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

    assert reconciler.run(INFO, _obj(VALID), wait).requeue_after == 7
    conditions = _conditions(kube.patches[-1])
    assert conditions["Reconciling"]["status"] == "True"
    assert conditions["Ready"]["status"] == "False"
    assert "Stalled" not in conditions


def test_a_child_the_api_server_refuses_stalls_the_owner_in_its_words_and_is_retried(setup: Any) -> None:
    reconciler, kube, events, _ = setup
    message = 'LimitRange "plinth-limits" is invalid: spec.limits[0].defaultRequest[cpu]: must be <= default'

    def refused(kube: Any, obj: Manifest, spec: NamespaceQuotaSpec) -> Outcome:
        raise Refused("LimitRange", "team-a", "plinth-limits", "Invalid", message)

    retried = reconciler.run(INFO, _obj(VALID), refused).requeue_after
    assert retried == REFUSED_RECHECK_SECONDS, "a policy can change without the owner changing"
    conditions = _conditions(kube.patches[-1])
    assert (conditions["Stalled"]["status"], conditions["Stalled"]["reason"]) == ("True", "Invalid")
    assert conditions["Stalled"]["message"].startswith(f"LimitRange plinth-limits: Invalid: {message}: ")
    assert conditions["Ready"]["status"] == "False"
    assert kube.patches[-1]["blockedBy"] == {
        "kind": "LimitRange",
        "name": "plinth-limits",
        "reason": "Invalid",
        "message": message,
    }
    assert [r for _, r, _ in events if r == "Invalid"] == ["Invalid"], "one Event, the blocker's"


def test_unexpected_error_never_crashes_and_hides_details(setup: Any) -> None:
    reconciler, kube, _, metrics = setup

    def boom(kube: Any, obj: Manifest, spec: NamespaceQuotaSpec) -> Outcome:
        raise RuntimeError("password=hunter2")

    assert reconciler.run(INFO, _obj(VALID), boom).requeue_after is not None
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

    assert reconciler.run(INFO, _obj(VALID), wait).requeue_after is not None
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

    assert reconciler.run(INFO, _obj(VALID), waiting).requeue_after == 30
    assert "pods needs 3" in _conditions(kube.patches[-1])["Ready"]["message"]
    assert _conditions(kube.patches[-1])["Ready"]["status"] == "False"
    assert _sample(metrics, "plinth_reconcile_retries_total", kind="NamespaceQuota", reason="QuotaExceeded") == 1
    # A policy denial is counted when it starts, not on every retry while it lasts.
    assert reconciler.run(INFO, _obj(VALID), waiting).requeue_after is not None
    assert _sample(metrics, "plinth_policy_denials_total", kind="NamespaceQuota", reason="QuotaExceeded") == 1


def test_stalled_keeps_the_status_fields_the_step_already_knew(setup: Any) -> None:
    reconciler, kube, _, metrics = setup

    def refused(kube: Any, obj: Manifest, spec: NamespaceQuotaSpec) -> Outcome:
        raise Stalled("SecretCopyRefused", "Secret x/y may not be copied", status={"summary": "known"})

    assert reconciler.run(INFO, _obj(VALID), refused).requeue_after is None  # until the object changes
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


def test_events_coalesce_into_one_queued_reconcile_which_reads_the_latest_body(setup: Any) -> None:
    """Events that arrive while a reconcile of the object waits for a thread add nothing, a spec change included: the
    reconcile reads the object's latest body when it starts. One that arrives after it started (it may have read
    past it) queues the next. Queuing never waits for the reconcile."""
    reconciler, _, _, _ = setup
    queue = WorkQueue(reconciler)
    generations: list[int] = []
    bodies = {"uid-1": _obj(VALID)}
    release = threading.Event()

    def counted(kube: Any, obj: Manifest, spec: NamespaceQuotaSpec) -> Outcome:
        generations.append(obj["metadata"]["generation"])
        return _ok(kube, obj, spec)

    with ThreadPoolExecutor(max_workers=1) as executor:
        busy = executor.submit(release.wait)  # the only thread is taken: reconciles queue
        queued = [queue.run_soon(INFO, "uid-1", bodies.get, counted, executor) for _ in range(5)]
        assert queued[0] is not None and queued[1:] == [None] * 4  # returned at once; four coalesced
        assert queue.queued("uid-1")  # the schedule sees it queued
        bodies["uid-1"] = _obj(VALID, generation=2)  # the spec changed while it waited
        assert queue.run_soon(INFO, "uid-1", bodies.get, counted, executor) is None
        release.set()
        busy.result(timeout=30)
        assert queued[0].result(timeout=30) is None  # asks for no retry
        assert generations == [2]
        again = queue.run_soon(INFO, "uid-1", bodies.get, counted, executor)
        assert again is not None
        again.result(timeout=30)
        assert generations == [2, 2]
        deleting = _obj(VALID, generation=3)
        deleting["metadata"]["deletionTimestamp"] = "2026-11-30T00:00:00Z"
        bodies["uid-1"] = deleting  # being deleted: the finalizer's or the garbage collector's, not a reconcile's
        queued_then_deleted = queue.run_soon(INFO, "uid-1", bodies.get, counted, executor)
        assert queued_then_deleted is not None and queued_then_deleted.result(timeout=30) is None
        del bodies["uid-1"]  # deleted: a reconcile queued meanwhile finds nothing to do
        gone = queue.run_soon(INFO, "uid-1", bodies.get, counted, executor)
        assert gone is not None and gone.result(timeout=30) is None
        assert generations == [2, 2] and not queue.queued("uid-1")


class _Cause(dict[str, Any]):
    """Stands for kopf's cause (a dict subclass, so a weak reference can tell whether anything keeps it)."""


CAUSE: contextvars.ContextVar[_Cause] = contextvars.ContextVar("cause")


def test_queued_reconciles_keep_nothing_of_their_callers_context(setup: Any) -> None:
    """A kopf handler's context holds kopf's cause (the event's whole body, its diff, its patch): a queued reconcile
    must not keep its caller's, or thousands of queued reconciles keep thousands of bodies."""
    reconciler, _, _, _ = setup
    queue = WorkQueue(reconciler)
    bodies = {"uid-1": _obj(VALID), "uid-2": {**_obj(VALID), "metadata": {"name": "q2", "uid": "uid-2"}}}
    seen: list[str | None] = []
    release = threading.Event()

    def steps(kube: Any, obj: Manifest, spec: NamespaceQuotaSpec) -> Outcome:
        cause = CAUSE.get(None)
        seen.append(cause and cause["name"])
        return _ok(kube, obj, spec)

    def handler(uid: str, executor: ThreadPoolExecutor) -> Any:
        CAUSE.set(_Cause(name=f"cause of {uid}", body="x" * 10_000))
        return queue.run_soon(INFO, uid, bodies.get, steps, executor)

    with ThreadPoolExecutor(max_workers=1) as executor:
        busy = executor.submit(release.wait)
        try:
            queued, causes = [], []
            for uid in bodies:
                context = contextvars.Context()
                queued.append(context.run(handler, uid, executor))
                causes.append(weakref.ref(context[CAUSE]))
                del context
            gc.collect()
            assert [cause() for cause in causes] == [None, None]  # queued, and both handlers' causes are gone
        finally:
            release.set()
        busy.result(timeout=30)
        for future in queued:
            assert future is not None
            future.result(timeout=30)
    assert seen == [None, None]


def test_a_queued_reconcile_that_asks_for_a_retry_is_queued_again_after_its_delay(setup: Any) -> None:
    """kopf no longer retries (its handlers only queue): a Waiting step (a namespace still terminating, a quota
    being rebalanced) is queued again after the delay it gives, on the loop that queued it."""
    reconciler, kube, _, _ = setup
    queue = WorkQueue(reconciler)
    runs: list[float] = []
    bodies = {"uid-1": _obj(VALID)}
    retried: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def waits_once(kube: Any, obj: Manifest, spec: NamespaceQuotaSpec) -> Outcome:
        runs.append(time.monotonic())
        if len(runs) == 1:
            raise Waiting("NamespaceTerminating", "namespace a is still being deleted", 0.2)
        loop, event = retried[0]
        loop.call_soon_threadsafe(event.set)
        return _ok(kube, obj, spec)

    async def main(executor: ThreadPoolExecutor) -> None:
        retried.append((asyncio.get_running_loop(), asyncio.Event()))
        first = queue.run_soon(INFO, "uid-1", bodies.get, waits_once, executor)
        assert first is not None
        assert await asyncio.wrap_future(first) == 0.2
        await retried[0][1].wait()  # queued again by a timer on this loop

    with ThreadPoolExecutor(max_workers=1) as executor:
        asyncio.run(asyncio.wait_for(main(executor), timeout=30))
    assert runs[1] - runs[0] >= 0.2
    assert _conditions(kube.patches[-1])["Ready"]["status"] == "True"


def test_the_status_written_is_kept_only_until_the_watch_shows_it(setup: Any) -> None:
    """A reconcile queued right after a status write may read the index before the watch delivered that write: it
    reads what this process wrote instead. Once an event shows the write, the index has it and the copy goes."""
    reconciler, kube, events, _ = setup
    stale = _obj(VALID)
    reconciler.run(INFO, stale, _ok)
    written = kube.patches[-1]
    reconciler.received("uid-1", "8", {"observedGeneration": 0})  # an event from before the write
    reconciler.run(INFO, stale, _ok)  # the index still holds the stale body: nothing to write again
    assert len(kube.patches) == 1 and len(events) == 1
    reconciler.received("uid-1", "9", written)  # the watch shows the write
    assert reconciler._written == {}
    reconciler.run(INFO, {**stale, "status": written}, _ok)
    assert len(kube.patches) == 1 and len(events) == 1


def test_a_queued_reconcile_that_fails_unexpectedly_is_logged_and_unmarked(
    setup: Any, caplog: pytest.LogCaptureFixture
) -> None:
    reconciler, _, _, _ = setup
    queue = WorkQueue(reconciler)

    def broken_lookup(uid: str) -> Manifest | None:
        raise RuntimeError("boom")

    with ThreadPoolExecutor(max_workers=1) as executor:
        future = queue.run_soon(INFO, "uid-1", broken_lookup, _ok, executor)
        assert future is not None
        with pytest.raises(RuntimeError):
            future.result(timeout=30)
    assert "queued reconcile failed" in caplog.text
    assert not queue.queued("uid-1")
    executor_gone = ThreadPoolExecutor(max_workers=1)
    executor_gone.shutdown()
    assert queue.run_soon(INFO, "uid-1", {}.get, _ok, executor_gone) is None  # stopping: nothing queued
    assert not queue.queued("uid-1")


def test_the_finish_of_each_reconcile_is_kept_until_the_object_is_forgotten(setup: Any) -> None:
    """The schedule counts an object's idle time from it (resyncs and retries stand aside for recent work)."""
    reconciler, _, _, _ = setup
    queue = WorkQueue(reconciler)
    assert queue.finished_at("uid-1") is None
    before = time.monotonic()
    with ThreadPoolExecutor(max_workers=1) as executor:
        future = queue.run_soon(INFO, "uid-1", {"uid-1": _obj(VALID)}.get, _ok, executor)
        assert future is not None
        future.result(timeout=10)
    finished = queue.finished_at("uid-1")
    assert finished is not None and before <= finished <= time.monotonic()
    queue.forget("uid-1")
    assert queue.finished_at("uid-1") is None


def test_stopping_cancels_the_queued_reconciles_that_have_not_started(setup: Any) -> None:
    """Otherwise the executor runs every queued reconcile before the process can exit."""
    reconciler, _, _, _ = setup
    queue = WorkQueue(reconciler)
    release = threading.Event()
    runs: list[str] = []

    def counted(kube: Any, obj: Manifest, spec: NamespaceQuotaSpec) -> Outcome:
        runs.append(obj["metadata"]["uid"])
        return _ok(kube, obj, spec)

    with ThreadPoolExecutor(max_workers=1) as executor:
        busy = executor.submit(release.wait)
        bodies = {}
        for i in range(3):
            bodies[f"uid-{i}"] = _obj(VALID)
            bodies[f"uid-{i}"]["metadata"]["uid"] = f"uid-{i}"
        queued = [queue.run_soon(INFO, uid, bodies.get, counted, executor) for uid in bodies]
        assert queue.cancel_queued() == 3
        release.set()
        busy.result(timeout=30)
    assert runs == []
    assert all(f is not None and f.cancelled() for f in queued)
    assert not any(queue.queued(f"uid-{i}") for i in range(3))  # no owner is left marked queued
    assert queue.cancel_queued() == 0
