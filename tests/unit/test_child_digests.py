"""Which child events reconcile the owner: only those that change something its status reports."""

from __future__ import annotations

import copy
from typing import Any

from plinth.operator.handlers.common import ChildDigests


def deployment(ready: int, generation: int = 1) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"uid": "d1", "name": "web", "generation": generation},
        "status": {"observedGeneration": generation, "replicas": 1, "readyReplicas": ready},
    }


def test_a_deleted_child_always_counts() -> None:
    seen = ChildDigests()
    assert seen.changed("h", "ADDED", deployment(1))
    assert seen.changed("h", "DELETED", deployment(1))  # drift to repair: the owner re-creates it
    assert seen.changed("h", "DELETED", deployment(1))  # also when never seen (the operator restarted meanwhile)


def test_deployment_counts_generation_and_deletion_count() -> None:
    seen = ChildDigests()
    assert seen.changed("h", "ADDED", deployment(0))  # never seen: the owner may be waiting for exactly this
    assert not seen.changed("h", "MODIFIED", deployment(0))
    assert seen.changed("h", "MODIFIED", deployment(1))
    edited = deployment(1, generation=2)  # kubectl scale/edit: drift to repair
    assert seen.changed("h", "MODIFIED", edited)
    assert seen.changed("h", "DELETED", edited)


def test_each_handler_keeps_its_own_view_and_quota_usage_is_ignored() -> None:
    seen = ChildDigests()
    assert seen.changed("a", "ADDED", deployment(0))
    assert seen.changed("b", "ADDED", deployment(0))
    quota = {"kind": "ResourceQuota", "metadata": {"uid": "q"}, "spec": {"hard": {"pods": "10"}}}
    assert seen.changed("a", "ADDED", quota)
    used = copy.deepcopy(quota)
    used["status"] = {"used": {"pods": "3"}}
    assert not seen.changed("a", "MODIFIED", used)
    used["spec"]["hard"]["pods"] = "20"
    assert seen.changed("a", "MODIFIED", used)
