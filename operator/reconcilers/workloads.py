"""How a workload's own status is read, the same way by every kind that runs one (a model's tracks, a preview's
services): whether a Deployment fully runs its current template, and which Pods crash-loop."""

from __future__ import annotations

from plinth.adapters.kubernetes import Manifest

CRASH_RESTARTS = 3


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
