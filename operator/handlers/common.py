"""The handlers every kind gets from its descriptor (``register``), and what the per-kind handler modules share:
reconciling an owner from an event about something else."""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import kopf
from plinth.operator.conditions import not_ready
from plinth.operator.index import Index, Indexed
from plinth.operator.kinds import ChildKind, KindDescriptor
from plinth.operator.schedule import ScheduledKind
from plinth.operator.services import Services

# Conditions of a Deployment that no owner's status depends on (see status_digest).
DEPLOYMENT_PROGRESS_CONDITIONS = frozenset({"Available", "Progressing"})


def register(kind: KindDescriptor) -> ScheduledKind:
    """Everything a kind's descriptor asks for: its index (``follow``), the handlers of its own changes
    (``reconcile_on_change``) and one per watched child (``follow_child``). Returns what the schedule and the kind's
    own further handlers use."""
    index = Index(key=kind.key, timing=kind.timing)
    follow(kind.resource, index)
    scheduled = ScheduledKind(kind.info, index, kind.steps)
    reconcile_on_change(kind.resource, scheduled)
    for child in kind.watched():
        follow_child(scheduled, child)
    return scheduled


def follow_child(kind: ScheduledKind, child: ChildKind) -> None:
    """Register the handler of *child*'s events (server-side label selector in ``runtime.kopf_settings``): an event
    that changes something the owner reports queues the owner's reconcile (filtered and coalesced on the event loop,
    see ``WorkQueue.run_soon``). Async, so only a reconcile that will happen takes a thread."""
    watch = child.watch
    assert watch is not None
    handler = f"child-{kind.info.plural}-{child.plural}"

    @kopf.on.event(child.group, child.version, child.plural, labels={watch.label: kopf.PRESENT}, id=handler)
    async def child_changed(type: str, body: kopf.Body, memo: Services, **_: Any) -> None:
        if not type:  # None is the initial listing: resumed owners read their children anyway
            return
        if watch.filtered and not memo.children.changed(handler, type, body):
            return
        owners = kind.index.under(watch.owner_key(dict(body)))
        if not owners and watch.orphans_wake_all:
            owners = list(kind.index)
        for entry in owners:
            if not entry.deleting:
                kind.reconcile_soon(memo, entry.uid)


def follow(resource: tuple[str, str, str], index: Index) -> None:
    """Register an async event handler for *resource* that keeps *index* (see index.py) following the watch, notes
    when each event reaches us (for the queue-lag metric) and drops the operator's memory of an object once it is
    gone. kopf runs event handlers before an object's change handlers, so a created, updated or resumed object is
    indexed before its reconcile is queued (and that reconcile reads this index).

    Gone means the DELETED event: ModelDeployment and NamespaceQuota hold no finalizer (their children are
    garbage-collected), so kopf calls no delete handler for them."""

    @kopf.on.event(*resource, id=f"received-{resource[2]}")
    async def received(type: str, body: kopf.Body, memo: Services, **_: Any) -> None:
        uid = body["metadata"]["uid"]
        if type == "DELETED":
            index.drop(uid)
            memo.reconciler.forget(uid)
            memo.queue.forget(uid)
        else:
            index.put(body)
            memo.reconciler.received(uid, body["metadata"].get("resourceVersion"), body.get("status"))


def reconcile_on_change(resource: tuple[str, str, str], kind: ScheduledKind) -> None:
    """Register *kind*'s handlers for its own changes (created, spec updated, resumed by a starting operator): each
    queues the object's reconcile (``ScheduledKind.reconcile_soon``) and returns.

    Async, because a sync handler keeps kopf's worker for its object, with the event's whole body and kopf's
    bookkeeping of it, until an executor thread is free: at a restart or in a burst, that is every object at once,
    and the largest share of the operator's memory. The queued reconcile reads the index's copy when it starts, so a
    spec change that arrives meanwhile is covered by it. kopf sees the handler succeed at once: a reconcile that asks
    to be retried is queued again after its delay by ``WorkQueue.run_soon``, and the schedule retries an object that
    is not Ready."""

    @kopf.on.create(*resource, id=f"create-{resource[2]}")
    @kopf.on.update(*resource, id=f"update-{resource[2]}", field="spec")
    @kopf.on.resume(*resource, id=f"resume-{resource[2]}")
    async def changed(body: kopf.Body, memo: Services, **_: Any) -> None:
        kind.reconcile_soon(memo, body["metadata"]["uid"])  # follow() indexed it a moment ago


