"""NamespaceQuota handlers: reconcile on create/update/resume and when namespaces or children change; resyncs and
retries come from the operator-wide schedule (schedule.py). No delete handler and so no finalizer: children are owned,
Kubernetes garbage-collects them, and their deletion events let other quotas take the namespaces over."""

from __future__ import annotations

from typing import Any

import kopf
from plinth.adapters.kubernetes import Manifest
from plinth.operator.api.v1alpha1 import GROUP, VERSION, kind_info
from plinth.operator.builders import quota
from plinth.operator.handlers.common import RETRY_SECONDS, follow, not_ready, reconcile_on_change
from plinth.operator.index import Index, Timing
from plinth.operator.reconcilers import namespacequota
from plinth.operator.schedule import ScheduledKind
from plinth.operator.services import Services

INFO = kind_info("NamespaceQuota")
RESOURCE = (GROUP, VERSION, INFO.plural)


def timing(body: kopf.Body | Manifest) -> Timing:
    """Not Ready at its generation: retried from RETRY_SECONDS on, less often the longer it waits (a reconcile that
    failed before it could ask for a retry leaves nothing else to do it)."""
    return Timing(every=RETRY_SECONDS, waiting=True) if not_ready(body) else Timing()


# Every NamespaceQuota by name, so namespace and child events find the quotas to re-evaluate.
INDEX = Index(key=lambda obj: obj["metadata"]["name"], timing=timing)
follow(RESOURCE, INDEX)


SCHEDULED = ScheduledKind(INFO, INDEX, lambda memo: namespacequota.reconcile)
reconcile_on_change(RESOURCE, SCHEDULED)


@kopf.on.event("", "v1", "namespaces")
async def namespace_changed(type: str, memo: Services, **_: Any) -> None:
    """A namespace appeared, changed labels or went away: re-evaluate every NamespaceQuota at once (no resync wait).

    Async, as are all child-event handlers: kopf runs a sync handler in the executor, so each of the thousands of
    namespaces listed at start-up waited there behind every resume reconcile, its worker holding the namespace's whole
    body meanwhile (with child_changed below, most of the objects held at the peak of a restart)."""
    if type:  # None is the initial listing: resume handlers cover it
        _reconcile_all(memo)


@kopf.on.event("", "v1", "resourcequotas", labels={quota.OWNER_LABEL: kopf.PRESENT})
@kopf.on.event("", "v1", "limitranges", labels={quota.OWNER_LABEL: kopf.PRESENT})
@kopf.on.event("networking.k8s.io", "v1", "networkpolicies", labels={quota.OWNER_LABEL: kopf.PRESENT})
async def child_changed(type: str, labels: kopf.Labels, memo: Services, **_: Any) -> None:
    """A child changed: repair drift, and rebalance the total whenever a ResourceQuota's usage moves. A reconcile
    already queued and not started covers this change too (it reads the children when it starts)."""
    if not type:
        return
    owner = labels[quota.OWNER_LABEL]
    if owner not in INDEX:
        # Its NamespaceQuota is gone (this is the garbage collector at work): quotas that lost the namespace to it
        # may take it over now.
        _reconcile_all(memo)
    for entry in INDEX.under(owner):
        SCHEDULED.reconcile_soon(memo, entry.uid)


def _reconcile_all(memo: Services) -> None:
    for entry in INDEX:
        SCHEDULED.reconcile_soon(memo, entry.uid)
