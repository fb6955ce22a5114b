"""Which child events reconcile the owner: only those that change something its status reports."""

from __future__ import annotations

import asyncio
import copy
from types import SimpleNamespace
from typing import Any

from plinth.operator.handlers import modeldeployment as md_handlers
from plinth.operator.handlers import previewenvironment as pe_handlers
from plinth.operator.handlers.common import ChildDigests, warned_pod


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


def _warning(namespace: str, pod: str, type_: str = "Warning", kind: str = "Pod") -> dict[str, Any]:
    return {"type": type_, "reason": "BackOff", "involvedObject": {"kind": kind, "namespace": namespace, "name": pod}}


def test_only_new_warnings_about_pods_count() -> None:
    assert warned_pod("ADDED", _warning("ml", "iris-7d9f8c-x2abc")) == ("ml", "iris-7d9f8c-x2abc")
    assert warned_pod("MODIFIED", _warning("ml", "iris-7d9f8c-x2abc")) == ("ml", "iris-7d9f8c-x2abc")  # repeated
    assert warned_pod(None, _warning("ml", "p")) is None  # the initial listing: resumed objects reconcile anyway
    assert warned_pod("DELETED", _warning("ml", "p")) is None
    assert warned_pod("ADDED", _warning("ml", "p", type_="Normal")) is None
    assert warned_pod("ADDED", _warning("ml", "web", kind="Deployment")) is None


def _owner(kind: str, namespace: str, name: str, uid: str, ready: bool) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": "True" if ready else "False", "observedGeneration": 1}]
    metadata = {"uid": uid, "name": name, "namespace": namespace, "generation": 1}
    return {"kind": kind, "metadata": metadata, "spec": {}, "status": {"conditions": conditions}}


def test_a_pod_warning_reconciles_its_not_ready_owner_only() -> None:
    """A model's Pods are found by their Deployment's name (the stable track's or the canary's), a preview's by its
    namespace; a Ready owner is left alone."""
    queued: list[str] = []
    reconciler = SimpleNamespace(run_soon=lambda info, uid, latest, steps, executor: queued.append(uid))
    memo = SimpleNamespace(
        queue=reconciler, executor=None, telemetry=None, settings=SimpleNamespace(serving_image="serve:1")
    )
    models = [
        _owner("ModelDeployment", "ml", "iris", "md-iris", ready=False),
        _owner("ModelDeployment", "ml", "fraud", "md-fraud", ready=True),
        _owner("ModelDeployment", "ml", "iris-v2", "md-iris-v2", ready=False),
    ]
    preview = _owner("PreviewEnvironment", "ci", "shop", "pe-shop", ready=False)
    preview["spec"] = {"source": {"repository": "github.com/a/b", "pullRequest": 7}}
    for body in models:
        md_handlers.INDEX.put(body)
    pe_handlers.INDEX.put(preview)
    target = next(iter(e.key for e in pe_handlers.INDEX))
    try:
        for pod in ("iris-7d9f8c-x2abc", "iris-canary-5c6b7d-q1w2e", "fraud-6f7a8b-z9y8x"):
            asyncio.run(md_handlers.pod_warned(type="ADDED", body=_warning("ml", pod), memo=memo))
        assert queued == ["md-iris", "md-iris"], "iris's stable and canary Pods, not Ready fraud's, not iris-v2"
        queued.clear()
        asyncio.run(pe_handlers.pod_warned(type="ADDED", body=_warning(target, "web-1a2b3c-d4e5f"), memo=memo))
        asyncio.run(pe_handlers.pod_warned(type="ADDED", body=_warning("elsewhere", "web-1-2"), memo=memo))
        assert queued == ["pe-shop"]
    finally:
        md_handlers.INDEX.clear()
        pe_handlers.INDEX.clear()
