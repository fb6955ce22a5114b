"""Adapters: small interfaces between reconcilers and the outside world (Kubernetes objects, secrets, telemetry)."""

from plinth.adapters.kubernetes import KubernetesObjects, Manifest

__all__ = ["KubernetesObjects", "Manifest"]
