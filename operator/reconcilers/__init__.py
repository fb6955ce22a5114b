"""Per kind: ordered steps that turn a parsed spec into desired children and a status."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from plinth.adapters.kubernetes import KubernetesObjects, Manifest
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
