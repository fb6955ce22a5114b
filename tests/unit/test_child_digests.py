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


def test_a_deployment_rollout_reconciles_its_owner_on_counts_not_on_wording() -> None:
    """The Deployment controller's status updates during one rollout: the owner is reconciled when a count it reports
    (or the quota's refusal) changes, not when Available/Progressing only re-word them."""
    seen = ChildDigests()
    dep = deployment(0)
    dep["status"]["conditions"] = [
        {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "no"},
        {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "message": "progressing"},
    ]
    assert seen.changed("h", "ADDED", dep)
    reworded = copy.deepcopy(dep)
    reworded["status"]["conditions"][1].update(reason="NewReplicaSetAvailable", message="has successfully progressed")
    assert not seen.changed("h", "MODIFIED", reworded)
    refused = copy.deepcopy(reworded)
    refused["status"]["conditions"].append(
        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "exceeded quota: pods"}
    )
    assert seen.changed("h", "MODIFIED", refused)
    ready = copy.deepcopy(refused)
    ready["status"]["readyReplicas"] = 1
    assert seen.changed("h", "MODIFIED", ready)
    model = {"kind": "ModelDeployment", "metadata": {"uid": "m"}, "status": dep["status"]}
    assert seen.changed("h", "ADDED", model)
    model_reworded = {"kind": "ModelDeployment", "metadata": {"uid": "m"}, "status": reworded["status"]}
    assert seen.changed("h", "MODIFIED", model_reworded)  # a preview reports its models' Ready message as is
