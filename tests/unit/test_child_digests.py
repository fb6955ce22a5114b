"""Which child events reconcile the owner: only those that change something its status reports."""

from __future__ import annotations

import copy
from typing import Any

from plinth.operator.handlers.common import ChildDigests


def pod(restarts: int = 0, waiting: str | None = None, phase: str = "Running") -> dict[str, Any]:
    state = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    return {
        "kind": "Pod",
        "metadata": {"uid": "p1", "name": "web-1"},
        "status": {"phase": phase, "containerStatuses": [{"name": "web", "restartCount": restarts, "state": state}]},
    }


def deployment(ready: int, generation: int = 1) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"uid": "d1", "name": "web", "generation": generation},
        "status": {"observedGeneration": generation, "replicas": 1, "readyReplicas": ready},
    }


def test_pod_events_without_crash_signals_are_skipped_and_crash_loops_are_not() -> None:
    seen = ChildDigests()
    assert not seen.changed("h", "ADDED", pod(phase="Pending", waiting="ContainerCreating"))
    assert not seen.changed("h", "MODIFIED", pod())
    assert seen.changed("h", "MODIFIED", pod(restarts=1))
    assert not seen.changed("h", "MODIFIED", pod(restarts=1))
    assert seen.changed("h", "MODIFIED", pod(restarts=1, waiting="CrashLoopBackOff"))
    # A crashing pod going away changes the owner's status; a healthy one's deletion does not.
    assert seen.changed("h", "DELETED", pod(restarts=1, waiting="CrashLoopBackOff"))
    assert not seen.changed("h", "DELETED", pod())


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
