"""ModelDeployment (stable track): serving Deployment, Service, HPA and PDB; status that tells the truth.

Steps: build children -> apply (server-side) -> prune the optional ones no longer wanted (HPA, PDB) -> observe the
Deployment and its Pods -> status. ``Ready`` requires every desired replica of the *desired version* to be
available; crash-looping pods make the object Stalled (the image or model must be fixed), never Ready.
The version that keeps serving during a rollout is ``status.activeVersion``; it moves only when the rollout is
complete, and ``status.history`` records each change.
"""

from __future__ import annotations

from typing import Any

from plinth.adapters.kubernetes import KubernetesObjects, Manifest
from plinth.operator.api.v1alpha1 import ModelDeploymentSpec, format_time
from plinth.operator.builders import model
from plinth.operator.conditions import RECONCILING, STALLED, Observation
from plinth.operator.reconcilers import Outcome

OPTIONAL_KINDS = (("autoscaling/v2", "HorizontalPodAutoscaler"), ("policy/v1", "PodDisruptionBudget"))
CRASH_RESTARTS = 3
HISTORY_LIMIT = 20


def crash_looping(pods: list[Manifest], restarts: int = CRASH_RESTARTS) -> list[str]:
    """Names of pods whose containers crash-loop or restarted at least *restarts* times."""
    bad = []
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") == "CrashLoopBackOff" or (cs.get("restartCount") or 0) >= restarts:
                bad.append(pod["metadata"]["name"])
                break
    return sorted(bad)


def rollout(deployment: Manifest, desired_replicas: int | None) -> tuple[bool, str]:
    """Whether the Deployment fully runs its current template, and a message saying how far it is."""
    meta, status = deployment["metadata"], deployment.get("status") or {}
    want = desired_replicas if desired_replicas is not None else (deployment.get("spec") or {}).get("replicas", 1)
    updated = status.get("updatedReplicas") or 0
    available = status.get("availableReplicas") or 0
    total = status.get("replicas") or 0
    if (status.get("observedGeneration") or 0) < (meta.get("generation") or 0):
        return False, "the Deployment controller has not observed the latest template yet"
    done = updated >= want and available >= want and total <= want
    return done, f"{min(updated, available)}/{want} replicas of the desired version available"


def next_history(previous: list[dict[str, Any]], active: str | None, now: str) -> list[dict[str, Any]]:
    """History with *active* as the current entry (older active entries marked Superseded), newest first."""
    history = [dict(h) for h in previous]
    if active is None or (history and history[0]["version"] == active and history[0]["outcome"] == "Active"):
        return history
    for entry in history:
        if entry["outcome"] == "Active":
            entry["outcome"], entry["endedAt"] = "Superseded", now
    return [{"version": active, "startedAt": now, "outcome": "Active"}, *history][:HISTORY_LIMIT]


def reconcile(kube: KubernetesObjects, obj: Manifest, spec: ModelDeploymentSpec) -> Outcome:
    meta = obj["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    desired = model.children(obj, spec)
    applied = {c["kind"]: kube.apply(c) for c in desired}
    wanted = {c["kind"] for c in desired}
    owner_selector = f"{model.OWNER_LABEL}={name}"
    for api_version, kind in OPTIONAL_KINDS:
        if kind not in wanted:
            for child in kube.list(api_version, kind, namespace=namespace, label_selector=owner_selector):
                kube.delete(api_version, kind, child["metadata"]["name"], namespace=namespace)

    deployment = applied["Deployment"]
    pods = kube.list("v1", "Pod", namespace=namespace, label_selector=owner_selector)
    done, progress = rollout(deployment, spec.fixed_replicas)
    previous = obj.get("status") or {}
    active = spec.model.version if done else previous.get("activeVersion")
    dep_status = deployment.get("status") or {}
    status: dict[str, Any] = {
        "url": f"http://{name}.{namespace}.svc.cluster.local:{spec.runtime.port}",
        "activeVersion": active,
        "replicas": dep_status.get("replicas") or 0,
        "readyReplicas": dep_status.get("readyReplicas") or 0,
        "history": next_history(previous.get("history") or [], active, format_time()),
    }
    crashing = crash_looping(pods)
    if crashing:
        observations = [
            Observation(
                STALLED,
                True,
                "CrashLoopBackOff",
                f"model server pods crash-loop ({', '.join(crashing[:5])}): check the image, args and model "
                f"URI of version {spec.model.version}",
            )
        ]
    elif not done:
        observations = [
            Observation(
                RECONCILING, True, "RolloutInProgress", f"version {spec.model.version}: {progress} (Deployment {name})"
            )
        ]
    else:
        observations = [
            Observation(
                "Ready", True, "Serving", f"version {spec.model.version} serving on {status['readyReplicas']} replicas"
            )
        ]
    return Outcome(status=status, observations=observations)
