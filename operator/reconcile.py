"""The one wrapper around every reconcile: parse, run the kind's steps, summarise conditions, patch status once, and
record metrics, a span and log lines. Errors follow the ladder in ``errors.py``; a reconcile queued by ``run_soon``
that asks for a retry is queued again after its delay."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from plinth.adapters.kubernetes import KubernetesObjects, Manifest, Refused
from plinth.operator import reasons
from plinth.operator.api.served import STORED_API_VERSION
from plinth.operator.api.v1alpha1 import Condition, KindInfo
from plinth.operator.blockers import Blocker
from plinth.operator.conditions import (
    NEGATIVE_POLARITY,
    READY,
    RECONCILING,
    STALLED,
    Observation,
    is_ready,
    summarize,
)
from plinth.operator.errors import Stalled, Waiting
from plinth.operator.metrics import Metrics
from plinth.operator.reconcilers import Outcome
from plinth.operator.tracing import current_trace_id, tracer
from pydantic import ValidationError

log = logging.getLogger("plinth.reconcile")
Steps = Callable[[KubernetesObjects, Manifest, Any], Outcome]
# (object, event type Normal/Warning, reason, message): posts a Kubernetes Event about the object.
EmitEvent = Callable[[Manifest, str, str, str], None]
# An object's latest body by uid (its kind's index), None once it is gone.
Latest = Callable[[str], Manifest | None]
# Conditions worth an Event when they change; Reconciling comes and goes with every wait and would only add noise.
_EVENTFUL = frozenset({READY, STALLED}) | NEGATIVE_POLARITY
#: A child the API server refused is looked at again this often: an admission policy, quota or RBAC rule that
#: refused it may change without any change to the owner.
REFUSED_RECHECK_SECONDS = 60.0
#: A status that could not be written (API server unreachable), or an unexpected failure, is tried again after this.
FAILURE_RETRY_SECONDS = 15.0


@dataclass(frozen=True)
class Result:
    """What one reconcile ended with: its outcome, and when to reconcile again without an event (None: only when
    something changes; a Stalled object waits for its owner to change it)."""

    outcome: Outcome
    requeue_after: float | None = None


class Reconciler:
    """The one reconcile wrapper, for every kind: parse, run the steps, map the error ladder onto conditions, write
    the status once, post Events, record metrics and the span. One reconcile per object at a time (its lock);
    ``workqueue.WorkQueue`` decides when each runs."""

    def __init__(self, kube: KubernetesObjects, metrics: Metrics, emit: EmitEvent | None = None) -> None:
        self.kube = kube
        self.metrics = metrics
        self.emit = emit
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        # Per object: (generation, when it was first seen, whether its lag was recorded) for plinth_reconcile_lag.
        self._generations: dict[str, tuple[int, float, bool]] = {}
        # The status this process last wrote per object. Several triggers (resume, namespace and child events) may
        # hand us the same stale body; comparing against what we wrote keeps events and status writes to real changes.
        self._written: dict[str, dict[str, Any]] = {}
        # Per object: (kind, Ready status) as last reconciled, behind the plinth_resources gauge.
        self._ready: dict[str, tuple[str, str]] = {}
        # Per object: (resourceVersion, when kopf handed us its latest event), behind plinth_queue_lag_seconds.
        self._received: dict[str, tuple[str | None, float]] = {}

    def _lock(self, uid: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(uid, threading.Lock())

    def forget(self, uid: str) -> None:
        """Drop per-object state once an object is gone."""
        with self._locks_guard:
            self._locks.pop(uid, None)
        self._generations.pop(uid, None)
        self._written.pop(uid, None)
        self._received.pop(uid, None)
        if (gone := self._ready.pop(uid, None)) is not None:
            self.metrics.resources.labels(*gone).dec()

    def received(self, uid: str, resource_version: str | None, status: Manifest | None = None) -> None:
        """Note when kopf handed us an event of an object (called on the event loop, after its index took the event's
        body, before any executor wait). An event showing the status this process last wrote means the index has it
        now: our own copy is dropped, so the operator keeps one copy of each status, not two. (A queued reconcile reads
        our copy before the index, so whichever it misses, the other is at least as new.)"""
        self._received[uid] = (resource_version, time.monotonic())
        written = self._written.get(uid)
        if written is not None and status is not None and all(status.get(k) == v for k, v in written.items()):
            self._written.pop(uid, None)

    def run_latest(
        self, info: KindInfo, uid: str, latest: Latest, steps: Steps, started: Callable[[], None]
    ) -> Result | None:
        """Reconcile object *uid* as *latest* (its kind's index) has it now, with its lock held; *started* is called
        once the lock is held (the queue stops counting it as queued: an event from then on queues the next
        reconcile, as this one may have read past it). None when there is nothing to reconcile."""
        with self._lock(uid):
            started()
            written = self._written.get(uid)  # before the index: see ``received``
            obj = latest(uid)
            if obj is None or obj["metadata"].get("deletionTimestamp"):
                # Gone, or this replica stood down: nothing to reconcile. Being deleted: what is left is the
                # finalizer's handler's or the garbage collector's, and applying children now would bring back what
                # they are deleting (a preview's namespace, recreated after its finalizer had seen it gone).
                return None
            return self._run_held(info, obj, steps, written)

    def run(self, info: KindInfo, obj: Manifest, steps: Steps) -> Result:
        """Reconcile *obj* (a plain dict of the whole object) with *steps* in this thread."""
        uid = obj["metadata"]["uid"]
        with self._lock(uid):
            return self._run_held(info, obj, steps, self._written.get(uid))

    def _run_held(self, info: KindInfo, obj: Manifest, steps: Steps, written: Manifest | None) -> Result:
        """``run`` with the object's lock held; *written* is the status this process last wrote for it, if kept."""
        meta = obj["metadata"]
        uid = meta["uid"]
        stamp = self._received.get(uid)
        if stamp is not None and stamp[0] == meta.get("resourceVersion"):
            del self._received[uid]
            self.metrics.queue_lag.labels(info.kind).observe(time.monotonic() - stamp[1])
        return self._run_locked(info, obj, steps, written)

    def _run_locked(self, info: KindInfo, obj: Manifest, steps: Steps, written: Manifest | None) -> Result:
        meta, kind = obj["metadata"], info.kind
        uid, generation = meta["uid"], meta.get("generation")
        seen = self._generations.get(uid)
        if seen is not None and (generation or 0) < seen[0]:
            # A body older than one already reconciled (an index entry racing a spec update): applying it would
            # briefly revert the children. The newer generation's own reconcile is the one that counts.
            log.debug("skipping a stale body", extra={"ref": _ref(kind, meta), "generation": generation})
            return Result(Outcome())
        if seen is None and is_ready(info.status_model.model_validate(obj.get("status") or {}).conditions, generation):
            # Ready for this generation before this process first saw it (a restart, a new leader): its lag was
            # recorded then; recording it again would rewrite every status on every restart.
            seen = self._generations[uid] = (generation or 0, time.monotonic(), True)
        if seen is None or seen[0] != (generation or 0):
            seen = self._generations[uid] = (generation or 0, time.monotonic(), False)
        current_status = written or obj.get("status") or {}
        previous = info.status_model.model_validate(current_status).conditions
        started = time.perf_counter()
        span_attrs = {
            "plinth.kind": kind,
            "plinth.name": meta["name"],
            "plinth.namespace": meta.get("namespace", ""),
            "plinth.generation": generation or 0,
        }
        # The span covers the whole reconcile, so its log line and Events carry the trace id.
        with tracer().start_as_current_span(f"reconcile {kind}", attributes=span_attrs) as span:
            self.metrics.in_progress.labels(kind).inc()
            try:
                # Steps read the previous status (e.g. activeVersion, history): give them the freshest one.
                outcome, result, retry_after = self._attempt(info, {**obj, "status": current_status}, steps)
                span.set_attribute("plinth.result", result)
                conditions = summarize(previous, outcome.observations, generation)
                lag = None
                if is_ready(conditions, generation) and not seen[2]:
                    lag = time.monotonic() - seen[1]
                    self._generations[uid] = (seen[0], seen[1], True)
                status = {
                    **outcome.status,
                    "blockedBy": outcome.blocker.as_status() if outcome.blocker is not None else None,
                    "observedGeneration": generation,
                    "conditions": [c.model_dump(by_alias=True, exclude_none=True) for c in conditions],
                }
                if lag is not None:
                    status["lastReconcileLagSeconds"] = round(lag, 3)
                if status != {k: current_status.get(k) for k in status}:
                    written_now = self._write_status(kind, meta, status)
                    if written_now is None:  # not written: tried again like any failure
                        return Result(Outcome(), FAILURE_RETRY_SECONDS)
                    if not written_now:
                        log.debug("object deleted meanwhile", extra={"ref": _ref(kind, meta)})
                        return Result(Outcome())
                    self._written[uid] = {**current_status, **status}
            finally:
                self.metrics.in_progress.labels(kind).dec()
            duration = time.perf_counter() - started
            self.metrics.reconcile_total.labels(kind, result).inc()
            self.metrics.reconcile_duration.labels(kind).observe(duration)
            self._count_ready(uid, kind, next((c.status for c in conditions if c.type == READY), "Unknown"))
            if lag is not None:
                self.metrics.reconcile_lag.labels(kind).observe(lag)
            log.info(
                "reconciled",
                extra={
                    "ref": _ref(kind, meta),
                    "generation": generation,
                    "result": result,
                    "duration": round(duration, 4),
                },
            )
            self._post_transitions(obj, previous, conditions, (current_status.get("blockedBy"), outcome.blocker))
            self._count_denials(kind, previous, conditions)
        requeue_after = retry_after if retry_after is not None else outcome.requeue_after
        if requeue_after is not None:
            reason = next((c.reason for c in conditions if c.type == READY), "Unknown")
            self.metrics.retries.labels(kind, reason).inc()
        return Result(outcome, requeue_after)

    def _write_status(self, kind: str, meta: Manifest, status: dict[str, Any]) -> bool | None:
        """Patch the status; False when the object is gone, None when the write failed (API server unreachable,
        refused): retried like any failure rather than escaping the error ladder."""
        try:
            return self.kube.patch_status(
                STORED_API_VERSION, kind, meta["name"], status, namespace=meta.get("namespace")
            )
        except Exception:
            log.exception("status write failed", extra={"ref": _ref(kind, meta)})
            return None

    def _count_denials(self, kind: str, previous: list[Condition], current: list[Condition]) -> None:
        """A policy refusal counts once, when it starts (not on every resync while it lasts)."""
        before = {(c.type, c.reason) for c in previous if c.status == "True"}
        for cond in current:
            policy = cond.type in NEGATIVE_POLARITY or (cond.type == STALLED and cond.reason in reasons.POLICY)
            if policy and cond.status == "True" and (cond.type, cond.reason) not in before:
                self.metrics.policy_denials.labels(kind, cond.reason).inc()

    def _attempt(self, info: KindInfo, obj: Manifest, steps: Steps) -> tuple[Outcome, str, float | None]:
        """Parse and run the steps; map every failure onto the error ladder: (outcome, result label, seconds until
        it is tried again; None: when the object changes)."""
        try:
            spec = info.spec_model.model_validate(obj.get("spec") or {})
            return steps(self.kube, obj, spec), "success", None
        except ValidationError as err:
            message = _validation_message(err)
            stalled = Outcome(observations=[Observation(STALLED, True, reasons.INVALID_SPEC, message)])
            return stalled, "stalled", None
        except Stalled as err:
            stalled = Outcome(status=err.status, observations=[Observation(STALLED, True, err.reason, err.message)])
            return stalled, "stalled", None
        except Waiting as err:
            waiting = Outcome(status=err.status, observations=[Observation(RECONCILING, True, err.reason, err.message)])
            return waiting, "waiting", err.delay
        except Refused as err:
            # The child as built cannot exist: Stalled, in the API server's words, the child named as the blocker.
            child = Blocker(err.kind, err.name, err.reason, err.message)
            message = f"{child.describe()}: {child.hint}"[:1024]
            refused = Outcome(observations=[Observation(STALLED, True, err.reason, message)], blocker=child)
            return refused, "stalled", REFUSED_RECHECK_SECONDS
        except Exception as err:  # unexpected: keep the operator up, report, retry with back-off
            log.exception("reconcile failed", extra={"ref": _ref(info.kind, obj["metadata"])})
            message = f"reconcile failed: {type(err).__name__}; see the operator log"
            failed = Outcome(observations=[Observation(RECONCILING, True, reasons.RECONCILE_ERROR, message)])
            return failed, "error", FAILURE_RETRY_SECONDS

    def _count_ready(self, uid: str, kind: str, ready: str) -> None:
        before = self._ready.get(uid)
        if before == (kind, ready):
            return
        if before is not None:
            self.metrics.resources.labels(*before).dec()
        self.metrics.resources.labels(kind, ready).inc()
        self._ready[uid] = (kind, ready)

    def _post_transitions(
        self,
        obj: Manifest,
        previous: list[Condition],
        current: list[Condition],
        blocked: tuple[Manifest | None, Blocker | None] = (None, None),
    ) -> None:
        """Events on change, failure and recovery only: a resync with the same outcome posts nothing. *blocked* is
        the blocking child before and now (``_post_blocker``)."""
        if self.emit is None:
            return
        trace = current_trace_id()
        suffix = f" (trace {trace})" if trace else ""
        named = self._post_blocker(obj, *blocked, suffix=suffix)
        before = {c.type: c.status for c in previous}
        after = {c.type: c for c in current}
        for type_, cond in after.items():
            if type_ in _EVENTFUL and before.get(type_) != cond.status:
                healthy = (cond.status == "True") == (type_ == READY)
                if not healthy and cond.reason == named:
                    continue  # the blocker's Event just said it
                self.emit(
                    obj,
                    "Normal" if healthy else "Warning",
                    cond.reason,
                    f"{type_}={cond.status}: {cond.message}{suffix}",
                )
        for type_ in before.keys() - after.keys():
            if type_ in _EVENTFUL and before[type_] == "True":
                self.emit(obj, "Normal", f"{type_}Resolved", f"{type_} no longer holds{suffix}")

    def _post_blocker(
        self, obj: Manifest, before: Manifest | None, now: Blocker | None, *, suffix: str = ""
    ) -> str | None:
        """One Event per change of the blocking child (kind, name or reason), none while the same one persists: a
        Warning when only a change clears it, Normal for progress; *suffix* names the trace. Returns the reason it
        posted, so the conditions' transitions do not say it again."""
        if self.emit is None:
            return None
        key = (now.kind, now.name, now.reason) if now is not None else None
        if key == ((before["kind"], before["name"], before["reason"]) if before else None):
            return None
        if now is not None:
            self.emit(
                obj,
                "Warning" if now.stalled else "Normal",  # progress that passes by itself needs nobody's attention
                now.reason,
                f"blocked by {now.describe()}" + (f": {now.hint}" if now.hint else "") + suffix,
            )
            return now.reason
        if before is not None:
            self.emit(
                obj,
                "Normal",
                "Unblocked",
                f"{before['kind']} {before['name']} no longer blocks (was {before['reason']}){suffix}",
            )
        return None


def _validation_message(err: ValidationError) -> str:
    """Field paths and messages only. Validators may quote the offending value (it could be a secret), so each
    error's input is redacted from its message."""
    parts = []
    for e in err.errors(include_url=False)[:5]:
        message = e["msg"]
        value = e.get("input")
        if isinstance(value, (str, int, float)) and str(value):
            message = message.replace(repr(value), "<value>").replace(str(value), "<value>")
        path = ".".join(str(p) for p in e["loc"])
        parts.append(f"spec.{path}: {message}" if path else message)
    return "; ".join(parts)


def _ref(kind: str, meta: Manifest) -> dict[str, str]:
    return {"kind": kind, "name": meta["name"], **({"namespace": meta["namespace"]} if meta.get("namespace") else {})}
