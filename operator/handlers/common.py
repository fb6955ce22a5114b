"""What the per-kind handler modules share: reconciling an owner from an event about something else."""

from __future__ import annotations

import contextlib
from typing import Any

import kopf
from plinth.operator.api.v1alpha1 import KindInfo
from plinth.operator.reconcile import Steps


def reconcile_quietly(memo: kopf.Memo, info: KindInfo, obj: dict[str, Any], steps: Steps) -> None:
    """Reconcile *obj* outside its own handler (a child or namespace changed).

    A failure is recorded in the object's status; its own handlers, the next child event or the timer retry, so the
    retry signal is not propagated to the unrelated event's handler.
    """
    with contextlib.suppress(kopf.PermanentError, kopf.TemporaryError):
        memo.reconciler.run(info, obj, steps)


def stamp_events(resource: tuple[str, str, str]) -> None:
    """Register an async event handler for *resource* that notes when each event reaches us, for the queue-lag metric.
    Async, so it runs on kopf's event loop at once, before the sync reconcile waits for an executor thread."""

    @kopf.on.event(*resource, id=f"received-{resource[2]}")
    async def received(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        memo.reconciler.received(body["metadata"]["uid"], body["metadata"].get("resourceVersion"))


def not_ready(body: kopf.Body, **_: Any) -> bool:
    """Not Ready for its current generation. A reconcile triggered by a child's event is not retried when it fails
    (e.g. the API server was down); a short timer on such objects picks them up again."""
    status = body.get("status") or {}
    generation = body.get("metadata", {}).get("generation")
    ready: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    return not (ready.get("status") == "True" and ready.get("observedGeneration") == generation)
