"""PreviewEnvironment handlers: its own changes and its children's events in the preview namespace (``register``, from
its descriptor), the Warning Events about its Pods and IngressClasses; its ``timing`` tells the operator-wide schedule
(schedule.py) when something time-based is due (sleep, expiry) or the preview still waits for something; a finalizer
deletes the preview namespace and waits until it is gone."""

from __future__ import annotations

from typing import Any

import kopf
from plinth.operator.builders import preview
from plinth.operator.handlers.common import register, wake_not_ready, warned_pod
from plinth.operator.kinds import POD_WARNINGS
from plinth.operator.reconcilers import previewenvironment
from plinth.operator.services import Services

SCHEDULED = register(previewenvironment.KIND)
INDEX = SCHEDULED.index


@kopf.on.delete(*previewenvironment.KIND.resource)
def delete(body: kopf.Body, memo: Services, **_: Any) -> None:
    """Holds the finalizer until the preview namespace, and with it everything the preview made, is gone."""
    obj = dict(body)
    if not previewenvironment.finalize(memo.reconciler.kube, obj):
        raise kopf.TemporaryError(f"waiting for namespace {preview.namespace_name(obj)} to be deleted", delay=2)


@kopf.on.event(*POD_WARNINGS, id="pod-warning-previewenvironment")
async def pod_warned(type: str, body: kopf.Body, memo: Services, **_: Any) -> None:
    """A kubelet's Warning about a Pod in a preview's namespace (a bad image, a crash loop, a failing probe) reaches
    the preview now, not at its next retry."""
    if (pod := warned_pod(type, body)) is not None:
        wake_not_ready(SCHEDULED, INDEX.under(pod[0]), memo)


@kopf.on.event("networking.k8s.io", "v1", "ingressclasses")
async def ingress_class_changed(type: str, memo: Services, **_: Any) -> None:
    """An IngressClass appeared or changed: previews Stalled for want of it go on now, not at their next retry
    (IngressClasses are few and rarely change, so every preview not Ready is looked at)."""
    if type:  # None is the initial listing: resumed previews are reconciled anyway
        wake_not_ready(SCHEDULED, INDEX, memo)
