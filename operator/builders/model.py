"""Pure builders for ModelDeployment children: the serving Deployment, its Service, HPA and PodDisruptionBudget.

Model credentials (``spec.storage.secretRef``) are mounted read-only into the model server at
``/var/run/secrets/plinth/storage`` (never copied into env vars, which leak into child processes and crash dumps);
``MODEL_NAME``, ``MODEL_VERSION``, ``MODEL_URI`` and ``MODEL_STORAGE_CREDENTIALS_DIR`` tell the server what to load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from plinth.operator.api.v1alpha1 import ModelDeploymentSpec
from plinth.operator.builders.common import child_metadata, with_telemetry
from plinth.operator.settings import MANAGED_BY, SERVING_IMAGE
from plinth.operator.telemetry import NO_TELEMETRY, Telemetry

OWNER_LABEL = "plinth.dev/modeldeployment"
TRACK_LABEL = "plinth.dev/track"
VERSION_LABEL = "plinth.dev/model-version"
CREDENTIALS_DIR = "/var/run/secrets/plinth/storage"
AUTH_DIR = "/var/run/secrets/plinth/auth"
CONTAINER = "model-server"

Manifest = dict[str, Any]


def selector(owner: Manifest, track: str = "stable") -> dict[str, str]:
    """The Deployment's (immutable) selector: owner and track only, so version changes roll pods, not selectors."""
    return {OWNER_LABEL: owner["metadata"]["name"], TRACK_LABEL: track}


@dataclass(frozen=True)
class Track:
    """What one Deployment of a ModelDeployment serves: the stable track, or the canary."""

    name: str
    version: str
    uri: str
    image: str
    replicas: int | None  # None: an HPA owns the replica count
    plinth_server: bool = False  # Plinth's own server: its probes, read-only root and metrics are known


def stable_track(spec: ModelDeploymentSpec, promoted: bool = False, server_image: str = SERVING_IMAGE) -> Track:
    """The stable track serves spec.model, or the canary once it has been promoted (while spec.canary names it)."""
    if promoted and spec.canary is not None:
        canary = spec.canary
        image = canary.image or spec.runtime.image
        return Track("stable", canary.version, canary.uri, image or server_image, spec.fixed_replicas, image is None)
    image = spec.runtime.image
    return Track(
        "stable", spec.model.version, spec.model.uri, image or server_image, spec.fixed_replicas, image is None
    )


def canary_track(spec: ModelDeploymentSpec, stable_replicas: int, server_image: str = SERVING_IMAGE) -> Track | None:
    """The canary's replicas approximate trafficPercent of the Service's endpoints: c / (s + c) ≈ p / 100."""
    canary = spec.canary
    if canary is None or canary.traffic_percent == 0:
        return None
    percent = canary.traffic_percent
    wanted = stable_replicas * percent / (100 - percent) if percent < 100 else stable_replicas
    replicas = max(1, round(wanted))
    image = canary.image or spec.runtime.image
    return Track(CANARY_TRACK, canary.version, canary.uri, image or server_image, replicas, image is None)


CANARY_TRACK = "canary"


def deployment_name(owner: Manifest, track: str) -> str:
    name: str = owner["metadata"]["name"]
    return name if track == "stable" else f"{name}-{track}"


