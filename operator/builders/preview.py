"""Pure builders for PreviewEnvironment children: the preview namespace and what runs in it.

Children live in a namespace of their own, which a namespaced PreviewEnvironment cannot own through an owner
reference; they carry labels naming their PreviewEnvironment instead, and go away with the namespace, which the
PreviewEnvironment's finalizer deletes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from plinth.operator.api.conversion import INTERNAL, convert
from plinth.operator.api.served import STORED_API_VERSION
from plinth.operator.api.v1alpha1 import (
    PreviewEnvironmentSpec,
    PreviewModel,
    PreviewService,
    parse_quantity,
)
from plinth.operator.builders.common import QUOTA_REQUEST_ANNOTATION, format_request, with_telemetry
from plinth.operator.settings import MANAGED_BY
from plinth.operator.telemetry import NO_TELEMETRY, Telemetry

OWNER_LABEL = "plinth.dev/previewenvironment"
OWNER_NAMESPACE_LABEL = "plinth.dev/previewenvironment-namespace"
OWNER_UID_LABEL = "plinth.dev/previewenvironment-uid"
TEAM_LABEL = "plinth.dev/team"
PREVIEW_LABEL = "plinth.dev/preview"
REPOSITORY_LABEL = "plinth.dev/repository"
PULL_REQUEST_LABEL = "plinth.dev/pull-request"
SERVICE_LABEL = "plinth.dev/service"
COMMIT_ANNOTATION = "plinth.dev/commit"
COPIED_FROM_ANNOTATION = "plinth.dev/copied-from"
# What the preview will run, on its namespace: NamespaceQuota reserves it out of its total before the preview's
# workloads are created (see reconcilers/quotasplit.py).
# Preview namespaces enforce the restricted Pod Security Standard: a pull request's code is untrusted.
POD_SECURITY = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}
CONTAINER = "app"

Manifest = dict[str, Any]


def _digest(text: str, size: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:size]


def _label_value(text: str) -> str:
    """*text* as a label value: at most 63 of [-._a-zA-Z0-9], alphanumeric at both ends (hash-suffixed if cut)."""
    clean = re.sub(r"[^-._a-zA-Z0-9]", "-", text)
    if len(clean) > 63:
        clean = f"{clean[:54]}-{_digest(text)}"
    return clean.strip("-._") or _digest(text)


def _dns_label(text: str, limit: int = 63) -> str:
    label = re.sub(r"[^a-z0-9-]", "-", text.lower()).strip("-")
    if len(label) > limit:
        label = f"{label[: limit - 9].rstrip('-')}-{_digest(text)}"
    return label


def namespace_name(owner: Manifest) -> str:
    """``preview-<name>-<pr>-<hash>``: deterministic, at most 58 characters, and unique per PreviewEnvironment (the
    hash covers its namespace and name), so two teams' previews of the same repository and pull request never meet."""
    meta = owner["metadata"]
    pr = owner["spec"]["source"]["pullRequest"]
    identity = _digest(f"{meta['namespace']}/{meta['name']}")
    return f"preview-{meta['name'][:30].rstrip('-')}-{pr}-{identity}"


def owner_labels(owner: Manifest) -> dict[str, str]:
    """Labels that lead from any child back to its PreviewEnvironment (children cannot carry owner references)."""
    meta = owner["metadata"]
    return {**MANAGED_BY, OWNER_LABEL: meta["name"], OWNER_NAMESPACE_LABEL: meta["namespace"]}


def namespace(owner: Manifest, spec: PreviewEnvironmentSpec, quota_request: Mapping[str, str]) -> Manifest:
    labels = {
        **owner_labels(owner),
        OWNER_UID_LABEL: owner["metadata"]["uid"],
        TEAM_LABEL: spec.team,
        PREVIEW_LABEL: "true",
        REPOSITORY_LABEL: _label_value(spec.source.repository),
        PULL_REQUEST_LABEL: str(spec.source.pull_request),
        **POD_SECURITY,
    }
    annotations = {
        "plinth.dev/repository": spec.source.repository,
        QUOTA_REQUEST_ANNOTATION: format_request(quota_request),
    }
    if spec.source.commit:
        annotations[COMMIT_ANNOTATION] = spec.source.commit
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace_name(owner), "labels": labels, "annotations": annotations},
    }


def host_label(name: str, pull_request: int) -> str:
    """``<name>-<pr>``, or the name alone when it already ends with ``-<pr>`` (``shop-pr-1842``, not
    ``shop-pr-1842-1842``): the host names the pull request once."""
    suffix = f"-{pull_request}"
    return name if name.endswith(suffix) else f"{name}{suffix}"


