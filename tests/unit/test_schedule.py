"""The operator-wide schedule: which objects get a reconcile no event asked for, and when (schedule.py), what each
kind asks for (``timing``) and when a replica may queue anything at all."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
import pytest
from plinth.operator import schedule
from plinth.operator.api.v1alpha1 import KindInfo, kind_info
from plinth.operator.handlers import lifecycle
from plinth.operator.index import Index, Indexed, Timing
from plinth.operator.peering import Peering
from plinth.operator.reconcile import Latest, Steps
from plinth.operator.reconcilers import modeldeployment as md_kind
from plinth.operator.reconcilers import namespacequota as nq_kind
from plinth.operator.reconcilers import previewenvironment as pe_kind
from plinth.operator.schedule import ScheduledKind, Scheduler
from plinth.operator.settings import Settings

# Stands for kopf's posting queue, which kopf sets only in the tasks that handle objects.
KIND = ScheduledKind(
    kind_info("NamespaceQuota"),
    Index(key=lambda obj: obj["metadata"]["name"], timing=lambda obj: Timing()),
    lambda memo: _no_steps,
)


def _no_steps(*_: Any) -> Any:
    raise AssertionError("the schedule only queues")


class FakeReconciler:
    """The three things the schedule asks of the real Reconciler, recorded."""

    def __init__(self) -> None:
        self.finished: dict[str, float] = {}
        self.waiting: set[str] = set()
        self.queued_objs: list[str] = []
        self.latest: list[Latest] = []
        self.on_queue: Any = None

    def finished_at(self, uid: str) -> float | None:
        return self.finished.get(uid)

    def queued(self, uid: str) -> bool:
        return uid in self.waiting

    def run_soon(self, info: KindInfo, uid: str, latest: Latest, steps: Steps, executor: Executor) -> None:
        self.queued_objs.append(uid)
        self.latest.append(latest)
        if self.on_queue is not None:
            self.on_queue()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


NOTHING = Timing()


def _entry(uid: str, timing: Timing = NOTHING, *, deleting: bool = False) -> tuple[ScheduledKind, Indexed]:
    return KIND, Indexed(uid=uid, key=uid, deleting=deleting, timing=timing, encoded="{}")


def _uids(due: list[tuple[ScheduledKind, str]]) -> list[str]:
    return [uid for _, uid in due]


def _scheduler(reconciler: FakeReconciler, clock: Clock, wall: Clock | None = None, **kwargs: float) -> Scheduler:
    settings = {"resync_seconds": 300.0, "resync_per_second": 5.0, **kwargs}
    return Scheduler(reconciler, clock=clock, wall_clock=wall or Clock(), **settings)  # type: ignore[arg-type]


def test_an_object_is_due_every_so_often_counted_from_its_latest_reconcile() -> None:
    reconciler, clock = FakeReconciler(), Clock()
    scheduler = _scheduler(reconciler, clock)
    entries = [_entry("a", Timing(every=15)), _entry("b")]
    assert scheduler.due(entries) == []  # first seen: its resume handler reconciles it anyway
    clock.now += 14
    assert scheduler.due(entries) == []
    clock.now += 1
    assert _uids(scheduler.due(entries)) == ["a"]  # "b" asks for nothing but a resync
    clock.now += 10
    assert scheduler.due(entries) == []  # queued by us 10 s ago
    reconciler.finished["a"] = clock.now + 3  # a child event's reconcile finished later than that
    clock.now += 15
    assert scheduler.due(entries) == []
    clock.now += 3
    assert _uids(scheduler.due(entries)) == ["a"]


def test_queued_or_deleted_objects_are_left_alone() -> None:
    reconciler, clock = FakeReconciler(), Clock()
    scheduler = _scheduler(reconciler, clock)
    entries = [_entry("a", Timing(every=1)), _entry("b", Timing(every=1), deleting=True)]
    scheduler.due(entries)
    reconciler.waiting.add("a")
    clock.now += 10
    assert scheduler.due(entries) == []
    reconciler.waiting.clear()
    assert _uids(scheduler.due(entries)) == ["a"]


def test_a_moment_that_passed_is_acted_on_then_at_most_every_few_seconds() -> None:
    reconciler, clock, wall = FakeReconciler(), Clock(), Clock()
    scheduler = _scheduler(reconciler, clock, wall)
    entries = [_entry("a", Timing(at=wall.now + 60))]
    scheduler.due(entries)
    clock.now += 59
    wall.now += 59
    assert scheduler.due(entries) == []
    clock.now += 1
    wall.now += 1
    assert _uids(scheduler.due(entries)) == ["a"]
    clock.now += schedule.AT_SPACING_SECONDS - 1
    assert scheduler.due(entries) == []  # its reconcile did not move the moment (it is waiting): not every tick
    clock.now += 1
    assert _uids(scheduler.due(entries)) == ["a"]


def test_an_object_waiting_to_be_ready_is_retried_less_often_the_longer_it_waits() -> None:
    """Retries fill in for what no watched event shows; most waits end with a child's event anyway."""
    reconciler, clock = FakeReconciler(), Clock()
    scheduler = _scheduler(reconciler, clock)
    waiting = [_entry("a", Timing(every=15, waiting=True)), _entry("periodic", Timing(every=15))]
    retried: dict[str, list[float]] = {"a": [], "periodic": []}
    start = clock.now
    scheduler.due(waiting)
    while clock.now - start < 900:
        clock.now += schedule.TICK_SECONDS
        for uid in _uids(scheduler.due(waiting)):
            retried[uid].append(clock.now - start)
    gaps = [b - a for a, b in zip(retried["a"], retried["a"][1:], strict=False)]
    assert retried["a"][:2] == [16, 32]  # every 15 s (at the next tick) while it has waited up to 30 s
    assert gaps == sorted(gaps) and gaps[-1] == schedule.WAITING_MAX_SECONDS  # growing, up to the cap
    assert len(retried["a"]) < len(retried["periodic"]) / 3  # a canary's gate or copied Secrets keep their pace
    assert schedule.retry_interval(Timing(every=15, waiting=True), waited=100) == 50
    assert schedule.retry_interval(Timing(), waited=100) is None
    ready = [_entry("a"), waiting[1]]
    scheduler.due(ready)  # Ready for a moment: forgotten as waiting
    clock.now += 15
    assert _uids(scheduler.due(waiting)) == ["a", "periodic"]  # waits anew: every 15 s again
    clock.now += 16
    assert _uids(scheduler.due(waiting)) == ["a", "periodic"]


