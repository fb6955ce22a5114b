"""Metadata every child shares: managed-by label, owner label and an owner reference for garbage collection."""

from __future__ import annotations

from typing import Any

from plinth.operator.settings import MANAGED_BY

# On the object that records it (a preview's namespace, a model's stable Deployment): the kinds of children the owner
# has (wanted, or not pruned yet), so a reconcile lists only those instead of every kind it could ever have made.
CHILD_KINDS_ANNOTATION = "plinth.dev/child-kinds"


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_metadata(owner: dict[str, Any], name: str, namespace: str | None, owner_label: str) -> dict[str, Any]:
    """Metadata for a child of *owner*: labelled so it can be found (and pruned) by owner, and owned for GC."""
    meta: dict[str, Any] = {
        "name": name,
        "labels": {**MANAGED_BY, owner_label: owner["metadata"]["name"]},
        "ownerReferences": [owner_reference(owner)],
    }
    if namespace is not None:
        meta["namespace"] = namespace
    return meta
