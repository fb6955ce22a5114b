"""Plinth's own index of each of its kinds: every object as its reconcile reads it, by a key its children's events
carry, and when it wants a reconcile no event asks for.

Not kopf indexes (``@kopf.index``): kopf holds back every object's handlers until every indexed object of every kind has
been listed, and does so with one toggle per listed object, each of which wakes every waiting worker, so a restart's
work grows with the square of the objects, and every listed object's event is held meanwhile. Nothing in Plinth needs
that wait: a restarted operator's resume handlers reconcile every object from its own body, reading its children afresh,
and a child event whose owner is not indexed yet is covered by that owner's resume. So an event handler fills this index
(``handlers.common.follow``) and kopf has no index to wait for."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from plinth.adapters.kubernetes import Manifest
from plinth.operator.api.conversion import internal
from plinth.operator.settings import DIFFBASE_ANNOTATION

# Copies of a spec, kept by kubectl and by kopf for their own diffs; no reconcile reads them.
UNREAD_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration", DIFFBASE_ANNOTATION})


# Objects not Ready at their generation are reconciled again this often, when nothing else has meanwhile (less often
# the longer they wait: ``schedule.retry_interval``).
RETRY_SECONDS = 15


@dataclass(frozen=True)
class Timing:
    """When an object wants a reconcile without an event, worked out from its body once per event."""

    every: float | None = None
    """Again this many seconds after its latest reconcile: not Ready yet, a canary's health gate, copied Secrets."""
    at: float | None = None
    """At this wall-clock time (epoch seconds): a preview falling asleep or expiring."""
    waiting: bool = False
    """``every`` retries an object that waits to become Ready: the longer it has waited, the less often (see
    ``schedule.retry_interval``)."""


@dataclass(frozen=True, slots=True)
class Indexed:
    """An index entry: the object as its reconcile reads it, and when it wants one without an event.

    The body is kept as compact JSON, not as the decoded dicts: about one-sixth of the memory. Each reader decodes
    its own copy (microseconds), so no reconcile can change what the index holds."""

    uid: str
    key: str
    deleting: bool
    """The object has a deletionTimestamp: its finalizer's handler, not a reconcile, is what it needs."""
    timing: Timing
    encoded: str

    def body(self) -> Manifest:
        """The object as its latest event left it, decoded afresh."""
        body: Manifest = json.loads(self.encoded)
        return body


def slim(body: Mapping[str, Any], *, unread: frozenset[str] = UNREAD_ANNOTATIONS) -> Manifest:
    """*body* without managedFields and the annotations in *unread*: often more than half of an object's size, and
    an index holds its entry until the next event. *body* itself is left as it is (it is kopf's)."""
    meta = body["metadata"]
    metadata = {k: v for k, v in meta.items() if k not in ("managedFields", "annotations")}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in unread}
    if annotations:
        metadata["annotations"] = annotations
    return {**body, "metadata": metadata}


class Index:
    """Every object of one kind that the watch has shown and not yet shown deleted, by *key*. Written on kopf's event
    loop; read there (async handlers, the schedule) and from reconciles in executor threads, hence the lock. Readers
    get snapshots."""

    def __init__(self, key: Callable[[Manifest], str], timing: Callable[[Manifest], Timing]) -> None:
        self._key, self._timing = key, timing
        self._entries: dict[str, Indexed] = {}  # by uid
        self._by_key: dict[str, dict[str, Indexed]] = {}  # by key, then uid
        self._guard = threading.Lock()

    def put(self, body: Mapping[str, Any]) -> None:
        """Index the object's latest body, replacing what its previous event left (under whichever key)."""
        obj = internal(slim(body))
        meta = obj["metadata"]
        entry = Indexed(
            uid=meta["uid"],
            key=self._key(obj),
            deleting=bool(meta.get("deletionTimestamp")),
            timing=self._timing(obj),
            encoded=json.dumps(obj, separators=(",", ":")),
        )
        with self._guard:
            self._drop(entry.uid)
            self._entries[entry.uid] = entry
            self._by_key.setdefault(entry.key, {})[entry.uid] = entry

    def drop(self, uid: str) -> None:
        """Forget an object (deleted)."""
        with self._guard:
            self._drop(uid)

    def _drop(self, uid: str) -> None:
        if (known := self._entries.pop(uid, None)) is None:
            return
        same_key = self._by_key[known.key]
        del same_key[uid]
        if not same_key:
            del self._by_key[known.key]

    def clear(self) -> None:
        """Forget every object: the watch stopped (a standby replica), and its next listing fills the index again.
        Objects deleted meanwhile would otherwise stay, and be reconciled back into existence by a resync."""
        with self._guard:
            self._entries.clear()
            self._by_key.clear()

    def under(self, key: str) -> list[Indexed]:
        """The entries indexed under *key* (a snapshot)."""
        with self._guard:
            return list(self._by_key.get(key, {}).values())

    def latest(self, uid: str) -> Manifest | None:
        """The object *uid* as its latest event left it (the reader's own copy), if indexed."""
        with self._guard:
            entry = self._entries.get(uid)
        return entry.body() if entry is not None else None

    def __contains__(self, key: object) -> bool:
        with self._guard:
            return key in self._by_key

    def __iter__(self) -> Iterator[Indexed]:
        """Every entry (a snapshot)."""
        with self._guard:
            return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)
