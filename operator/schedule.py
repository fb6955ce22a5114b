"""Reconciles that no event asks for (resync, retries of objects not Ready, canary gates, sleep and expiry), queued by
one loop over kopf's indexes.

They used to be kopf timers. kopf runs one asyncio task per object and timer, and for every object of a kind with any
timer it keeps the object's whole latest body (managedFields and kubectl's last-applied copy included) for as long as
the object exists: at 5,000 + 5,000 objects about 180 MB of bodies, and 17 timer wake-ups a second on the event loop.
Here each object costs its index entry (``Indexed``: the body without what no reconcile reads, and its ``Timing``
worked out once per event), and one pass over all of them every ``TICK_SECONDS`` decides what is due.

Resyncs (drift of children the operator does not watch: Services, Secrets, Ingresses...) are spread by a budget of
``resync_per_second``, oldest first: over N objects each is resynced every max(resync_seconds, N / resync_per_second)
seconds, and a burst of N creations is not followed by N resyncs at once five minutes later."""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol

from plinth.adapters.kubernetes import Manifest
from plinth.operator.api.v1alpha1 import KindInfo
from plinth.operator.reconcile import Steps
from plinth.operator.settings import DIFFBASE_ANNOTATION

log = logging.getLogger("plinth.schedule")
# How often the loop looks at every object: the resolution of every time-based reconcile below.
TICK_SECONDS = 2.0
# A wall-clock moment (sleep, expiry) that has passed is acted on at most this often: if its reconcile did not move
# it (it failed, or is waiting for something), retrying at every tick would only add load.
AT_SPACING_SECONDS = 5.0
# Copies of a spec, kept by kubectl and by kopf for their own diffs; no reconcile reads them.
UNREAD_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration", DIFFBASE_ANNOTATION})


@dataclass(frozen=True)
class Timing:
    """When an object wants a reconcile without an event, worked out from its body once per event (at indexing)."""

    every: float | None = None
    """Again this many seconds after its latest reconcile: not Ready yet, a canary's health gate, copied Secrets."""
    at: float | None = None
    """At this wall-clock time (epoch seconds): a preview falling asleep or expiring."""


@dataclass(frozen=True)
class Indexed:
    """A kopf index value: the object as its reconcile reads it, and when it wants one without an event."""

    obj: Manifest
    timing: Timing


def slim(body: Mapping[str, Any], *, unread: frozenset[str] = UNREAD_ANNOTATIONS) -> Manifest:
    """*body* without managedFields and the annotations in *unread*: often more than half of an object's size, and
    an index holds its value until the next event. New top-level and metadata dicts, so kopf's raw event body (and
    its managedFields) is freed once kopf is done with it; spec and status are shared, as nothing mutates them."""
    meta = body["metadata"]
    metadata = {k: v for k, v in meta.items() if k not in ("managedFields", "annotations")}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in unread}
    if annotations:
        metadata["annotations"] = annotations
    return {**body, "metadata": metadata}


@dataclass(frozen=True)
class ScheduledKind:
    """A kind the loop looks after: its kopf index (values are ``Indexed``) and how to reconcile it."""

    info: KindInfo
    index: str
    steps: Callable[[Any], Steps]
    """The kind's reconcile steps, given kopf's memo (they take what workloads get from the configuration)."""


class Reconciles(Protocol):
    """What the loop needs of ``reconcile.Reconciler``."""

    def finished_at(self, uid: str) -> float | None: ...

    def queued(self, uid: str) -> bool: ...

    def run_soon(self, info: KindInfo, obj: Manifest, steps: Steps, executor: Executor) -> Any: ...