def hosts(owner: Manifest, spec: PreviewEnvironmentSpec) -> dict[str, str]:
    """Service name -> public host. The first exposed service gets ``<name>-<pr>.<domain>``; each other exposed
    service ``<service>-<name>-<pr>.<domain>`` (one DNS label, so one wildcard record covers them all)."""
    if spec.ingress is None:
        return {}
    base = host_label(owner["metadata"]["name"], spec.source.pull_request)
    exposed = [s.name for s in spec.services if s.expose]
    return {
        svc: f"{_dns_label(base if i == 0 else f'{svc}-{base}')}.{spec.ingress.domain}" for i, svc in enumerate(exposed)
    }


def urls(owner: Manifest, spec: PreviewEnvironmentSpec) -> dict[str, str]:
    scheme = "https" if spec.ingress is not None and spec.ingress.tls else "http"
    return {svc: f"{scheme}://{host}" for svc, host in hosts(owner, spec).items()}


def _meta(owner: Manifest, name: str, extra: Mapping[str, str] | None = None) -> Manifest:
    return {"name": name, "namespace": namespace_name(owner), "labels": {**owner_labels(owner), **(extra or {})}}


def platform_env(spec: PreviewEnvironmentSpec, service: PreviewService) -> list[dict[str, str]]:
    """What a preview's container is told about itself, as PaaS platforms do: the port to listen on (``PORT``,
    the one its Service and probe use), its service name and the commit it was built from."""
    env = [
        {"name": "PORT", "value": str(service.port)},
        {"name": "PLINTH_SERVICE", "value": service.name},
    ]
    if spec.source.commit:
        env.append({"name": "PLINTH_COMMIT", "value": spec.source.commit})
    return env


def deployment(
    owner: Manifest,
    spec: PreviewEnvironmentSpec,
    service: PreviewService,
    sleeping: bool,
    telemetry: Telemetry = NO_TELEMETRY,
) -> Manifest:
    selector = {OWNER_LABEL: owner["metadata"]["name"], SERVICE_LABEL: service.name}
    env = [e.model_dump(by_alias=True, exclude_none=True) for e in service.env]
    env += with_telemetry(
        env, platform_env(spec, service) + telemetry.env(service.name, namespace_name(owner), spec.source.commit)
    )
    probe: dict[str, Any] = (
        {"httpGet": {"path": service.readiness_path, "port": "http"}}
        if service.readiness_path
        else {"tcpSocket": {"port": "http"}}
    )
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": service.image,
        "ports": [{"name": "http", "containerPort": service.port, "protocol": "TCP"}],
        "env": env,
        "readinessProbe": {**probe, "periodSeconds": 5, "failureThreshold": 3},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if service.resources is not None:
        container["resources"] = service.resources.model_dump(by_alias=True, exclude_none=True)
    annotations = {COMMIT_ANNOTATION: spec.source.commit} if spec.source.commit else {}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(owner, service.name, {SERVICE_LABEL: service.name}),
        "spec": {
            "replicas": 0 if sleeping else service.replicas,
            "selector": {"matchLabels": selector},
            # A push replaces pods instead of surging: a preview never needs more quota than it declared.
            "strategy": {"type": "Recreate"},
            "template": {
                "metadata": {"labels": {**MANAGED_BY, **selector}, "annotations": annotations},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                },
            },
        },
    }


