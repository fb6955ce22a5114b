"""Per kind: ordered steps that turn a parsed spec into desired children and a status."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from plinth.adapters.kubernetes import KubernetesObjects, Manifest
from plinth.operator.blockers import Blocker
from plinth.operator.builders.common import CHILD_KINDS_ANNOTATION
from plinth.operator.conditions import Observation

ChildKey = tuple[str, str]  # (kind, name)


@dataclass
class Outcome:
    """What one reconcile found: status fields (camelCase, besides conditions) and observed conditions."""

    status: dict[str, Any] = field(default_factory=dict)
    observations: list[Observation] = field(default_factory=list)
    # Check again after this many seconds even if nothing changes (e.g. waiting for quota or a Secret to appear);
    # the status is written first.
    requeue_after: float | None = None
    # The one child that keeps the owner from being Ready (status.blockedBy; an Event when it changes).
    blocker: Blocker | None = None


def child_key(manifest: Manifest) -> ChildKey:
    return manifest["kind"], manifest["metadata"]["name"]


def owned_children(
    kube: KubernetesObjects, kinds: list[tuple[str, str]], namespace: str, selector: str
) -> dict[ChildKey, Manifest]:
    """The owner's children of these kinds as they are now, read once per reconcile: applies are skipped for those
    already as desired (``apply(live=...)``) and prunes delete from the same list."""
    found: dict[ChildKey, Manifest] = {}
    for api_version, kind in kinds:
        for child in kube.list(api_version, kind, namespace=namespace, label_selector=selector):
            found[child_key(child)] = child
    return found


def owned_pods(
    kube: KubernetesObjects, live: dict[ChildKey, Manifest], namespace: str, selector: str
) -> list[Manifest]:
    """The owner's Pods (crash loops show only there). Pods come from Deployments: with none among *live*, the
    children as read before this reconcile, there is no Pod yet and nothing is read."""
    if not any(kind == "Deployment" for kind, _ in live):
        return []
    return kube.list("v1", "Pod", namespace=namespace, label_selector=selector)


def listed_kinds(
    candidates: list[tuple[str, str]], wanted: set[str], recorder: Manifest | None
) -> list[tuple[str, str]]:
    """Of the kinds an owner could have made (*candidates*, as (apiVersion, kind)), those a reconcile must read: the
    kinds it wants now and those *recorder* records it still has (``recording``). Without a record (no recorder yet,
    one made by an older Plinth, or the annotation removed) every candidate is read, and the record is written."""
    recorded = ((recorder or {}).get("metadata", {}).get("annotations") or {}).get(CHILD_KINDS_ANNOTATION)
    if recorded is None:
        return list(candidates)
    keep = wanted | set(recorded.split(","))
    return [(api_version, kind) for api_version, kind in candidates if kind in keep]


def recording(manifest: Manifest, kinds: set[str]) -> Manifest:
    """*manifest* carrying the record of the kinds of children its owner has (always, empty too: no record means an
    older Plinth made it)."""
    meta = manifest["metadata"]
    annotations = {**(meta.get("annotations") or {}), CHILD_KINDS_ANNOTATION: ",".join(sorted(kinds))}
    return {**manifest, "metadata": {**meta, "annotations": annotations}}
