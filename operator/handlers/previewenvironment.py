"""PreviewEnvironment handlers: reconcile on create/update/resume, on child events in the preview namespace, and on a
tick that acts when something time-based is due (sleep, expiry) or the preview still waits for something; a
finalizer deletes the preview namespace and waits until it is gone."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

import kopf
from plinth.operator.api.v1alpha1 import GROUP, VERSION, PreviewEnvironmentSpec, kind_info
from plinth.operator.builders import preview, quota
from plinth.operator.handlers.common import RETRY_SECONDS, stamp_events
from plinth.operator.reconcile import Steps
from plinth.operator.reconcilers import previewenvironment


def steps(memo: kopf.Memo) -> Steps:
    """The reconcile steps, with what workloads get from the operator's configuration."""
    return functools.partial(previewenvironment.reconcile, telemetry=memo.telemetry)


INFO = kind_info("PreviewEnvironment")
RESOURCE = (GROUP, VERSION, INFO.plural)
stamp_events(RESOURCE)
TICK_SECONDS = 30


@kopf.index(*RESOURCE)
def previews_by_namespace(body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    """Every PreviewEnvironment by the namespace it runs in, so events of its children find it."""
    return {preview.namespace_name(dict(body)): dict(body)}


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
@kopf.timer(*RESOURCE, interval=300, initial_delay=300, idle=60)
def reconcile(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.reconciler.run(INFO, dict(body), steps(memo))


@kopf.timer(*RESOURCE, interval=TICK_SECONDS, initial_delay=TICK_SECONDS)
async def tick(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Sleep and expiry are due at a time, not on an event; copied Secrets follow their source (the operator may not
    watch Secrets); a preview not Ready (waiting for quota or a Secret, or its Pods crash-looping: Pods are not watched)
    is looked at again, unless a reconcile ran within the last RETRY_SECONDS."""
    if body.get("metadata", {}).get("deletionTimestamp"):
        return
    status = dict(body.get("status") or {})
    try:
        spec = PreviewEnvironmentSpec.model_validate(dict(body.get("spec") or {}))
    except ValueError:
        return  # Stalled with InvalidSpec until the user changes it
    due = previewenvironment.next_event(spec, status)
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    copies = any(s.copy_from is not None for s in spec.secrets)
    waiting = not ready and not memo.reconciler.ran_within(body["metadata"]["uid"], RETRY_SECONDS)
    if (due is not None and datetime.now(UTC) >= due) or waiting or copies:
        memo.reconciler.run_soon(INFO, dict(body), steps(memo), memo.executor)


@kopf.on.delete(*RESOURCE)
def delete(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Holds the finalizer until the preview namespace, and with it everything the preview made, is gone."""
    obj = dict(body)
    if not previewenvironment.finalize(memo.reconciler.kube, obj):
        raise kopf.TemporaryError(f"waiting for namespace {preview.namespace_name(obj)} to be deleted", delay=2)
    memo.reconciler.forget(body["metadata"]["uid"])


@kopf.on.event("apps", "v1", "deployments", labels={preview.OWNER_LABEL: kopf.PRESENT})
@kopf.on.event(GROUP, VERSION, "modeldeployments", labels={preview.OWNER_LABEL: kopf.PRESENT})
@kopf.on.event("", "v1", "resourcequotas", labels={quota.OWNER_LABEL: kopf.PRESENT})
async def child_changed(type: str, body: kopf.Body, namespace: str | None, memo: kopf.Memo, **kwargs: Any) -> None:
    """Readiness, quota refusals and NamespaceQuota's reservation show up on children first (crash loops: see
    ``tick``). Async: the filter and the coalescing run on the event loop, so only a reconcile that will happen takes a
    thread."""
    if not type or namespace is None or not memo.children.changed("previewenvironment", type, body):
        return
    index: kopf.Index[str, dict[str, Any]] = kwargs["previews_by_namespace"]
    # A snapshot: kopf updates its indexes on this event loop, should anything here ever await.
    for obj in list(index.get(namespace, ())):
        if not obj["metadata"].get("deletionTimestamp"):
            memo.reconciler.run_soon(INFO, obj, steps(memo), memo.executor)