class Scheduler:
    """Decides, at each tick, which objects get a reconcile no event asked for. Time is ``time.monotonic`` except
    ``Timing.at`` (wall clock, as it comes from timestamps in the status)."""

    def __init__(
        self,
        reconciler: Reconciles,
        *,
        resync_seconds: float,
        resync_per_second: float,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.reconciler = reconciler
        self.resync_seconds = resync_seconds
        self.resync_per_second = resync_per_second
        self._clock, self._wall_clock = clock, wall_clock
        # Per object: when the loop first saw it or last queued it (whichever is later). Before its first reconcile,
        # that stands in for one: a restarted operator's resume handlers reconcile every object anyway.
        self._touched: dict[str, float] = {}
        self._budget = 0.0
        self._last_tick: float | None = None
        self._context: contextvars.Context | None = None

    def adopt_context(self) -> None:
        """Called from a kopf handler: the reconciles this loop queues run in a copy of that handler's context.
        kopf.event (Plinth's Events) needs kopf's posting queue, which kopf sets only in the tasks that handle
        objects, not in the task this loop runs in."""
        if self._context is None:
            self._context = contextvars.copy_context()

    def due(self, entries: Iterable[tuple[ScheduledKind, Indexed]]) -> list[tuple[ScheduledKind, Manifest]]:
        """The objects to reconcile now, given every indexed object; marks them queued."""
        now, wall = self._clock(), self._wall_clock()
        elapsed = 0.0 if self._last_tick is None else now - self._last_tick
        self._last_tick = now
        # A budget, not a rate: at most one tick's worth (at least one resync) saved up while nothing was due.
        self._budget = min(
            max(1.0, self.resync_per_second * TICK_SECONDS), self._budget + elapsed * self.resync_per_second
        )
        touched: dict[str, float] = {}
        due: list[tuple[ScheduledKind, Manifest]] = []
        resyncs: list[tuple[float, str, ScheduledKind, Manifest]] = []
        for kind, entry in entries:
            meta = entry.obj["metadata"]
            uid = meta["uid"]
            touched[uid] = last = self._touched.get(uid, now)
            if meta.get("deletionTimestamp") or self.reconciler.queued(uid):
                continue  # deletion is the finalizer's; a queued reconcile is coming anyway
            idle = now - max(last, self.reconciler.finished_at(uid) or last)
            timing = entry.timing
            if (timing.every is not None and idle >= timing.every) or (
                timing.at is not None and wall >= timing.at and idle >= AT_SPACING_SECONDS
            ):
                due.append((kind, entry.obj))
            elif idle >= self.resync_seconds:
                resyncs.append((idle, uid, kind, entry.obj))
        take = min(len(resyncs), int(self._budget))
        self._budget -= take
        due.extend((kind, obj) for _, _, kind, obj in heapq.nlargest(take, resyncs, key=lambda r: r[0]))
        for _, obj in due:
            touched[obj["metadata"]["uid"]] = now
        self._touched = touched  # objects gone from the indexes are forgotten here
        return due

    def pause(self) -> None:
        """Another replica works (kopf paused this one): forget the saved-up budget and every object. Should this
        replica work again, kopf resumes every object (resume handlers), so each counts as seen anew."""
        self._budget, self._last_tick, self._touched = 0.0, None, {}

    async def run(
        self,
        kinds: Iterable[ScheduledKind],
        indices: Mapping[str, Any],
        memo: Any,
        active: Callable[[], bool],
    ) -> None:
        """The loop, on kopf's event loop until cancelled. *indices* are kopf's (live) indexes by name; while
        *active* says no (a standby replica), nothing is queued: its indexes stop following the cluster."""
        kinds = tuple(kinds)
        while True:
            await asyncio.sleep(TICK_SECONDS)
            if not active():
                self.pause()
                continue
            if self._context is None:
                continue  # no object has been handled yet, so none is due
            try:
                entries = [(kind, entry) for kind in kinds for store in indices[kind.index].values() for entry in store]
                for kind, obj in self.due(entries):
                    self._context.run(self.reconciler.run_soon, kind.info, obj, kind.steps(memo), memo.executor)
            except Exception:  # the loop must outlive any one bad tick
                log.exception("scheduling failed; trying again at the next tick")