def test_resyncs_are_spread_by_the_budget_oldest_first() -> None:
    """1,000 objects created in one burst are not all resynced at once five minutes later: at most
    resync_per_second, oldest first, so each is resynced every max(resync_seconds, N / resync_per_second)."""
    reconciler, clock = FakeReconciler(), Clock()
    scheduler = _scheduler(reconciler, clock, resync_seconds=300, resync_per_second=5)
    entries = [_entry(f"o{i:04d}") for i in range(1000)]
    scheduler.due(entries)
    for i in range(1000):
        reconciler.finished[f"o{i:04d}"] = clock.now + i * 0.01  # the burst finished over 10 s, in index order
    clock.now += 299
    assert scheduler.due(entries) == []
    resynced: list[str] = []
    ticks = 0
    while len(resynced) < 1000 and ticks < 1000:
        clock.now += schedule.TICK_SECONDS
        ticks += 1
        batch = _uids(scheduler.due(entries))
        assert len(batch) <= 5 * schedule.TICK_SECONDS
        resynced.extend(batch)
    assert ticks * schedule.TICK_SECONDS == 1000 / 5  # N / resync_per_second
    assert resynced == [f"o{i:04d}" for i in range(1000)]  # oldest first, everyone once


def test_a_paused_replica_saves_no_budget_and_objects_gone_are_forgotten() -> None:
    reconciler, clock = FakeReconciler(), Clock()
    scheduler = _scheduler(reconciler, clock, resync_seconds=10, resync_per_second=1)
    entries = [_entry(f"o{i}") for i in range(20)]
    scheduler.due(entries)
    scheduler.pause()
    clock.now += 3600
    assert scheduler.due(entries) == []  # after a pause: no budget saved up
    clock.now += 100
    assert len(scheduler.due(entries)) == max(1, int(1 * schedule.TICK_SECONDS))  # capped at one tick's worth
    assert scheduler.due([]) == []
    clock.now += 100
    assert scheduler.due(entries) == []  # seen again: counts as new


