"""NamespaceQuota handlers: reconcile on create/update/resume, on a resync timer, and when namespaces change."""

from __future__ import annotations

from typing import Any

import kopf
from plinth.operator.api.v1alpha1 import GROUP, VERSION, kind_info
from plinth.operator.reconcilers import namespacequota

INFO = kind_info("NamespaceQuota")
RESOURCE = (GROUP, VERSION, INFO.plural)


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
    """Children are owned (garbage-collected by Kubernetes); only our in-memory state needs dropping."""
    memo.reconciler.forget(body["metadata"]["uid"])


@kopf.on.event("", "v1", "namespaces")
def namespace_changed(type: str, memo: kopf.Memo, **kwargs: Any) -> None:
    """A namespace appeared, changed labels or went away: re-evaluate every NamespaceQuota at once (no resync wait)."""
    if not type:  # the initial listing: resume handlers cover it
        return
    index: kopf.Index[str, dict[str, Any]] = kwargs["namespacequotas"]  # kopf passes every index by its name
    for name in list(index):
        for obj in index.get(name, ()):
            try:
                memo.reconciler.run(INFO, obj, namespacequota.reconcile)
            except (kopf.PermanentError, kopf.TemporaryError):
                continue  # recorded in the quota's status; its own handler retries
