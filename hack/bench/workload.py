"""What the benchmark creates: PreviewEnvironment and ModelDeployment manifests, and (through the operator's own pure
builders) exactly the children the operator makes for them, for the physical-limit baseline."""

from __future__ import annotations

import base64
import secrets
import uuid
from typing import Any

from plinth.operator.api.conversion import INTERNAL, convert, internal
from plinth.operator.api.served import STORED_API_VERSION
from plinth.operator.api.v1alpha1 import ModelDeploymentSpec, PreviewEnvironmentSpec
from plinth.operator.builders import model, preview

Manifest = dict[str, Any]
GROUP_VERSION = STORED_API_VERSION  # what users write now: no conversion on the way to etcd
PE_NAMESPACE = "bench-pe"
MD_NAMESPACE = "bench-md"
BASELINE_OWNER_NAMESPACE = "bench-baseline"


def commit() -> str:
    return secrets.token_hex(20)


def preview_spec(index: int, revision: str) -> Manifest:
    """A typical CI preview: one service and one generated Secret (namespace, Secret, Deployment, Service)."""
    return {
        "source": {"repository": "github.com/bench/app", "pullRequest": index + 1, "commit": revision},
        "team": "bench",
        "ttl": "72h",
        "services": [{"name": "web", "image": "registry.invalid/bench/web:1", "port": 8080, "replicas": 1}],
        "secrets": [{"generate": {"name": "session", "keys": ["SECRET_KEY"], "length": 32}}],
    }


def preview_environment(index: int, namespace: str = PE_NAMESPACE) -> Manifest:
    written = {
        "apiVersion": INTERNAL,
        "kind": "PreviewEnvironment",
        "metadata": {"name": f"pe-{index:05d}", "namespace": namespace},
        "spec": preview_spec(index, commit()),
    }
    return convert(written, GROUP_VERSION)


def model_deployment(index: int, namespace: str = MD_NAMESPACE) -> Manifest:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "ModelDeployment",
        "metadata": {"name": f"md-{index:05d}", "namespace": namespace},
        "spec": {
            "model": {"name": "sentiment", "version": "0.3.1", "uri": "https://models.invalid/sentiment/0.3.1/m.onnx"},
            "runtime": {"image": "registry.invalid/bench/model-server:2.1"},
        },
    }


def preview_children(owner: Manifest) -> list[Manifest]:
    """The children the operator applies for *owner* (built by the operator's builders), namespace first."""
    owner = {**owner, "metadata": {**owner["metadata"], "uid": owner["metadata"].get("uid") or str(uuid.uuid4())}}
    spec = PreviewEnvironmentSpec.model_validate(internal(owner)["spec"])
    children = [preview.namespace(owner, spec, preview.quota_request(spec))]
    for entry in spec.secrets:
        if entry.generate is not None:
            values = {key: base64.b64encode(secrets.token_urlsafe(24).encode()).decode() for key in entry.generate.keys}
            children.append(preview.generated_secret(owner, entry.generate.name, values))
    for svc in spec.services:
        children += [preview.deployment(owner, spec, svc, False), preview.service(owner, svc)]
    return children


def model_children(owner: Manifest) -> list[Manifest]:
    owner = {**owner, "metadata": {**owner["metadata"], "uid": owner["metadata"].get("uid") or str(uuid.uuid4())}}
    built: list[Manifest] = model.children(owner, ModelDeploymentSpec.model_validate(internal(owner)["spec"]))
    return built


def is_current_and_ready(obj: Manifest) -> bool:
    """kstatus "Current": status.observedGeneration and the Ready condition's observedGeneration are the object's
    generation, and Ready is True."""
    generation = obj["metadata"].get("generation")
    status = obj.get("status") or {}
    if status.get("observedGeneration") != generation:
        return False
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    return (
        ready is not None
        and ready.get("status") == "True"
        and ready.get("observedGeneration", generation) == generation
    )


def deployment_available(obj: Manifest) -> bool:
    """The Deployment controller observed the latest template and every desired replica of it is available."""
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    want = spec.get("replicas", 1)
    return (
        (status.get("observedGeneration") or 0) >= (meta.get("generation") or 0)
        and (status.get("updatedReplicas") or 0) >= want
        and (status.get("availableReplicas") or 0) >= want
        and (status.get("replicas") or 0) <= want
    )


def template_commit(deployment: Manifest) -> str | None:
    template = ((deployment.get("spec") or {}).get("template") or {}).get("metadata") or {}
    value = (template.get("annotations") or {}).get(preview.COMMIT_ANNOTATION)
    return str(value) if value is not None else None
