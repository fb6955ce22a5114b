"""Reconciles that no event asks for (resync, retries of objects not Ready, canary gates, sleep and expiry), queued by
one loop over Plinth's indexes (index.py).

Not kopf timers: kopf runs one asyncio task per object and timer, and for every object of a kind with any timer it keeps
the object's whole latest body (managedFields and kubectl's last-applied copy included) for as long as the object
exists, the largest share of the memory at scale. Here each object costs its index entry (``Indexed``: the body without
what no reconcile reads, and its ``Timing`` worked out once per event), and one pass over all of them every
``TICK_SECONDS`` decides what is due.

Resyncs (drift of children the operator does not watch: Services, Secrets, Ingresses...) are spread by a budget of
``resync_per_second``, oldest first: over N objects each is resynced every max(resync_seconds, N / resync_per_second)
seconds, and a burst of N creations is not followed by N resyncs at once five minutes later."""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from plinth.operator.api.v1alpha1 import KindInfo
from plinth.operator.index import Index, Indexed, Timing
from plinth.operator.peering import Peering
from plinth.operator.reconcile import Latest, Steps

if TYPE_CHECKING:  # services names the Scheduler in turn
    from plinth.operator.services import Services

log = logging.getLogger("plinth.schedule")
# How often the loop looks at every object: the resolution of every time-based reconcile below.
TICK_SECONDS = 2.0
# A wall-clock moment (sleep, expiry) that has passed is acted on at most this often: if its reconcile did not move
# it (it failed, or is waiting for something), retrying at every tick would only add load.
AT_SPACING_SECONDS = 5.0
# An object waiting to become Ready is retried every Timing.every at first, then every WAITING_GROWTH times the time it
# has waited, at most every WAITING_MAX_SECONDS. Most waits end with a child's event (a Deployment becoming ready, a
# quota granted), which reconciles the object anyway; the retries are for what no watched event shows (a crash loop,
# a failed reconcile). In a large burst, fixed retries of every object still waiting for its Pods would add a steady
# load of reconciles that find nothing new.
WAITING_GROWTH = 0.5
WAITING_MAX_SECONDS = 120.0


def retry_interval(timing: Timing, waited: float) -> float | None:
    """Seconds between the reconciles *timing* asks for, for an object that has waited *waited* seconds so far."""
    if timing.every is None or not timing.waiting:
        return timing.every
    return max(timing.every, min(WAITING_MAX_SECONDS, waited * WAITING_GROWTH))


@dataclass(frozen=True)
class ScheduledKind:
    """A kind the loop looks after: its index and how to reconcile it."""

    info: KindInfo
    index: Index
    steps: Callable[[Services], Steps]
    """The kind's reconcile steps, given the operator's services (they take what workloads get from the
    configuration)."""

    def reconcile_soon(self, services: Services, uid: str) -> None:
        """Queue a reconcile of object *uid*, which reads the object from this kind's index when it starts (see
        ``WorkQueue.run_soon``): what every handler and the schedule do, whatever the trigger."""
        services.queue.run_soon(self.info, uid, self.index.latest, self.steps(services), services.executor)


class Queue(Protocol):
    """What the loop needs of ``workqueue.WorkQueue``."""

    def finished_at(self, uid: str) -> float | None: ...

    def queued(self, uid: str) -> bool: ...

    def run_soon(self, info: KindInfo, uid: str, latest: Latest, steps: Steps, executor: Executor) -> Any: ...


class Scheduler:
    """Decides, at each tick, which objects get a reconcile no event asked for. Time is ``time.monotonic`` except
    ``Timing.at`` (wall clock, as it comes from timestamps in the status)."""

    def __init__(
        self,
        queue: Queue,
        *,
        resync_seconds: float,
        resync_per_second: float,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.queue = queue
        self.resync_seconds = resync_seconds
        self.resync_per_second = resync_per_second
        self._clock, self._wall_clock = clock, wall_clock
        # Per object: when the loop first saw it or last queued it (whichever is later). Before its first reconcile,
        # that stands in for one: a restarted operator's resume handlers reconcile every object anyway.
        self._touched: dict[str, float] = {}
        # Per object waiting to become Ready (Timing.waiting): since when the loop has seen it wait.
        self._waiting_since: dict[str, float] = {}
        self._budget = 0.0
        self._last_tick: float | None = None

    def due(self, entries: Iterable[tuple[ScheduledKind, Indexed]]) -> list[tuple[ScheduledKind, str]]:
        """The objects (uids) to reconcile now, given every indexed object; marks them touched."""
        now, wall = self._clock(), self._wall_clock()
        elapsed = 0.0 if self._last_tick is None else now - self._last_tick
        self._last_tick = now
        # A budget, not a rate: at most one tick's worth (at least one resync) saved up while nothing was due.
        self._budget = min(
            max(1.0, self.resync_per_second * TICK_SECONDS), self._budget + elapsed * self.resync_per_second
        )
        touched: dict[str, float] = {}
        waiting: dict[str, float] = {}
        due: list[tuple[ScheduledKind, str]] = []
        resyncs: list[tuple[float, str, ScheduledKind]] = []
        for kind, entry in entries:
            uid, timing = entry.uid, entry.timing
            touched[uid] = last = self._touched.get(uid, now)
            if timing.waiting:
                waiting[uid] = self._waiting_since.get(uid, now)
            if entry.deleting or self.queue.queued(uid):
                continue  # deletion is the finalizer's; a queued reconcile is coming anyway
            idle = now - max(last, self.queue.finished_at(uid) or last)
            every = retry_interval(timing, now - waiting.get(uid, now))
            if (every is not None and idle >= every) or (
                timing.at is not None and wall >= timing.at and idle >= AT_SPACING_SECONDS
            ):
                due.append((kind, uid))
            elif idle >= self.resync_seconds:
                resyncs.append((idle, uid, kind))
        take = min(len(resyncs), int(self._budget))
        self._budget -= take
        due.extend((kind, uid) for _, uid, kind in heapq.nlargest(take, resyncs, key=lambda r: r[0]))
        for _, uid in due:
            touched[uid] = now
        self._touched, self._waiting_since = touched, waiting  # objects gone or Ready are forgotten here
        return due

    def pause(self) -> None:
        """Another replica works (kopf paused this one): forget the saved-up budget and every object. Should this
        replica work again, kopf resumes every object (resume handlers), so each counts as seen anew."""
        self._budget, self._last_tick, self._touched, self._waiting_since = 0.0, None, {}, {}

    async def run(
        self,
        kinds: Iterable[ScheduledKind],
        services: Services,
        peering: Callable[[], Peering],
    ) -> None:
        """The loop, on kopf's event loop until cancelled. While *peering* says another replica works, nothing is
        queued and the indexes are emptied: kopf stops the watches, so they would no longer follow the cluster, and
        lists every object again when this replica works again. While it cannot say, nothing is queued and nothing
        forgotten: kopf may well be working on."""
        kinds = tuple(kinds)
        while True:
            await asyncio.sleep(TICK_SECONDS)
            state = peering()
            if state is Peering.STANDING_BY:
                self.pause()
                for kind in kinds:
                    kind.index.clear()
            if state is not Peering.WORKING:
                continue
            try:
                entries = [(kind, entry) for kind in kinds for entry in kind.index]
                for kind, uid in self.due(entries):
                    kind.reconcile_soon(services, uid)
            except Exception:  # the loop must outlive any one bad tick
                log.exception("scheduling failed; trying again at the next tick")
