"""The work queue in front of the reconcile wrapper: at most one queued reconcile per object, whatever asks for it.

Every trigger (an object's own events, its children's, the kubelets' Warnings about its Pods, the schedule) calls
``run_soon``, on kopf's event loop, and returns at once; the reconcile runs in an executor thread and reads the
object's latest body when it starts. A retry the reconcile asks for (``Result.requeue_after``) is queued again after
its delay. The schedule asks the queue what is queued and when each object last finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future

from plinth.operator.api.v1alpha1 import KindInfo
from plinth.operator.reconcile import Latest, Reconciler, Steps

log = logging.getLogger("plinth.reconcile")


class WorkQueue:
    def __init__(self, reconciler: Reconciler) -> None:
        self.reconciler = reconciler
        # Objects with a reconcile queued and not started yet: it will read the object and its children as they are
        # then, so a further trigger meanwhile adds nothing.
        self._queued: set[str] = set()
        # Per object: when its latest reconcile finished, so time-based reconciles (schedule.py) stand aside for recent
        # work.
        self._finished: dict[str, float] = {}
        # Reconciles queued and not finished: cancelled at shutdown (cancel_queued).
        self._pending: set[Future[float | None]] = set()

    def forget(self, uid: str) -> None:
        """Drop what the queue knows of an object once it is gone."""
        self._finished.pop(uid, None)

    def finished_at(self, uid: str) -> float | None:
        """When the object's latest reconcile finished (``time.monotonic``), None if none has in this process."""
        return self._finished.get(uid)

    def queued(self, uid: str) -> bool:
        """Whether a reconcile queued by run_soon has not started yet."""
        return uid in self._queued

    def run_soon(
        self, info: KindInfo, uid: str, latest: Latest, steps: Steps, executor: Executor
    ) -> Future[float | None] | None:
        """Queue a reconcile of object *uid* on *executor* and return at once, unless one is already queued and has
        not started. Every trigger goes through here: the object's own events (create, spec update, resume), its
        children's events and the schedule.

        The reconcile reads the object from *latest* (its kind's index) when it starts, not when it was queued, so
        one queued reconcile covers every event of the object and of its children that comes before it starts, a
        spec change included: a rollout's burst of Deployment events costs one reconcile, not one each.

        Called on kopf's event loop and never waits: a handler that waited for a thread kept kopf's worker for its
        object, with the event's whole body, for as long as the executor was busy. That was the largest memory in a
        burst (every created object waiting) and at a restart (every resumed one). Nobody awaits the reconcile:
        failures are recorded in the status, and one that asks to be retried (``Result.requeue_after``, e.g. a namespace
        still terminating) is queued again after the delay it gives. Returns the queued reconcile's future (None when
        coalesced or stopping)."""
        if uid in self._queued:
            return None
        self._queued.add(uid)
        try:
            future = executor.submit(self._run_queued, info, uid, latest, steps)
        except RuntimeError:  # the executor is shut down: the operator is stopping
            self._queued.discard(uid)
            return None
        self._pending.add(future)
        again = functools.partial(self.run_soon, info, uid, latest, steps, executor)
        future.add_done_callback(
            functools.partial(self._finished_soon, uid, {"kind": info.kind, "uid": uid}, _running_loop(), again)
        )
        return future

    def cancel_queued(self) -> int:
        """Cancel the reconciles run_soon queued that have not started (the operator is stopping): the executor would
        otherwise run every one of them before the process can exit, and in a burst it would outlive its termination
        grace period and be killed. The next leader or process reconciles every object on resume anyway. Returns how
        many."""
        return sum(future.cancel() for future in list(self._pending))

    def _finished_soon(
        self,
        uid: str,
        ref: dict[str, str],
        loop: asyncio.AbstractEventLoop | None,
        again: Callable[[], object],
        future: Future[float | None],
    ) -> None:
        """A queued reconcile ended (in its executor thread). Nobody awaits it, so an unexpected error is logged here
        and a retry it asks for is queued here. One cancelled or failed before it started must not leave its object
        marked queued, or every later event of that object would be dropped."""
        self._pending.discard(future)
        if future.cancelled():
            self._queued.discard(uid)
        elif (err := future.exception()) is not None:
            self._queued.discard(uid)
            log.error("queued reconcile failed", exc_info=err, extra={"ref": ref})
        elif (delay := future.result()) is not None and loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the operator has stopped
                loop.call_soon_threadsafe(loop.call_later, delay, again)

    def _run_queued(self, info: KindInfo, uid: str, latest: Latest, steps: Steps) -> float | None:
        """A reconcile queued by run_soon, in an executor thread (``Reconciler.run_latest``: once the object's lock
        is held it no longer counts as queued). Returns the seconds after which it asks to run again, if it does."""
        try:
            result = self.reconciler.run_latest(info, uid, latest, steps, started=lambda: self._queued.discard(uid))
        except BaseException:
            self._finished[uid] = time.monotonic()  # it ran, and failed: recent work all the same
            raise
        if result is None:
            return None
        self._finished[uid] = time.monotonic()
        return result.requeue_after


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop calling us (kopf's), on which retries are timed; None outside one (tests)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
