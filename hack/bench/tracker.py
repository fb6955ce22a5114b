"""Steady-state bookkeeping: each spec change, when it was sent, when its Deployment had rolled it out, and when the
PreviewEnvironment reported Ready for its generation. Pure (fed watch events), so it is unit-tested."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from workload import deployment_available, is_current_and_ready, template_commit

Manifest = dict[str, Any]


@dataclass
class Change:
    owner: str  # namespace/name of the PreviewEnvironment
    deployment: str  # namespace/name of its Deployment
    generation: int  # the generation the change creates
    revision: str  # the commit it sets
    sent: float
    ready: float | None = None
    rolled_out: float | None = None
    ready_before_rollout: bool = False


def _key(obj: Manifest) -> str:
    return f"{obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"


@dataclass
class ChangeTracker:
    changes: list[Change] = field(default_factory=list)
    _by_owner: dict[str, Change] = field(default_factory=dict)
    _by_deployment: dict[str, Change] = field(default_factory=dict)

    def sent(self, change: Change) -> None:
        self.changes.append(change)
        self._by_owner[change.owner] = change
        self._by_deployment[change.deployment] = change

    def failed(self, owner: str) -> None:
        change = self._by_owner.pop(owner, None)
        if change is not None:
            self.changes.remove(change)
            self._by_deployment.pop(change.deployment, None)

    def generation_is(self, owner: str, generation: int) -> None:
        """The API server answered the patch with this generation (normally the expected one)."""
        if (change := self._by_owner.get(owner)) is not None:
            change.generation = generation

    def pending(self, owner: str) -> bool:
        return owner in self._by_owner

    @property
    def open(self) -> int:
        return len(self._by_owner)

    def owner_event(self, obj: Manifest, when: float, deployment: Callable[[str], Manifest | None]) -> None:
        change = self._by_owner.get(_key(obj))
        if change is None or (obj["metadata"].get("generation") or 0) < change.generation:
            return
        if not is_current_and_ready(obj):
            return
        change.ready = when
        del self._by_owner[change.owner]
        dep = deployment(change.deployment)
        rolled = dep is not None and template_commit(dep) == change.revision and deployment_available(dep)
        change.ready_before_rollout = change.rolled_out is None and not rolled

    def deployment_event(self, obj: Manifest, when: float) -> None:
        change = self._by_deployment.get(_key(obj))
        if change is None or template_commit(obj) != change.revision or not deployment_available(obj):
            return
        change.rolled_out = when
        del self._by_deployment[change.deployment]

    def lags(self) -> list[float]:
        return [c.ready - c.sent for c in self.changes if c.ready is not None]

    def rollout_lags(self) -> list[float]:
        return [c.rolled_out - c.sent for c in self.changes if c.rolled_out is not None]

    def operator_overhead(self) -> list[float]:
        """Per change: Ready seen minus rollout seen; what the operator adds on top of the Deployment controller."""
        return [c.ready - c.rolled_out for c in self.changes if c.ready is not None and c.rolled_out is not None]

    def early(self) -> int:
        return sum(1 for c in self.changes if c.ready_before_rollout)
