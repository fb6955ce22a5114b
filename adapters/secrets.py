"""Secrets behind a small interface that keeps their values out of reprs, logs and error messages.

Secret values only travel inside ``StoredSecret.data`` (excluded from its repr) and the manifests written back;
nothing here logs, and failures name the Secret, never its content.
"""

from __future__ import annotations

import base64
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from plinth.adapters.kubernetes import KubernetesObjects, Manifest

ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class StoredSecret:
    """A Secret as read from the API: values stay base64-encoded and out of ``repr``."""

    namespace: str
    name: str
    type: str
    annotations: Mapping[str, str]
    labels: Mapping[str, str]
    data: Mapping[str, str] = field(repr=False)


class Secrets(Protocol):
    """What reconcilers may do with Secrets: read one by name, write one, delete one. No listing: the operator never
    needs to see Secrets it was not pointed at."""

    def read(self, namespace: str, name: str) -> StoredSecret | None: ...

    def write(self, manifest: Manifest, *, current: StoredSecret | None = None) -> None:
        """Apply *manifest*; nothing is sent when *current* (the Secret as just read) already holds it."""
        ...

    def delete(self, namespace: str, name: str) -> bool: ...


class KubernetesSecrets:
    """``Secrets`` on the Kubernetes objects adapter (so calls are counted and traced like any other)."""

    def __init__(self, kube: KubernetesObjects) -> None:
        self._kube = kube

    def read(self, namespace: str, name: str) -> StoredSecret | None:
        found = self._kube.get("v1", "Secret", name, namespace=namespace)
        if found is None:
            return None
        meta = found["metadata"]
        return StoredSecret(
            namespace=namespace,
            name=name,
            type=found.get("type") or "Opaque",
            annotations=dict(meta.get("annotations") or {}),
            labels=dict(meta.get("labels") or {}),
            data=dict(found.get("data") or {}),
        )

    def write(self, manifest: Manifest, *, current: StoredSecret | None = None) -> None:
        if current is None or not _holds(current, manifest):
            self._kube.apply(manifest)

    def delete(self, namespace: str, name: str) -> bool:
        return self._kube.delete("v1", "Secret", name, namespace=namespace)


def _holds(current: StoredSecret, manifest: Manifest) -> bool:
    meta = manifest["metadata"]
    return (
        current.type == (manifest.get("type") or "Opaque")
        and dict(current.data) == (manifest.get("data") or {})
        and (meta.get("labels") or {}).items() <= current.labels.items()
        and (meta.get("annotations") or {}).items() <= current.annotations.items()
    )


def random_value(length: int) -> str:
    """A random value of *length* letters and digits (about 5.95 bits each), base64-encoded for ``Secret.data``."""
    value = "".join(secrets.choice(ALPHABET) for _ in range(length))
    return base64.b64encode(value.encode()).decode()
