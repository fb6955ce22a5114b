"""NamespaceQuota handlers: its own changes and its children's events (``register``, from its descriptor), and every
namespace's; resyncs and retries come from the operator-wide schedule (schedule.py). No delete handler and so no
finalizer: children are owned, Kubernetes garbage-collects them, and their deletion events let other quotas take the
namespaces over."""

from __future__ import annotations

from typing import Any

import kopf
from plinth.operator.handlers.common import register
from plinth.operator.reconcilers import namespacequota
from plinth.operator.services import Services

SCHEDULED = register(namespacequota.KIND)
INDEX = SCHEDULED.index


@kopf.on.event("", "v1", "namespaces")
async def namespace_changed(type: str, memo: Services, **_: Any) -> None:
    """A namespace appeared, changed labels or went away: re-evaluate every NamespaceQuota at once (no resync wait).

    Async, as are all child-event handlers: kopf runs a sync handler in the executor, so each of the thousands of
    namespaces listed at start-up waited there behind every resume reconcile, its worker holding the namespace's whole
    body meanwhile (with the child handlers, most of the objects held at the peak of a restart)."""
    if type:  # None is the initial listing: resume handlers cover it
        for entry in INDEX:
            SCHEDULED.reconcile_soon(memo, entry.uid)
