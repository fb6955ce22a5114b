"""ModelDeployment handlers: reconcile on create/update/resume and a resync timer, and whenever its Deployment's
rollout or readiness changes — found through an index by namespace/name. Pods are not watched (see
``handlers.common``): crash loops are read by the reconcile, which a not-Ready object gets at least every 15 s."""

from __future__ import annotations

import functools
from typing import Any

import kopf
from plinth.operator.api.v1alpha1 import GROUP, VERSION, kind_info
from plinth.operator.builders import model
from plinth.operator.handlers.common import RETRY_SECONDS, not_ready, stamp_events
from plinth.operator.reconcile import Steps
from plinth.operator.reconcilers import modeldeployment


def steps(memo: kopf.Memo) -> Steps:
    """The reconcile steps, with what workloads get from the operator's configuration."""
    return functools.partial(modeldeployment.reconcile, telemetry=memo.telemetry)


INFO = kind_info("ModelDeployment")
RESOURCE = (GROUP, VERSION, INFO.plural)
stamp_events(RESOURCE)


@kopf.index(*RESOURCE)
def modeldeployments(body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    """Every ModelDeployment by namespace/name, so child events can find their owner."""
    return {f"{body['metadata']['namespace']}/{body['metadata']['name']}": dict(body)}


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
@kopf.timer(*RESOURCE, interval=300, initial_delay=300, idle=60)
def reconcile(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.reconciler.run(INFO, dict(body), steps(memo))


def _has_canary(spec: kopf.Spec, **_: Any) -> bool:
    return bool(spec.get("canary"))


@kopf.timer(*RESOURCE, interval=10, idle=5, when=_has_canary)
def canary_tick(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A canary's health gate and autoPromote.after are time-based: re-check every 10 s while one is set."""
    memo.reconciler.run_quietly(INFO, dict(body), steps(memo))


@kopf.on.delete(*RESOURCE, optional=True)
def deleted(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Children are owned and garbage-collected; only in-memory state needs dropping."""
    memo.reconciler.forget(body["metadata"]["uid"])


@kopf.on.event("apps", "v1", "deployments", labels={model.OWNER_LABEL: kopf.PRESENT})
async def child_changed(
    type: str, body: kopf.Body, labels: kopf.Labels, namespace: str | None, memo: kopf.Memo, **kwargs: Any
) -> None:
    """Rollout progress and readiness show up on the Deployment first: re-evaluate the owner (filtered and coalesced
    on the event loop, see ``Reconciler.run_soon``)."""
    if not type or not memo.children.changed("modeldeployment", type, body):
        return
    index: kopf.Index[str, dict[str, Any]] = kwargs["modeldeployments"]
    # A snapshot: kopf updates its indexes on this event loop, should anything here ever await.
    for obj in list(index.get(f"{namespace}/{labels[model.OWNER_LABEL]}", ())):
        memo.reconciler.run_soon(INFO, obj, steps(memo), memo.executor)


@kopf.timer(*RESOURCE, interval=RETRY_SECONDS, idle=10, when=not_ready)
async def retry_not_ready(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Objects not Ready at their generation are looked at again every 15 s (a failed event-driven reconcile is not
    retried by kopf), unless a reconcile ran meanwhile or is queued."""
    if not memo.reconciler.ran_within(body["metadata"]["uid"], RETRY_SECONDS):
        memo.reconciler.run_soon(INFO, dict(body), steps(memo), memo.executor)