def _server_inputs(
    spec: ModelDeploymentSpec, track: Track
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The model server's environment, volumes and mounts before the user's own env: what to load, the Secrets it
    reads as files (storage credentials, bearer tokens) and, for Plinth's server, its limits and writable /tmp."""
    env: list[dict[str, Any]] = [
        {"name": "MODEL_NAME", "value": spec.model.name},
        {"name": "MODEL_VERSION", "value": track.version},
        {"name": "MODEL_URI", "value": track.uri},
    ]
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if spec.storage is not None and spec.storage.secret_ref is not None:
        env.append({"name": "MODEL_STORAGE_CREDENTIALS_DIR", "value": CREDENTIALS_DIR})
        volumes.append({"name": "storage-credentials", "secret": {"secretName": spec.storage.secret_ref.name}})
        mounts.append({"name": "storage-credentials", "mountPath": CREDENTIALS_DIR, "readOnly": True})
    if spec.runtime.format is not None:
        env.append({"name": "MODEL_FORMAT", "value": spec.runtime.format})
    if spec.auth is not None:
        env.append({"name": "AUTH_TOKENS_FILE", "value": AUTH_DIR})
        volumes.append({"name": "auth-tokens", "secret": {"secretName": spec.auth.secret_ref.name}})
        mounts.append({"name": "auth-tokens", "mountPath": AUTH_DIR, "readOnly": True})
    if spec.rate_limit is not None:
        env.append({"name": "RATE_LIMIT_RPS", "value": f"{spec.rate_limit.requests_per_second:g}"})
        if spec.rate_limit.burst is not None:
            env.append({"name": "RATE_LIMIT_BURST", "value": str(spec.rate_limit.burst)})
    if track.plinth_server:
        env.append({"name": "PORT", "value": str(spec.runtime.port)})
        # The root filesystem is read-only: downloaded artifacts go to an emptyDir (MODEL_CACHE_DIR is under /tmp).
        volumes.append({"name": "tmp", "emptyDir": {}})
        mounts.append({"name": "tmp", "mountPath": "/tmp"})
    return env, volumes, mounts


def deployment(
    owner: Manifest, spec: ModelDeploymentSpec, track: Track | None = None, telemetry: Telemetry = NO_TELEMETRY
) -> Manifest:
    track = track or stable_track(spec)
    name, namespace = owner["metadata"]["name"], owner["metadata"]["namespace"]
    model = spec.model
    labels = {
        **MANAGED_BY,
        **selector(owner, track.name),
        "app.kubernetes.io/name": model.name,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/version": track.version,
        VERSION_LABEL: track.version,
    }
    env, volumes, mounts = _server_inputs(spec, track)
    env += [e.model_dump(by_alias=True, exclude_none=True) for e in spec.runtime.env]
    env += with_telemetry(env, telemetry.env(owner["metadata"]["name"], namespace, track.version))
    port = spec.runtime.port
    ports = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    metrics_port = spec.effective_monitoring.metrics_port if spec.effective_monitoring else None
    if metrics_port is not None and metrics_port != port:
        ports.append({"name": "metrics", "containerPort": metrics_port, "protocol": "TCP"})
    if track.plinth_server:
        # Ready once the model answered its warm-up inference; live while the process serves, loading included.
        probe: dict[str, Any] = {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "periodSeconds": 2}
        liveness: dict[str, Any] = {"httpGet": {"path": "/v2/health/live", "port": "http"}, "periodSeconds": 10}
    else:
        probe = {"tcpSocket": {"port": "http"}, "periodSeconds": 5}
        liveness = {**probe, "initialDelaySeconds": 10, "periodSeconds": 10}
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": track.image,
        "ports": ports,
        "env": env,
        "readinessProbe": {**probe, "failureThreshold": 3},
        "livenessProbe": {**liveness, "failureThreshold": 3},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            # Pod Security "restricted" (enforced in preview namespaces): the image must not run as root.
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
            **({"readOnlyRootFilesystem": True} if track.plinth_server else {}),
        },
    }
    if spec.runtime.args:
        container["args"] = list(spec.runtime.args)
    if mounts:
        container["volumeMounts"] = mounts
    if spec.resources is not None:
        container["resources"] = spec.resources.model_dump(by_alias=True, exclude_none=True)
    # A model server has no business with the Kubernetes API: no service account token in its pods.
    pod_spec: dict[str, Any] = {"automountServiceAccountToken": False, "containers": [container]}
    if volumes:
        pod_spec["volumes"] = volumes
    body: dict[str, Any] = {
        "selector": {"matchLabels": selector(owner, track.name)},
        # No downtime: a new version's pods must be Ready before an old one goes.
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": {
            "metadata": {"labels": labels, "annotations": {"plinth.dev/model-uri": track.uri, **scrape(spec)}},
            "spec": pod_spec,
        },
    }
    if track.replicas is not None:
        body["replicas"] = track.replicas
    meta = child_metadata(owner, deployment_name(owner, track.name), namespace, OWNER_LABEL)
    meta["labels"].update({"app.kubernetes.io/name": model.name, VERSION_LABEL: track.version, TRACK_LABEL: track.name})
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": body}


def scrape(spec: ModelDeploymentSpec) -> dict[str, str]:
    """Prometheus scrape annotations (the convention most scrape configs honour) when the server is monitored:
    ``spec.monitoring``, or Plinth's server by default."""
    monitoring = spec.effective_monitoring
    if monitoring is None:
        return {}
    port = monitoring.metrics_port or spec.runtime.port
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(port),
        "prometheus.io/path": monitoring.metrics_path,
    }


def service(owner: Manifest, spec: ModelDeploymentSpec) -> Manifest:
    """A stable name for clients; it selects every track, so a canary shares traffic by its replica ratio."""
    name = owner["metadata"]["name"]
    ports = [{"name": "http", "port": spec.runtime.port, "targetPort": "http", "protocol": "TCP"}]
    metrics_port = spec.effective_monitoring.metrics_port if spec.effective_monitoring else None
    if metrics_port is not None and metrics_port != spec.runtime.port:
        ports.append({"name": "metrics", "port": metrics_port, "targetPort": "metrics", "protocol": "TCP"})
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(owner, name, owner["metadata"]["namespace"], OWNER_LABEL),
        "spec": {"selector": {OWNER_LABEL: name}, "ports": ports},
    }


