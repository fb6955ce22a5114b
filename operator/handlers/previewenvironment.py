"""PreviewEnvironment handlers: reconcile on create/update/resume and on child events in the preview namespace; its
``timing`` tells the operator-wide schedule (schedule.py) when something time-based is due (sleep, expiry) or the
preview still waits for something; a finalizer deletes the preview namespace and waits until it is gone."""

from __future__ import annotations

import functools
from typing import Any

import kopf
from plinth.adapters.kubernetes import Manifest
from plinth.operator.api.v1alpha1 import GROUP, VERSION, PreviewEnvironmentSpec, kind_info
from plinth.operator.builders import preview, quota
from plinth.operator.handlers.common import (
    POD_WARNINGS,
    follow,
    not_ready,
    reconcile_on_change,
    wake_not_ready,
    warned_pod,
)
from plinth.operator.index import Index, Timing
from plinth.operator.reconcile import Steps
from plinth.operator.reconcilers import previewenvironment
from plinth.operator.schedule import ScheduledKind
from plinth.operator.services import Services


def steps(memo: Services) -> Steps:
    """The reconcile steps, with what workloads get from the operator's configuration."""
    return functools.partial(previewenvironment.reconcile, telemetry=memo.telemetry)


INFO = kind_info("PreviewEnvironment")
RESOURCE = (GROUP, VERSION, INFO.plural)
TICK_SECONDS = 30


def timing(body: kopf.Body | Manifest) -> Timing:
    """Sleep and expiry are due at a time, not on an event. Every TICK_SECONDS: a preview that copies Secrets (they
    follow their source; the operator may not watch Secrets). From TICK_SECONDS on, less often the longer it waits:
    one not Ready (waiting for quota or a Secret, or its Pods crash-looping: Pods are not watched). Not RETRY_SECONDS
    as for the other kinds: a preview waits for several Deployments, whose events reconcile it anyway; in a slow
    burst a 15 s retry only added reconciles."""
    status = dict(body.get("status") or {})
    try:
        spec = PreviewEnvironmentSpec.model_validate(dict(body.get("spec") or {}))
    except ValueError:
        return Timing()  # Stalled with InvalidSpec until the user changes it
    due = previewenvironment.next_event(spec, status)
    at = due.timestamp() if due is not None else None
    copies = any(s.copy_from is not None for s in spec.secrets)
    waiting = not_ready(body)
    return Timing(every=TICK_SECONDS if copies or waiting else None, at=at, waiting=waiting and not copies)


# Every PreviewEnvironment by the namespace it runs in, so events of its children find it.
INDEX = Index(key=preview.namespace_name, timing=timing)
follow(RESOURCE, INDEX)


SCHEDULED = ScheduledKind(INFO, INDEX, steps)
reconcile_on_change(RESOURCE, SCHEDULED)


@kopf.on.delete(*RESOURCE)
def delete(body: kopf.Body, memo: Services, **_: Any) -> None:
    """Holds the finalizer until the preview namespace, and with it everything the preview made, is gone."""
    obj = dict(body)
    if not previewenvironment.finalize(memo.reconciler.kube, obj):
        raise kopf.TemporaryError(f"waiting for namespace {preview.namespace_name(obj)} to be deleted", delay=2)


@kopf.on.event("apps", "v1", "deployments", labels={preview.OWNER_LABEL: kopf.PRESENT})
@kopf.on.event(GROUP, VERSION, "modeldeployments", labels={preview.OWNER_LABEL: kopf.PRESENT})
@kopf.on.event("", "v1", "resourcequotas", labels={quota.OWNER_LABEL: kopf.PRESENT})
async def child_changed(type: str, body: kopf.Body, namespace: str | None, memo: Services, **_: Any) -> None:
    """Readiness, quota refusals and NamespaceQuota's reservation show up on children first (what only Pods show:
    ``pod_warned``). Async: the filter and the coalescing run on the event loop, so only a reconcile that will happen
    takes a thread."""
    if not type or namespace is None or not memo.children.changed("previewenvironment", type, body):
        return
    for entry in INDEX.under(namespace):
        if not entry.deleting:
            SCHEDULED.reconcile_soon(memo, entry.uid)


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
