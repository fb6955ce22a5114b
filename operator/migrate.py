"""``plinth migrate-storage``: every stored Plinth object rewritten once at the storage version, then each CRD's
``status.storedVersions`` trimmed to it, so an older version can later stop being served without losing anything.

What kube-storage-version-migrator does, for Plinth's three CRDs: an update that changes nothing makes the API
server encode the object at the CRD's current storage version. Idempotent: a CRD whose storedVersions is the
storage version alone needs nothing and is not touched."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from plinth.adapters.kubernetes import rewrite_all, set_stored_versions, stored_versions
from plinth.operator.api.served import STORAGE
from plinth.operator.api.v1alpha1 import GROUP, KINDS


@dataclass(frozen=True)
class Migrated:
    crd: str
    before: list[str] | None  # storedVersions found; None: the CRD is not installed
    rewritten: int

    def describe(self) -> str:
        if self.before is None:
            return f"{self.crd}: not installed"
        if self.before == [STORAGE.name]:
            return f"{self.crd}: every object is stored at {STORAGE.api_version} already"
        return (
            f"{self.crd}: {self.rewritten} object(s) rewritten at {STORAGE.api_version};"
            f" storedVersions {self.before} -> [{STORAGE.name}]"
        )


def migrate_storage(api_client: Any) -> list[Migrated]:
    done = []
    for info in KINDS:
        before = stored_versions(api_client, info.crd_name)
        rewritten = 0
        if before is not None and before != [STORAGE.name]:
            rewritten = rewrite_all(api_client, GROUP, STORAGE.name, info.plural)
            set_stored_versions(api_client, info.crd_name, [STORAGE.name])
        done.append(Migrated(info.crd_name, before, rewritten))
    return done