def test_after_a_pause_every_object_counts_as_seen_anew() -> None:
    """kopf resumes every object when a paused replica works again: the loop adds nothing at that moment."""
    reconciler, clock = FakeReconciler(), Clock()
    scheduler = _scheduler(reconciler, clock)
    waiting = [_entry("waiting", Timing(every=15))]
    scheduler.due(waiting)
    scheduler.pause()
    clock.now += 3600
    assert scheduler.due(waiting) == []
    clock.now += 15
    assert _uids(scheduler.due(waiting)) == ["waiting"]


def _ready(generation: int = 1) -> dict[str, Any]:
    return {"conditions": [{"type": "Ready", "status": "True", "observedGeneration": generation}]}


def _preview(spec: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    base = {"source": {"repository": "github.com/a/b", "pullRequest": 1, "commit": "a" * 40}, "team": "t", "ttl": "2h"}
    base["services"] = [{"name": "web", "image": "web:1"}]
    return {"metadata": {"generation": 1}, "spec": {**base, **spec}, "status": status}


def test_preview_timing() -> None:
    updated = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    lifecycle_status = {
        "lastUpdate": {"time": updated.isoformat()},
        "expiresAt": (updated + timedelta(hours=2)).isoformat(),
    }
    ready = _preview({}, {**_ready(), **lifecycle_status})
    assert pe_kind.timing(ready) == Timing(at=(updated + timedelta(hours=2)).timestamp())
    sleepy = _preview({"sleepAfter": "30m"}, {**_ready(), **lifecycle_status})
    assert pe_kind.timing(sleepy).at == (updated + timedelta(minutes=30)).timestamp()
    copies = _preview({"secrets": [{"copyFrom": {"namespace": "ci", "name": "token"}}]}, _ready())
    assert pe_kind.timing(copies) == Timing(every=pe_kind.TICK_SECONDS)
    waiting = Timing(every=pe_kind.TICK_SECONDS, waiting=True)
    assert pe_kind.timing(_preview({}, {})) == waiting  # not Ready yet
    assert pe_kind.timing(_preview({}, _ready(generation=0))) == waiting  # Ready at an older generation
    assert pe_kind.timing(_preview({"ttl": "forever"}, {})) == Timing()  # Stalled until the user edits it


def test_model_and_quota_timing() -> None:
    ready = {"metadata": {"generation": 1}, "spec": {}, "status": _ready()}
    assert md_kind.timing(ready) == Timing()
    assert md_kind.timing({**ready, "status": {}}) == Timing(every=15, waiting=True)
    canary = {**ready, "spec": {"canary": {"weight": 10}}}
    assert md_kind.timing(canary) == Timing(every=md_kind.CANARY_SECONDS)
    assert nq_kind.timing(ready) == Timing()
    assert nq_kind.timing({**ready, "metadata": {"generation": 2}}) == Timing(every=15, waiting=True)


def test_every_kind_is_scheduled_and_kopf_keeps_no_index() -> None:
    """A kopf index would make every object's handlers wait until every indexed object is listed, with work growing
    with the square of the objects (index.py): Plinth keeps its indexes itself."""
    registry = kopf.get_default_registry()
    assert registry._indexing.get_all_handlers() == []  # kopf has no public list
    assert {kind.info.kind for kind in lifecycle.SCHEDULED} == {
        "PreviewEnvironment",
        "ModelDeployment",
        "NamespaceQuota",
    }


def _change_handlers(kind: ScheduledKind) -> list[Any]:
    """kopf's handlers for the kind's own changes (not its deletion): created, spec updated, resumed."""
    registry = kopf.get_default_registry()
    return [
        h
        for h in registry._changing.get_all_handlers()  # kopf has no public list
        if h.selector is not None and h.selector.any_name == kind.info.plural and h.reason != kopf.Reason.DELETE
    ]


@pytest.mark.parametrize("kind", lifecycle.SCHEDULED, ids=lambda kind: kind.info.kind)
def test_every_change_queues_the_objects_reconcile_and_returns(kind: ScheduledKind) -> None:
    """A sync handler held kopf's worker, with the object's whole body, until an executor thread was free: over a
    restart of thousands of objects (resume), or in a burst of creations, most of the memory peak. Each handler
    queues the object by uid instead; the reconcile reads the index when it starts."""
    handlers = _change_handlers(kind)
    assert sorted(str(h.reason) for h in handlers) == sorted(["None", str(kopf.Reason.CREATE), str(kopf.Reason.UPDATE)])
    assert [h.field for h in handlers if h.reason == kopf.Reason.UPDATE] == [("spec",)]
    meta = {"uid": "u-change", "name": "r", "namespace": "ns", "managedFields": [{"manager": "kubectl"}]}
    body = {"metadata": meta, "spec": {"source": {"pullRequest": 7}}}  # what every kind's index key reads
    kind.index.put(body)
    try:
        for handler in handlers:
            assert asyncio.iscoroutinefunction(handler.fn)
            reconciler = FakeReconciler()
            memo = kopf.Memo(queue=reconciler, executor=None, telemetry=None, settings=Settings())
            asyncio.run(handler.fn(body=kopf.Body(body), memo=memo))
            assert reconciler.queued_objs == ["u-change"]
            assert reconciler.latest == [kind.index.latest]
    finally:
        kind.index.drop("u-change")


def test_the_loop_queues_only_while_working(monkeypatch: pytest.MonkeyPatch) -> None:
    """A standby replica's indexes are emptied (its watches stop; kopf lists everything again when it resumes);
    while peering is unknown, nothing is queued and nothing forgotten (kopf may be working on)."""
    monkeypatch.setattr(schedule, "TICK_SECONDS", 0.01)
    reconciler = FakeReconciler()
    scheduler = Scheduler(reconciler, resync_seconds=300, resync_per_second=5)
    index = Index(key=lambda obj: obj["metadata"]["name"], timing=lambda obj: Timing(every=0.0))
    kind = ScheduledKind(KIND.info, index, KIND.steps)
    listed = {"metadata": {"uid": "a", "name": "a"}}
    index.put(listed)  # listed before peering paused this replica
    asked: list[Peering] = []
    sizes: list[int] = []
    states = [Peering.UNKNOWN] * 3 + [Peering.STANDING_BY] * 3

    def peering() -> Peering:
        sizes.append(len(index))
        asked.append(states[len(asked)] if len(asked) < len(states) else Peering.WORKING)
        if asked[-1] is Peering.WORKING and not index:
            index.put(listed)  # kopf's listing as it resumes
        return asked[-1]

    async def main() -> None:
        queued = asyncio.Event()
        reconciler.on_queue = queued.set

        services = kopf.Memo(queue=reconciler, executor=None)
        loop = asyncio.create_task(scheduler.run([kind], services, peering))
        await asyncio.wait_for(queued.wait(), timeout=30)
        loop.cancel()

    asyncio.run(main())
    assert set(reconciler.queued_objs) == {"a"}
    assert asked[:7] == [*states, Peering.WORKING]  # nothing was queued before
    assert sizes[:7] == [1, 1, 1, 1, 0, 0, 0]  # kept while unknown, emptied at the first tick as a standby


def test_resync_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="PLINTH_RESYNC_PER_SECOND"):
        Settings(resync_per_second=0)
