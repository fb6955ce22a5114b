"""NamespaceQuota handlers: reconcile on create/update/resume, on a resync timer, and when namespaces change."""

from __future__ import annotations

from typing import Any

import kopf
from plinth.operator.api.v1alpha1 import GROUP, VERSION, kind_info
from plinth.operator.builders import quota
from plinth.operator.handlers.common import RETRY_SECONDS, not_ready, stamp_events
from plinth.operator.reconcilers import namespacequota

INFO = kind_info("NamespaceQuota")
RESOURCE = (GROUP, VERSION, INFO.plural)
stamp_events(RESOURCE)


@kopf.index(*RESOURCE)
def namespacequotas(body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    """Every NamespaceQuota by name, so namespace events can find the quotas to re-evaluate."""
    return {body["metadata"]["name"]: dict(body)}


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
@kopf.timer(*RESOURCE, interval=300, initial_delay=300, idle=60)
def reconcile(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.reconciler.run(INFO, dict(body), namespacequota.reconcile)


@kopf.on.delete(*RESOURCE, optional=True)
def deleted(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Children are owned, so Kubernetes garbage-collects them (their deletion events let other quotas take over
    namespaces); only in-memory state needs dropping."""
    memo.reconciler.forget(body["metadata"]["uid"])


@kopf.on.event("", "v1", "namespaces")
def namespace_changed(type: str, memo: kopf.Memo, **kwargs: Any) -> None:
    """A namespace appeared, changed labels or went away: re-evaluate every NamespaceQuota at once (no resync wait)."""
    if type:  # None is the initial listing: resume handlers cover it
        _reconcile_all(memo, kwargs["namespacequotas"])  # kopf passes every index by its name


@kopf.on.event("", "v1", "resourcequotas", labels={quota.OWNER_LABEL: kopf.PRESENT})
@kopf.on.event("", "v1", "limitranges", labels={quota.OWNER_LABEL: kopf.PRESENT})
@kopf.on.event("networking.k8s.io", "v1", "networkpolicies", labels={quota.OWNER_LABEL: kopf.PRESENT})
def child_changed(type: str, labels: kopf.Labels, memo: kopf.Memo, **kwargs: Any) -> None:
    """A child changed: repair drift at once, and rebalance the total whenever a ResourceQuota's usage moves."""
    if not type:
        return
    index: kopf.Index[str, dict[str, Any]] = kwargs["namespacequotas"]
    owner = labels[quota.OWNER_LABEL]
    if owner not in index:
        # Its NamespaceQuota is gone (this is the garbage collector at work): quotas that lost the namespace to it
        # may take it over now.
        _reconcile_all(memo, index)
    for obj in list(index.get(owner, ())):
        _run_quietly(memo, obj)


def _reconcile_all(memo: kopf.Memo, index: kopf.Index[str, dict[str, Any]]) -> None:
    for name in list(index):
        for obj in list(index.get(name, ())):
            _run_quietly(memo, obj)


def _run_quietly(memo: kopf.Memo, obj: dict[str, Any]) -> None:
    memo.reconciler.run_quietly(INFO, obj, namespacequota.reconcile)


@kopf.timer(*RESOURCE, interval=RETRY_SECONDS, idle=10, when=not_ready)
async def retry_not_ready(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Objects not Ready at their generation are looked at again every 15 s (a failed event-driven reconcile is not
    retried by kopf), unless a reconcile ran meanwhile or is queued."""
    if not memo.reconciler.ran_within(body["metadata"]["uid"], RETRY_SECONDS):
        memo.reconciler.run_soon(INFO, dict(body), namespacequota.reconcile, memo.executor)
