"""What each kind declares about itself, in one place: the descriptor its reconciler module exports as ``KIND``.

The operator is built from the three descriptors: ``handlers.common.register`` makes each kind's index, its handlers
for its own changes and for every watched child, and ``runtime.kopf_settings`` the server-side label selectors of
those watches; ``plinth explain`` shows the owned children in the order given. A new child kind is one more
``ChildKind`` here (and its builder, RBAC and docs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from plinth.adapters.kubernetes import Manifest
from plinth.operator.api.served import STORAGE
from plinth.operator.api.v1alpha1 import GROUP
from plinth.operator.index import Timing

if TYPE_CHECKING:  # the services name the handlers' types; the descriptors only pass them through
    from plinth.operator.api.v1alpha1 import KindInfo
    from plinth.operator.reconcile import Steps
    from plinth.operator.services import Services


# What only a Pod shows (an image that cannot be pulled, a crash loop, a failing probe, a missing Secret key) is also
# what its kubelet posts a Warning Event about: one watch of those, filtered by the API server (runtime.kopf_settings),
# reaches the Pod's owner at once, where a watch of every Pod would hold every Pod's body. A healthy start posts none.
POD_WARNINGS = ("v1", "events")
POD_WARNINGS_SELECTOR = "type=Warning,involvedObject.kind=Pod"


@dataclass(frozen=True)
class Watch:
    """A child whose events reconcile its owner: the watch's server-side label selector (None for a Plinth kind, whose
    own watch must see every object), the label every such child carries (client-side filter), and how to find the
    owner's index key in the child's body."""

    selector: str | None
    label: str
    owner_key: Callable[[Manifest], str]
    filtered: bool = True
    """Only events that change something the owner reports (``handlers.common.ChildDigests``); off for a kind that
    acts on every change (NamespaceQuota rebalances its total whenever a quota's usage moves)."""
    orphans_wake_all: bool = False
    """A child whose owner is not indexed (it is being garbage-collected) reconciles every owner of the kind: one
    of them may take over what the gone owner held."""


@dataclass(frozen=True)
class ChildKind:
    api_version: str
    kind: str
    plural: str
    owned: bool = True
    """Made by this kind (``plinth explain`` shows it); False for a kind only followed (a preview follows the
    ResourceQuota its NamespaceQuota writes into the preview's namespace)."""
    watch: Watch | None = None

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def api(self) -> tuple[str, str]:
        """(apiVersion, kind), as the Kubernetes adapter takes it."""
        return self.api_version, self.kind


@dataclass(frozen=True)
class KindDescriptor:
    info: KindInfo
    key: Callable[[Manifest], str]
    """The index key its children's events carry (namespace/name, the preview's namespace, the quota's name)."""
    timing: Callable[[Manifest], Timing]
    """When it wants a reconcile no event asks for (``schedule``)."""
    steps: Callable[[Services], Steps]
    """The reconcile steps, given the operator's services (what workloads get from the configuration)."""
    children: tuple[ChildKind, ...]

    @property
    def resource(self) -> tuple[str, str, str]:
        """(group, version, plural) of the kind itself, as kopf's decorators take it."""
        return GROUP, STORAGE.name, self.info.plural

    def owned(self) -> tuple[tuple[str, str], ...]:
        """(apiVersion, kind) of every owned child, in the order ``plinth explain`` shows them."""
        return tuple(c.api for c in self.children if c.owned)

    def watched(self) -> tuple[ChildKind, ...]:
        return tuple(c for c in self.children if c.watch is not None)


def label_selectors(kinds: tuple[KindDescriptor, ...]) -> dict[tuple[str, str], str]:
    """(group, plural) -> the server-side label selector of its watch. kopf joins every selector of a resource with
    AND, so the kinds watching one resource must agree on it."""
    found: dict[tuple[str, str], str | None] = {}
    for kind in kinds:
        for child in kind.watched():
            assert child.watch is not None
            resource = (child.group, child.plural)
            if found.setdefault(resource, child.watch.selector) != child.watch.selector:
                raise ValueError(f"{child.plural}: the kinds watching it disagree on its label selector")
    return {resource: selector for resource, selector in found.items() if selector is not None}
