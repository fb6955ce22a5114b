"""The error ladder: what a reconcile step raises decides the condition, the event and the retry.

- ``Stalled``: the user must change something (invalid spec, refused secret). Stalled=True, no retry until the
  object changes.
- ``Waiting``: progress depends on something that will happen by itself (pods starting, quota freeing up).
  Reconciling=True, retried after ``delay``.
The wrapper (``reconcile.Reconciler``) turns them into a ``Result``; no exception reaches kopf.
Anything else is unexpected: reported as Reconciling with reason ``ReconcileError`` and retried with back-off.
"""

from __future__ import annotations

from typing import Any


class ReconcileError(Exception):
    """Base of the errors a reconciler raises on purpose; ``reason`` is a CamelCase condition reason."""

    def __init__(self, reason: str, message: str, status: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        # Status fields already known when the step gave up (e.g. where the preview will live): written anyway.
        self.status: dict[str, Any] = dict(status or {})


class Stalled(ReconcileError):  # noqa: N818 — named for the condition it sets
    """A user must fix the object before anything can progress."""


class Waiting(ReconcileError):  # noqa: N818 — named for what the object does
    """Progress will come by itself; check again after ``delay`` seconds."""

    def __init__(self, reason: str, message: str, delay: float = 10.0, status: dict[str, Any] | None = None) -> None:
        super().__init__(reason, message, status)
        self.delay = delay