def warned_pod(type: str | None, body: Mapping[str, Any]) -> tuple[str, str] | None:
    """(namespace, name) of the Pod a new or repeated Warning Event is about; None for the initial listing (a starting
    operator resumes every object anyway), a deletion, or anything else."""
    involved = body.get("involvedObject") or {}
    if type not in ("ADDED", "MODIFIED") or body.get("type") != "Warning" or involved.get("kind") != "Pod":
        return None
    namespace, name = involved.get("namespace"), involved.get("name")
    return (namespace, name) if namespace and name else None


def wake_not_ready(kind: ScheduledKind, entries: Iterable[Indexed], memo: Services) -> None:
    """Reconcile each of *entries* that is not Ready (a Ready owner's Pods are healthy enough, or its Deployment's
    counts will say otherwise)."""
    for entry in entries:
        if not entry.deleting and not_ready(entry.body()):
            kind.reconcile_soon(memo, entry.uid)


def status_digest(body: kopf.Body | dict[str, Any]) -> Hashable:
    """What an owner's status can depend on in a child's state. Events that leave it unchanged (a Deployment's
    rollout bookkeeping, the quota controller counting usage) need no reconcile of the owner: most child events.

    Pods are not watched at all: readiness reaches the owner through its Deployment's counts, and what only a Pod
    shows through its kubelet's Warning Events (``kinds.POD_WARNINGS``) and the retries every object not Ready gets.
    Watching them cost the largest share of the operator's memory (every Pod's full body, managedFields included,
    held while its events queue) and of its event handling in a burst (several events per Pod start)."""
    meta, status = body.get("metadata") or {}, body.get("status") or {}
    if body.get("kind") == "ResourceQuota":  # the quota gate reads the limits, not the usage
        return tuple(sorted(((body.get("spec") or {}).get("hard") or {}).items()))
    conditions = tuple(
        (c.get("type"), c.get("status"), c.get("reason"), c.get("message"), c.get("observedGeneration"))
        for c in status.get("conditions") or []
        # A Deployment's Available and Progressing conditions restate its counts in words, and change reason and
        # message at each step of a rollout; owners read the counts (and ReplicaFailure, the quota's refusal).
        if body.get("kind") != "Deployment" or c.get("type") not in DEPLOYMENT_PROGRESS_CONDITIONS
    )
    counts = tuple(
        status.get(k)
        for k in ("observedGeneration", "replicas", "readyReplicas", "updatedReplicas", "availableReplicas")
    )
    # Labels and annotations: metadata drift (a removed owner label) has no generation to show it.
    metadata = tuple(sorted((meta.get("labels") or {}).items())), tuple(sorted((meta.get("annotations") or {}).items()))
    return meta.get("generation"), bool(meta.get("deletionTimestamp")), counts, conditions, metadata


class ChildDigests:
    """The last ``status_digest`` seen per child (and per handler watching it), so a child event reconciles its owner
    only when something the owner reports has changed. A child never seen counts as changed. Only the digest's hash
    is kept, not the digest, which would hold strings of every watched child's body (its labels and annotations);
    two different digests with the same 64-bit hash are not a practical concern (the owner's resync would catch the
    one change missed)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], int] = {}
        self._guard = threading.Lock()

    def changed(self, handler: str, event_type: str, body: kopf.Body | dict[str, Any]) -> bool:
        key = (handler, body["metadata"]["uid"])
        digest = hash(status_digest(body))
        with self._guard:
            if event_type == "DELETED":
                self._seen.pop(key, None)
                return True
            before = self._seen.get(key)
            self._seen[key] = digest
        return before is None or before != digest
