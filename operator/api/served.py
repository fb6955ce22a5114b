"""Which API versions the CRDs serve, which one etcd stores, and where the API server sends conversions.

One place for the policy docs/api-versions.md describes; ``crdgen`` writes it into the CRDs, and the operator reads
and writes its kinds at the storage version (no conversion on its own watches) and works on them as
``conversion.internal`` gives them."""

from __future__ import annotations

from dataclasses import dataclass

from plinth.operator.api import v1alpha1, v1beta1
from plinth.operator.api.v1alpha1 import KindInfo

# crds/ send conversions here: the operator (or `plinth webhook`) on the API server's machine. The chart points its
# copies at the operator's Service instead. The caBundle is written by whoever serves (webhook.set_ca_bundle).
WEBHOOK_URL = "https://127.0.0.1:9443/convert"


@dataclass(frozen=True)
class ServedVersion:
    name: str
    kinds: tuple[KindInfo, ...]
    storage: bool = False
    deprecated: bool = False

    @property
    def api_version(self) -> str:
        return f"{v1alpha1.GROUP}/{self.name}"


#: Newest first, as the API server prefers them (kubectl's default version).
SERVED = (
    ServedVersion(v1beta1.VERSION, v1beta1.KINDS, storage=True),
    ServedVersion(v1alpha1.VERSION, v1alpha1.KINDS, deprecated=True),
)
STORAGE = next(v for v in SERVED if v.storage)
#: The version the operator reads and writes its own kinds at: etcd's, so its watches need no conversion.
STORED_API_VERSION = STORAGE.api_version


def kind_at(version: ServedVersion, kind: str) -> KindInfo:
    """The KindInfo of *kind* at *version*; KeyError if the version has no such kind."""
    for info in version.kinds:
        if info.kind == kind:
            return info
    raise KeyError(kind)
