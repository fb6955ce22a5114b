"""What children of every kind share: managed-by label, owner label and an owner reference for garbage collection;
and the quota-request annotation, the contract between a preview namespace (which writes it) and the NamespaceQuota
that reserves what it declares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plinth.operator.api.served import STORED_API_VERSION
from plinth.operator.api.v1alpha1 import GROUP, parse_quantity
from plinth.operator.settings import MANAGED_BY

# On the object that records it (a preview's namespace, a model's stable Deployment): the kinds of children the owner
# has (wanted, or not pruned yet), so a reconcile lists only those instead of every kind it could ever have made.
CHILD_KINDS_ANNOTATION = "plinth.dev/child-kinds"
# On a preview namespace: what the preview will run, which its NamespaceQuota reserves before the first workload.
QUOTA_REQUEST_ANNOTATION = "plinth.dev/quota-request"


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    meta = owner["metadata"]
    api_version = owner["apiVersion"]
    return {
        # A Plinth owner by the version etcd stores: the garbage collector finds it while that version is served.
        "apiVersion": STORED_API_VERSION if api_version.startswith(f"{GROUP}/") else api_version,
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


def format_request(request: Mapping[str, str]) -> str:
    """``pods=3,requests.cpu=1500m``: the annotation format NamespaceQuota parses with ``parse_request``."""
    return ",".join(f"{k}={v}" for k, v in sorted(request.items()))


def parse_request(text: str | None) -> dict[str, str]:
    """The inverse of ``format_request``; malformed entries are ignored (a namespace annotation is user-editable)."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or not key:
            continue
        try:
            parse_quantity(value)
        except ValueError:
            continue
        out[key] = value
    return out


def with_telemetry(env: list[dict[str, Any]], injected: list[dict[str, str]]) -> list[dict[str, str]]:
    """The injected variables (OTEL_*, a preview's PORT, ...) the container does not set itself: the user's own
    setting wins."""
    own = {e["name"] for e in env}
    return [e for e in injected if e["name"] not in own]