def service(owner: Manifest, svc: PreviewService) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(owner, svc.name, {SERVICE_LABEL: svc.name}),
        "spec": {
            "selector": {OWNER_LABEL: owner["metadata"]["name"], SERVICE_LABEL: svc.name},
            "ports": [{"name": "http", "port": svc.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def ingress(owner: Manifest, spec: PreviewEnvironmentSpec) -> Manifest | None:
    """One Ingress with a rule per exposed service, or None without ingress, a gateway, or exposed services."""
    if spec.ingress is None or spec.ingress.gateway is not None:
        return None
    by_host = hosts(owner, spec)
    if not by_host:
        return None
    ports = {s.name: s.port for s in spec.services}
    rules = [
        {
            "host": host,
            "http": {
                "paths": [
                    {
                        "path": "/",
                        "pathType": "Prefix",
                        "backend": {"service": {"name": svc, "port": {"number": ports[svc]}}},
                    }
                ]
            },
        }
        for svc, host in by_host.items()
    ]
    body: dict[str, Any] = {"rules": rules}
    if spec.ingress.class_name:
        body["ingressClassName"] = spec.ingress.class_name
    if spec.ingress.tls:
        body["tls"] = [{"hosts": list(by_host.values())}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _meta(owner, "preview"),
        "spec": body,
    }


def http_routes(owner: Manifest, spec: PreviewEnvironmentSpec) -> list[Manifest]:
    """Gateway API alternative to the Ingress: one HTTPRoute per exposed service, attached to spec.ingress.gateway."""
    if spec.ingress is None or spec.ingress.gateway is None:
        return []
    gateway = spec.ingress.gateway
    ports = {s.name: s.port for s in spec.services}
    return [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": _meta(owner, svc, {SERVICE_LABEL: svc}),
            "spec": {
                "parentRefs": [{"name": gateway.name, "namespace": gateway.namespace}],
                "hostnames": [host],
                "rules": [{"backendRefs": [{"name": svc, "port": ports[svc]}]}],
            },
        }
        for svc, host in hosts(owner, spec).items()
    ]


def model_deployment(owner: Manifest, model: PreviewModel, raw_spec: Manifest, sleeping: bool) -> Manifest:
    """The model's ModelDeployment in the preview namespace: the user's spec as written, scaled to 0 while asleep."""
    spec = dict(raw_spec)
    if sleeping:
        spec.pop("autoscaling", None)
        spec.pop("canary", None)
        spec["replicas"] = 0
    built = {"apiVersion": INTERNAL, "kind": "ModelDeployment", "metadata": _meta(owner, model.name), "spec": spec}
    return convert(built, STORED_API_VERSION)


def copied_secret(owner: Manifest, name: str, source: Manifest) -> Manifest:
    """A copy of *source* (type and data; never its metadata) named *name*, annotated with where it came from."""
    src_meta = source["metadata"]
    meta = _meta(owner, name)
    meta["annotations"] = {COPIED_FROM_ANNOTATION: f"{src_meta['namespace']}/{src_meta['name']}"}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": source.get("type") or "Opaque",
        "data": dict(source.get("data") or {}),
    }


def generated_secret(owner: Manifest, name: str, data: Mapping[str, str]) -> Manifest:
    """A Secret of generated values (*data* is already base64-encoded)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(owner, name),
        "type": "Opaque",
        "data": dict(data),
    }


# -- quota demand -------------------------------------------------------------------------------------------------

_TRACKED = ("pods", "services", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory")


def quota_request(
    spec: PreviewEnvironmentSpec,
    default_request: Mapping[str, str] | None = None,
    default_limit: Mapping[str, str] | None = None,
    sleeping: bool = False,
) -> dict[str, str]:
    """What the preview runs at most, in ResourceQuota terms: pods, services and CPU/memory requests and limits.

    Containers without resources get the namespace defaults (the NamespaceQuota's LimitRange). A model's rolling
    update surges one pod, so each model counts one replica more. Asleep, a preview needs nothing but its Services.
    """
    totals: dict[str, Decimal] = dict.fromkeys(_TRACKED, Decimal(0))
    totals["services"] = Decimal(len(spec.services) + len(spec.models))
    if sleeping:
        return _format(totals)

    def add(replicas: int, requests: Mapping[str, str] | None, limits: Mapping[str, str] | None) -> None:
        totals["pods"] += replicas
        for res in ("cpu", "memory"):
            own_limit = (limits or {}).get(res)
            limit = own_limit or (default_limit or {}).get(res)
            # Kubernetes defaults a missing request to the container's own limit, else to the LimitRange's
            # defaultRequest, else to its default limit.
            request = (requests or {}).get(res) or own_limit or (default_request or {}).get(res) or limit
            for prefix, amount in (("requests", request), ("limits", limit)):
                if amount is not None:
                    totals[f"{prefix}.{res}"] += replicas * parse_quantity(amount)

    for svc in spec.services:
        res = svc.resources
        add(svc.replicas, res.requests if res else None, res.limits if res else None)
    for model in spec.models:
        mspec = model.spec
        replicas = mspec.autoscaling.max_replicas if mspec.autoscaling else (mspec.fixed_replicas or 0)
        canary = 1 if mspec.canary is not None else 0
        res = mspec.resources
        add(replicas + 1 + canary if replicas else 0, res.requests if res else None, res.limits if res else None)
    return _format(totals)


def _format(totals: Mapping[str, Decimal]) -> dict[str, str]:
    out = {}
    for key, value in totals.items():
        if value == value.to_integral_value():
            out[key] = str(int(value))
        else:
            out[key] = f"{int((value * 1000).to_integral_value())}m"
    return out
