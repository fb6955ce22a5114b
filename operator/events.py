"""Plinth's Kubernetes Events (``kubectl describe``, ``kubectl get events``), posted by the operator itself.

Not ``kopf.event``: that works only inside the context kopf sets for its own handlers, and Plinth's reconciles run in
executor threads queued by events, children and the schedule alike. One thread posts them, off the reconcile path:
a reconcile never waits for an Event, as it never waited for kopf's poster."""

from __future__ import annotations

import logging
import queue
import threading
from datetime import UTC, datetime
from typing import Protocol

from plinth.adapters.kubernetes import Manifest
from plinth.operator.settings import FIELD_MANAGER

log = logging.getLogger("plinth")
# The API server accepts longer messages, but `kubectl describe` and most tools show about this much (kopf's bound).
MAX_MESSAGE_LENGTH = 1024
# Events waiting to be posted; beyond this (an API server that stopped answering) new ones are dropped and counted.
QUEUE_CAPACITY = 10_000
# Where the Events of cluster-scoped objects (NamespaceQuota) are kept: Events are namespaced.
CLUSTER_EVENTS_NAMESPACE = "default"


class Creates(Protocol):
    def create(self, manifest: Manifest) -> Manifest: ...


def event_manifest(obj: Manifest, type_: str, reason: str, message: str, *, now: datetime, instance: str) -> Manifest:
    """A core/v1 Event about *obj*, as ``kubectl describe`` lists it under the object."""
    meta = obj["metadata"]
    involved = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta["name"], "uid": meta["uid"]}
    if meta.get("namespace"):
        involved["namespace"] = meta["namespace"]
    if len(message) > MAX_MESSAGE_LENGTH:
        message = message[: MAX_MESSAGE_LENGTH - 3] + "..."
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "generateName": f"{meta['name']}.",
            "namespace": meta.get("namespace") or CLUSTER_EVENTS_NAMESPACE,
        },
        "involvedObject": involved,
        "type": type_,
        "reason": reason,
        "message": message,
        "source": {"component": FIELD_MANAGER},
        "reportingComponent": FIELD_MANAGER,
        "reportingInstance": instance,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


class EventPoster:
    """``emit`` queues an Event and returns at once; one daemon thread posts them in order."""

    def __init__(self, kube: Creates, *, instance: str, capacity: int = QUEUE_CAPACITY) -> None:
        self._kube, self._instance = kube, instance
        self._queue: queue.Queue[Manifest] = queue.Queue(maxsize=capacity)
        self.dropped = 0
        self._thread = threading.Thread(target=self._post_all, name="plinth events", daemon=True)

    def start(self) -> EventPoster:
        self._thread.start()
        return self

    def emit(self, obj: Manifest, type_: str, reason: str, message: str) -> None:
        event = event_manifest(obj, type_, reason, message, now=datetime.now(UTC), instance=self._instance)
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning(f"events: {self.dropped} dropped so far, the API server does not take them fast enough")

    def drain(self, timeout: float) -> bool:
        """Wait until every queued Event was posted (or failed); False when *timeout* passed first."""
        done = threading.Event()

        def wait() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        return done.wait(timeout)

    def _post_all(self) -> None:
        while True:
            event = self._queue.get()
            try:
                self._kube.create(event)
            except Exception as err:  # never the message: it is the object's business, not the log's
                involved = event["involvedObject"]
                if "is being terminated" in str(getattr(err, "body", "")):
                    continue  # the object's namespace is going away, and its Events with it
                log.warning(
                    f"events: cannot post {event['reason']} for {involved['kind']} {involved['name']}:"
                    f" {type(err).__name__} {getattr(err, 'status', '')}".rstrip()
                )
            finally:
                self._queue.task_done()
