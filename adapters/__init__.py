"""Adapters: small interfaces between reconcilers and the outside world (Kubernetes objects, secrets, telemetry)."""

from plinth.adapters.kubernetes import Conflict, KubernetesObjects, Manifest

__all__ = ["Conflict", "KubernetesObjects", "Manifest"]