def service_monitor(owner: Manifest, spec: ModelDeploymentSpec) -> Manifest:
    """Prometheus Operator scrape config for the model's Service (when its CRD is installed and monitoring is set)."""
    name = owner["metadata"]["name"]
    monitoring = spec.effective_monitoring
    distinct = monitoring is not None and monitoring.metrics_port not in (None, spec.runtime.port)
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": child_metadata(owner, name, owner["metadata"]["namespace"], OWNER_LABEL),
        "spec": {
            "selector": {"matchLabels": {OWNER_LABEL: name}},
            "endpoints": [
                {
                    "port": "metrics" if distinct else "http",
                    "path": monitoring.metrics_path if monitoring else "/metrics",
                    "interval": "30s",
                }
            ],
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


def children(
    owner: Manifest, spec: ModelDeploymentSpec, stable: Track | None = None, telemetry: Telemetry = NO_TELEMETRY
) -> list[Manifest]:
    """The stable track's Deployment, the Service, and the HPA and PDB where they apply (the canary is separate)."""
    optional = [autoscaler(owner, spec), disruption_budget(owner, spec)]
    return [deployment(owner, spec, stable, telemetry), service(owner, spec), *[c for c in optional if c is not None]]


def track_service(owner: Manifest, spec: ModelDeploymentSpec, track: str) -> Manifest:
    """``<name>-<track>``: one track's pods only, as a weighted HTTPRoute backend."""
    name = owner["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(owner, f"{name}-{track}", owner["metadata"]["namespace"], OWNER_LABEL),
        "spec": {
            "selector": selector(owner, track),
            "ports": [{"name": "http", "port": spec.runtime.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def http_route(owner: Manifest, spec: ModelDeploymentSpec, canary_percent: int | None) -> Manifest:
    """The model's Gateway API HTTPRoute: attached to spec.route's Gateway (north-south) and, while a canary runs, to
    the model's Service (GAMMA, east-west, for a mesh that implements it). With a canary (*canary_percent* set) the
    requests are split by weight between the stable and canary track Services; without, all go to the Service."""
    name, port = owner["metadata"]["name"], spec.runtime.port
    parents: list[dict[str, Any]] = []
    if spec.route is not None:
        parents.append({"name": spec.route.gateway.name, "namespace": spec.route.gateway.namespace})
    if canary_percent is not None:
        parents.append({"group": "", "kind": "Service", "name": name, "port": port})
    if canary_percent is None:
        backends = [{"name": name, "port": port}]
    else:
        backends = [
            {"name": f"{name}-stable", "port": port, "weight": 100 - canary_percent},
            {"name": f"{name}-canary", "port": port, "weight": canary_percent},
        ]
    rule: dict[str, Any] = {"backendRefs": backends}
    if spec.route is not None and spec.route.path_prefix != "/":
        rule["matches"] = [{"path": {"type": "PathPrefix", "value": spec.route.path_prefix}}]
    body: dict[str, Any] = {"parentRefs": parents, "rules": [rule]}
    if spec.route is not None and spec.route.hostnames:
        body["hostnames"] = list(spec.route.hostnames)
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": child_metadata(owner, name, owner["metadata"]["namespace"], OWNER_LABEL),
        "spec": body,
    }


def prometheus_rule(owner: Manifest, spec: ModelDeploymentSpec, active_version: str) -> Manifest | None:
    """The model's SLO alerts (spec.monitoring.slo) as a PrometheusRule; None when no objective is set."""
    slo = spec.effective_monitoring.slo if spec.effective_monitoring else None
    if slo is None or (slo.error_ratio_query is None and slo.latency_query is None):
        return None
    meta = owner["metadata"]
    name, namespace = meta["name"], meta["namespace"]

    def fill(query: str) -> str:
        return (
            query.replace("{{name}}", name).replace("{{namespace}}", namespace).replace("{{version}}", active_version)
        )

    labels = {"namespace": namespace, "modeldeployment": name, "severity": "warning"}
    max_errors = 0.01 if slo.max_error_ratio is None else slo.max_error_ratio
    max_latency = 1.0 if slo.max_latency_seconds is None else slo.max_latency_seconds
    rules = []
    if slo.error_ratio_query is not None:
        rules.append(
            {
                "alert": "ModelErrorRatioHigh",
                "expr": f"({fill(slo.error_ratio_query)}) > {max_errors:g}",
                "for": slo.for_,
                "labels": labels,
                "annotations": {
                    "summary": f"ModelDeployment {namespace}/{name}: error ratio above {max_errors:g}",
                    "description": "Failed requests of model {{ $labels.modeldeployment }}: "
                    "{{ $value | humanizePercentage }}.",
                },
            }
        )
    if slo.latency_query is not None:
        rules.append(
            {
                "alert": "ModelLatencyHigh",
                "expr": f"({fill(slo.latency_query)}) > {max_latency:g}",
                "for": slo.for_,
                "labels": labels,
                "annotations": {
                    "summary": f"ModelDeployment {namespace}/{name}: latency above {max_latency:g}s",
                    "description": "Latency of model {{ $labels.modeldeployment }}: {{ $value | humanizeDuration }}.",
                },
            }
        )
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": child_metadata(owner, name, namespace, OWNER_LABEL),
        "spec": {"groups": [{"name": f"plinth-modeldeployment-{name}", "rules": rules}]},
    }
