"""Pure builders for ModelDeployment children: the serving Deployment, its Service, HPA and PodDisruptionBudget.

Model credentials (``spec.storage.secretRef``) are mounted read-only into the model server at
``/var/run/secrets/plinth/storage`` (never copied into env vars, which leak into child processes and crash dumps);
``MODEL_NAME``, ``MODEL_VERSION``, ``MODEL_URI`` and ``MODEL_STORAGE_CREDENTIALS_DIR`` tell the server what to load.
"""

from __future__ import annotations

from typing import Any

from plinth.operator.api.v1alpha1 import ModelDeploymentSpec
from plinth.operator.builders.common import child_metadata

OWNER_LABEL = "plinth.dev/modeldeployment"
TRACK_LABEL = "plinth.dev/track"
VERSION_LABEL = "plinth.dev/model-version"
CREDENTIALS_DIR = "/var/run/secrets/plinth/storage"
CONTAINER = "model-server"

Manifest = dict[str, Any]


def selector(owner: Manifest, track: str = "stable") -> dict[str, str]:
    """The Deployment's (immutable) selector: owner and track only, so version changes roll pods, not selectors."""
    return {OWNER_LABEL: owner["metadata"]["name"], TRACK_LABEL: track}


def deployment(owner: Manifest, spec: ModelDeploymentSpec) -> Manifest:
    name, namespace = owner["metadata"]["name"], owner["metadata"]["namespace"]
    model = spec.model
    labels = {
        **selector(owner),
        "app.kubernetes.io/name": model.name,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/version": model.version,
        VERSION_LABEL: model.version,
    }
    env: list[dict[str, Any]] = [
        {"name": "MODEL_NAME", "value": model.name},
        {"name": "MODEL_VERSION", "value": model.version},
        {"name": "MODEL_URI", "value": model.uri},
    ]
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if spec.storage is not None and spec.storage.secret_ref is not None:
        env.append({"name": "MODEL_STORAGE_CREDENTIALS_DIR", "value": CREDENTIALS_DIR})
        volumes.append({"name": "storage-credentials", "secret": {"secretName": spec.storage.secret_ref.name}})
        mounts.append({"name": "storage-credentials", "mountPath": CREDENTIALS_DIR, "readOnly": True})
    env += [e.model_dump(by_alias=True, exclude_none=True) for e in spec.runtime.env]
    port = spec.runtime.port
    ports = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    metrics_port = spec.monitoring.metrics_port if spec.monitoring else None
    if metrics_port is not None and metrics_port != port:
        ports.append({"name": "metrics", "containerPort": metrics_port, "protocol": "TCP"})
    probe = {"tcpSocket": {"port": "http"}, "periodSeconds": 5, "failureThreshold": 3}
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.runtime.image,
        "ports": ports,
        "env": env,
        "readinessProbe": probe,
        "livenessProbe": {**probe, "initialDelaySeconds": 10, "periodSeconds": 10},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if spec.runtime.args:
        container["args"] = list(spec.runtime.args)
    if mounts:
        container["volumeMounts"] = mounts
    if spec.resources is not None:
        container["resources"] = spec.resources.model_dump(by_alias=True, exclude_none=True)
    pod_spec: dict[str, Any] = {"containers": [container]}
    if volumes:
        pod_spec["volumes"] = volumes
    body: dict[str, Any] = {
        "selector": {"matchLabels": selector(owner)},
        # No downtime: a new version's pods must be Ready before an old one goes.
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": {
            "metadata": {"labels": labels, "annotations": {"plinth.dev/model-uri": model.uri, **scrape(spec)}},
            "spec": pod_spec,
        },
    }
    if (replicas := spec.fixed_replicas) is not None:
        body["replicas"] = replicas
    meta = child_metadata(owner, name, namespace, OWNER_LABEL)
    meta["labels"].update({"app.kubernetes.io/name": model.name, VERSION_LABEL: model.version})
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": body}


def scrape(spec: ModelDeploymentSpec) -> dict[str, str]:
    """Prometheus scrape annotations (the convention most scrape configs honour) when ``spec.monitoring`` is set."""
    if spec.monitoring is None:
        return {}
    port = spec.monitoring.metrics_port or spec.runtime.port
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(port),
        "prometheus.io/path": spec.monitoring.metrics_path,
    }


def service(owner: Manifest, spec: ModelDeploymentSpec) -> Manifest:
    """A stable name for clients; it selects every track, so a canary shares traffic by its replica ratio."""
    name = owner["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(owner, name, owner["metadata"]["namespace"], OWNER_LABEL),
        "spec": {
            "selector": {OWNER_LABEL: name},
            "ports": [{"name": "http", "port": spec.runtime.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def autoscaler(owner: Manifest, spec: ModelDeploymentSpec) -> Manifest | None:
    scaling = spec.autoscaling
    if scaling is None:
        return None
    metrics = [
        {"type": "Resource", "resource": {"name": res, "target": {"type": "Utilization", "averageUtilization": pct}}}
        for res, pct in (
            ("cpu", scaling.target_cpu_utilization_percentage),
            ("memory", scaling.target_memory_utilization_percentage),
        )
        if pct is not None
    ]
    name = owner["metadata"]["name"]
    hpa_spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        "minReplicas": scaling.min_replicas,
        "maxReplicas": scaling.max_replicas,
    }
    if metrics:
        hpa_spec["metrics"] = metrics
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": child_metadata(owner, name, owner["metadata"]["namespace"], OWNER_LABEL),
        "spec": hpa_spec,
    }


def disruption_budget(owner: Manifest, spec: ModelDeploymentSpec) -> Manifest | None:
    """Only when more than one replica can run: a PDB on a single replica would block every node drain."""
    most = spec.autoscaling.max_replicas if spec.autoscaling else (spec.fixed_replicas or 0)
    if most <= 1:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": child_metadata(owner, owner["metadata"]["name"], owner["metadata"]["namespace"], OWNER_LABEL),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(owner)}},
    }


def children(owner: Manifest, spec: ModelDeploymentSpec) -> list[Manifest]:
    optional = [autoscaler(owner, spec), disruption_budget(owner, spec)]
    return [deployment(owner, spec), service(owner, spec), *[c for c in optional if c is not None]]
