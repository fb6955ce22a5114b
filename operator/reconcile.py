"""The one wrapper around every reconcile: parse, run the kind's steps, summarise conditions, patch status once, and
record metrics, a span and log lines. Errors follow the ladder in ``errors.py`` and become kopf's retry policy."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import kopf
from plinth.adapters.kubernetes import KubernetesObjects, Manifest
from plinth.operator.api.v1alpha1 import API_VERSION, Condition, KindInfo
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
# Conditions worth an Event when they change; Reconciling comes and goes with every wait and would only add noise.
_EVENTFUL = frozenset({READY, STALLED}) | NEGATIVE_POLARITY


class Reconciler:
    """Runs reconciles for all kinds; holds per-object locks and generation timestamps (for the lag metric)."""

    def __init__(self, kube: KubernetesObjects, metrics: Metrics, emit: EmitEvent | None = None) -> None:
        self.kube = kube
        self.metrics = metrics
        self.emit = emit
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._first_seen: dict[tuple[str, int], float] = {}

    def _lock(self, uid: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(uid, threading.Lock())

    def forget(self, uid: str) -> None:
        """Drop per-object state once an object is gone."""
        with self._locks_guard:
            self._locks.pop(uid, None)
        for key in [k for k in self._first_seen if k[0] == uid]:
            self._first_seen.pop(key, None)

    def run(self, info: KindInfo, obj: Manifest, steps: Steps) -> Outcome:
        """Reconcile *obj* (a plain dict of the whole object) with *steps*; raises kopf errors for retries."""
        meta = obj["metadata"]
        uid, generation = meta["uid"], meta.get("generation")
        with self._lock(uid):
            return self._run_locked(info, obj, steps, uid, generation)

    def _run_locked(self, info: KindInfo, obj: Manifest, steps: Steps, uid: str, generation: int | None) -> Outcome:
        meta = obj["metadata"]
        kind = info.kind
        self._first_seen.setdefault((uid, generation or 0), time.monotonic())
        previous = info.status_model.model_validate(obj.get("status") or {}).conditions
        started = time.perf_counter()
        self.metrics.in_progress.labels(kind).inc()
        result = "success"
        retry: kopf.PermanentError | kopf.TemporaryError | None = None
        span_attrs = {
            "plinth.kind": kind,
            "plinth.name": meta["name"],
            "plinth.namespace": meta.get("namespace", ""),
            "plinth.generation": generation or 0,
        }
        with tracer().start_as_current_span(f"reconcile {kind}", attributes=span_attrs) as span:
            try:
                spec = info.spec_model.model_validate(obj.get("spec") or {})
                outcome = steps(self.kube, obj, spec)
            except ValidationError as err:
                result = "stalled"
                outcome = Outcome(observations=[Observation(STALLED, True, "InvalidSpec", _validation_message(err))])
                retry = kopf.PermanentError(f"invalid spec: {_validation_message(err)}")
            except Stalled as err:
                result = "stalled"
                outcome = Outcome(observations=[Observation(STALLED, True, err.reason, err.message)])
                retry = kopf.PermanentError(err.message)
            except Waiting as err:
                result = "waiting"
                outcome = Outcome(observations=[Observation(RECONCILING, True, err.reason, err.message)])
                retry = kopf.TemporaryError(err.message, delay=err.delay)
            except Exception as err:  # unexpected: keep the operator up, report, retry with back-off
                result = "error"
                log.exception("reconcile failed", extra={"ref": _ref(kind, meta)})
                message = f"reconcile failed: {type(err).__name__}; see the operator log"
                outcome = Outcome(observations=[Observation(RECONCILING, True, "ReconcileError", message)])
                retry = kopf.TemporaryError(message, delay=15)
            span.set_attribute("plinth.result", result)
            conditions = summarize(previous, outcome.observations, generation)
            status = {
                **outcome.status,
                "observedGeneration": generation,
                "conditions": [c.model_dump(by_alias=True, exclude_none=True) for c in conditions],
            }
            if status != {k: (obj.get("status") or {}).get(k) for k in status}:
                self.kube.patch_status(API_VERSION, kind, meta["name"], status, namespace=meta.get("namespace"))
        duration = time.perf_counter() - started
        self.metrics.in_progress.labels(kind).dec()
        self.metrics.reconcile_total.labels(kind, result).inc()
        self.metrics.reconcile_duration.labels(kind).observe(duration)
        if is_ready(conditions, generation):
            first = self._first_seen.pop((uid, generation or 0), None)
            if first is not None:
                self.metrics.reconcile_lag.labels(kind).observe(time.monotonic() - first)
        log.info(
            "reconciled",
            extra={"ref": _ref(kind, meta), "generation": generation, "result": result, "duration": round(duration, 4)},
        )
        self._post_transitions(obj, previous, conditions)
        if retry is not None:
            raise retry
        return outcome

    def _post_transitions(self, obj: Manifest, previous: list[Condition], current: list[Condition]) -> None:
        """Events on change, failure and recovery only: a resync with the same outcome posts nothing."""
        if self.emit is None:
            return
        before = {c.type: c.status for c in previous}
        after = {c.type: c for c in current}
        trace = current_trace_id()
        suffix = f" (trace {trace})" if trace else ""
        for type_, cond in after.items():
            if type_ in _EVENTFUL and before.get(type_) != cond.status:
                healthy = (cond.status == "True") == (type_ == READY)
                self.emit(
                    obj,
                    "Normal" if healthy else "Warning",
                    cond.reason,
                    f"{type_}={cond.status}: {cond.message}{suffix}",
                )
        for type_ in before.keys() - after.keys():
            if type_ in _EVENTFUL and before[type_] == "True":
                self.emit(obj, "Normal", f"{type_}Resolved", f"{type_} no longer holds{suffix}")


def _validation_message(err: ValidationError) -> str:
    """Field paths and messages only: never the offending input values (they may be secrets)."""
    parts = []
    for e in err.errors(include_url=False, include_input=False)[:5]:
        path = ".".join(str(p) for p in e["loc"])
        parts.append(f"spec.{path}: {e['msg']}" if path else e["msg"])
    return "; ".join(parts)


def _ref(kind: str, meta: Manifest) -> dict[str, str]:
    return {"kind": kind, "name": meta["name"], **({"namespace": meta["namespace"]} if meta.get("namespace") else {})}
