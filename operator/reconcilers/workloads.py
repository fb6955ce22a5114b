"""How a workload's own status is read, the same way by every kind that runs one (a model's tracks, a preview's
services): whether a Deployment fully runs its current template, which Pods crash-loop, and the Services' endpoints."""

from __future__ import annotations

from collections.abc import Collection

from plinth.adapters.kubernetes import KubernetesObjects, Manifest
from plinth.operator import reasons
from plinth.operator.blockers import SERVICE_NAME_LABEL

CRASH_RESTARTS = 3
ENDPOINT_SLICE = ("discovery.k8s.io/v1", "EndpointSlice")
#: Look again this soon when a ready workload's Service has no endpoint yet (EndpointSlices are not watched, and the
#: EndpointSlice controller usually catches up within a second of the Deployment's status).
ENDPOINTS_RECHECK_SECONDS = 2.0


def endpoint_slices(kube: KubernetesObjects, namespace: str, services: Collection[str]) -> list[Manifest]:
    """The EndpointSlices of these Services, in one list (none when there is no Service to look at)."""
    if not services:
        return []
    selector = f"{SERVICE_NAME_LABEL} in ({','.join(sorted(services))})"
    return kube.list(*ENDPOINT_SLICE, namespace=namespace, label_selector=selector)


def crash_looping(pods: list[Manifest], restarts: int = CRASH_RESTARTS) -> list[str]:
    """Names of pods whose containers crash-loop or restarted at least *restarts* times."""
    bad = []
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") == reasons.CRASH_LOOP_BACK_OFF or (cs.get("restartCount") or 0) >= restarts:
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
