"""ModelDeployment handlers: reconcile on create/update/resume, and whenever its Deployment's rollout or readiness
changes — found through an index by namespace/name. Resyncs, retries and canary checks come from the operator-wide
schedule (schedule.py) as ``timing`` asks. No delete handler and so no finalizer: children are owned and
garbage-collected. Pods are not watched (see ``handlers.common``): a Warning Event about one of its Pods re-evaluates a
model that is not Ready."""

from __future__ import annotations

import functools
from typing import Any

import kopf
from plinth.adapters.kubernetes import Manifest
from plinth.operator.api.v1alpha1 import GROUP, VERSION, kind_info
from plinth.operator.builders import model
from plinth.operator.handlers.common import (
    POD_WARNINGS,
    RETRY_SECONDS,
    follow,
    not_ready,
    reconcile_on_change,
    wake_not_ready,
    warned_pod,
)
from plinth.operator.index import Index, Timing
from plinth.operator.reconcile import Steps
from plinth.operator.reconcilers import modeldeployment
from plinth.operator.schedule import ScheduledKind
from plinth.operator.services import Services


def steps(memo: Services) -> Steps:
    """The reconcile steps, with what workloads get from the operator's configuration."""
    return functools.partial(
        modeldeployment.reconcile, telemetry=memo.telemetry, serving_image=memo.settings.serving_image
    )


INFO = kind_info("ModelDeployment")
RESOURCE = (GROUP, VERSION, INFO.plural)


# A canary's health gate and autoPromote.after are time-based: re-checked this often while a canary is set.
CANARY_SECONDS = 10


def timing(body: kopf.Body | Manifest) -> Timing:
    """A canary is re-checked every CANARY_SECONDS; an object not Ready at its generation is retried from
    RETRY_SECONDS on, less often the longer it waits (crash loops show only on Pods, which are not watched, and a
    reconcile that failed before it could ask for a retry leaves nothing else to do it)."""
    if (body.get("spec") or {}).get("canary"):
        return Timing(every=CANARY_SECONDS)
    return Timing(every=RETRY_SECONDS, waiting=True) if not_ready(body) else Timing()


def _namespaced_name(obj: Manifest) -> str:
    return f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"


# Every ModelDeployment by namespace/name, so events of its Deployment find it.
INDEX = Index(key=_namespaced_name, timing=timing)
follow(RESOURCE, INDEX)


SCHEDULED = ScheduledKind(INFO, INDEX, steps)
reconcile_on_change(RESOURCE, SCHEDULED)


@kopf.on.event("apps", "v1", "deployments", labels={model.OWNER_LABEL: kopf.PRESENT})
async def child_changed(
    type: str, body: kopf.Body, labels: kopf.Labels, namespace: str | None, memo: Services, **_: Any
) -> None:
    """Rollout progress and readiness show up on the Deployment first: re-evaluate the owner (filtered and coalesced
    on the event loop, see ``Reconciler.run_soon``)."""
    if not type or not memo.children.changed("modeldeployment", type, body):
        return
    for entry in INDEX.under(f"{namespace}/{labels[model.OWNER_LABEL]}"):
        SCHEDULED.reconcile_soon(memo, entry.uid)


@kopf.on.event(*POD_WARNINGS, id="pod-warning-modeldeployment")
async def pod_warned(type: str, body: kopf.Body, memo: Services, **_: Any) -> None:
    """A kubelet's Warning about a Pod of a model's Deployment (``<deployment>-<hash>-<id>``; the canary's is
    ``<name>-canary``): what the Deployment's counts do not show (a bad image, a crash loop) reaches the model now."""
    if (pod := warned_pod(type, body)) is None:
        return
    namespace, name = pod
    deployment = name.rsplit("-", 2)[0]
    for owner in {deployment, deployment.removesuffix(f"-{model.CANARY_TRACK}")}:
        wake_not_ready(SCHEDULED, INDEX.under(f"{namespace}/{owner}"), memo)
