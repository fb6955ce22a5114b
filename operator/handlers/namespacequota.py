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
def namespace_changed(type: str | None, memo: kopf.Memo, namespacequotas: kopf.Index[str, dict[str, Any]],  # noqa: A002
                      **_: Any) -> None:
    """A namespace appeared, changed labels or went away: re-evaluate every NamespaceQuota at once (no resync wait)."""
    if type is None:  # the initial listing: resume handlers cover it
        return
    for name in list(namespacequotas):
        for obj in namespacequotas[name]:
            try:
                memo.reconciler.run(INFO, obj, namespacequota.reconcile)
            except (kopf.PermanentError, kopf.TemporaryError):
                continue  # recorded in the quota's status; its own handler retries
