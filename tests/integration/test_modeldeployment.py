"""ModelDeployment (stable track) against the real control plane, with the operator running as a subprocess:
children, status truthfulness (never Ready while pods crash-loop), rolling version changes and history, and the
switch between fixed replicas and autoscaling."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Cluster, Operator, create_sample_secrets, wait_for

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]


def _apply(cluster: Cluster, namespace: str, name: str, **spec: Any) -> None:
    body = {
        "apiVersion": "plinth.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"name": "fraud-scorer", "version": "1.4.0", "uri": "s3://models/fraud/1.4.0"},
            "runtime": {"image": "registry.example/model-server:2.1", "port": 8080},
            "replicas": 2,
            **spec,
        },
    }
    # Server-side apply: a field left out of the applied object is removed (replicas=None -> no replicas).
    body["spec"] = {k: v for k, v in body["spec"].items() if v is not None}
    cluster.kubectl("apply", "--server-side", "--field-manager=tests", "-f", "-", input=yaml.safe_dump(body))


def _md(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = cluster.get("-n", namespace, "modeldeployment", name)
    return obj


def _cond(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), None)


def _ready_at(cluster: Cluster, namespace: str, name: str, version: str) -> dict[str, Any]:
    def check() -> Any:
        obj = _md(cluster, namespace, name)
        ready = _cond(obj, "Ready")
        return (
            ready
            and ready["status"] == "True"
            and obj["status"].get("activeVersion") == version
            and obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
            and obj
        )

    result: dict[str, Any] = wait_for(check, timeout=90, what=f"Ready at {version}")
    return result


def test_serving_rollout_crashloop_and_scaling(cluster: Cluster, operator: Operator, namespace: str) -> None:
    name = f"md-{uuid.uuid4().hex[:6]}"
    _apply(cluster, namespace, name)
    obj = _ready_at(cluster, namespace, name, "1.4.0")
    assert obj["status"]["url"] == f"http://{name}.{namespace}.svc.cluster.local:8080"
    assert obj["status"]["readyReplicas"] == 2
    assert [(h["version"], h["outcome"]) for h in obj["status"]["history"]] == [("1.4.0", "Active")]
    dep = cluster.get("-n", namespace, "deployment", name)
    template = dep["spec"]["template"]
    assert template["metadata"]["labels"]["plinth.dev/model-version"] == "1.4.0"
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    env = {e["name"]: e.get("value") for e in template["spec"]["containers"][0]["env"]}
    assert env["MODEL_URI"] == "s3://models/fraud/1.4.0"
    svc = cluster.get("-n", namespace, "service", name)
    assert svc["spec"]["selector"] == {"plinth.dev/modeldeployment": name}
    assert cluster.get("-n", namespace, "pdb", name)["spec"]["maxUnavailable"] == 1
    cluster.kubectl("-n", namespace, "wait", "--for=condition=Ready", f"modeldeployment/{name}", "--timeout=30s")

    # A new version rolls out; history records the change.
    _apply(cluster, namespace, name, model={"name": "fraud-scorer", "version": "1.5.0", "uri": "s3://m/1.5.0"})
    obj = _ready_at(cluster, namespace, name, "1.5.0")
    assert [(h["version"], h["outcome"]) for h in obj["status"]["history"]] == [
        ("1.5.0", "Active"),
        ("1.4.0", "Superseded"),
    ]

    # A broken image: never Ready, Stalled names the problem, the old version keeps serving.
    _apply(
        cluster,
        namespace,
        name,
        model={"name": "fraud-scorer", "version": "1.6.0", "uri": "s3://m/1.6.0"},
        runtime={"image": "registry.example/model-server:crashloop", "port": 8080},
    )

    def stalled() -> Any:
        cond = _cond(_md(cluster, namespace, name), "Stalled")
        return cond and cond["status"] == "True" and cond

    cond = wait_for(stalled, timeout=90, what="Stalled on crash loop")
    assert cond["reason"] == "CrashLoopBackOff"
    obj = _md(cluster, namespace, name)
    assert (_cond(obj, "Ready") or {}).get("status") == "False"
    assert obj["status"]["activeVersion"] == "1.5.0"
    assert "1.6.0" in cond["message"]

    # Fixed back, then autoscaled: an HPA appears; back to one replica: HPA and PDB go.
    _apply(
        cluster,
        namespace,
        name,
        model={"name": "fraud-scorer", "version": "1.6.1", "uri": "s3://m/1.6.1"},
        replicas=None,
        autoscaling={"minReplicas": 1, "maxReplicas": 4, "targetCPUUtilizationPercentage": 70},
    )
    _ready_at(cluster, namespace, name, "1.6.1")
    hpa = cluster.get("-n", namespace, "hpa", name)
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 4)
    # The stable Deployment records them: later reconciles list only the optional kinds it names (or wants).
    record = "plinth.dev/child-kinds"
    annotations = cluster.get("-n", namespace, "deployment", name)["metadata"]["annotations"]
    assert annotations[record] == "HorizontalPodAutoscaler,PodDisruptionBudget"
    _apply(
        cluster, namespace, name, model={"name": "fraud-scorer", "version": "1.6.1", "uri": "s3://m/1.6.1"}, replicas=1
    )
    wait_for(
        lambda: cluster.kubectl("-n", namespace, "get", "hpa", name, check=False).returncode != 0, what="HPA removed"
    )
    wait_for(
        lambda: cluster.kubectl("-n", namespace, "get", "pdb", name, check=False).returncode != 0, what="PDB removed"
    )
    _ready_at(cluster, namespace, name, "1.6.1")
    wait_for(
        lambda: cluster.get("-n", namespace, "deployment", name)["metadata"]["annotations"][record] == "",
        what="the record follows what is left",
    )


def _exists(cluster: Cluster, namespace: str, kind: str, name: str) -> bool:
    return cluster.kubectl("-n", namespace, "get", kind, name, check=False).returncode == 0


def _with_canary(cluster: Cluster, namespace: str, **canary: Any) -> str:
    """A ModelDeployment Ready at 1.4.0, then given a 1.5.0 canary with *canary* on top; returns its name."""
    name = f"md-{uuid.uuid4().hex[:6]}"
    _apply(cluster, namespace, name)
    _ready_at(cluster, namespace, name, "1.4.0")
    _apply(cluster, namespace, name, canary={"version": "1.5.0", "uri": "s3://m/1.5.0", **canary})
    return name


def _canary_phase(cluster: Cluster, namespace: str, name: str, phase: str) -> dict[str, Any]:
    def reached() -> Any:
        obj = _md(cluster, namespace, name)
        return (obj["status"].get("canary") or {}).get("phase") == phase and obj

    obj: dict[str, Any] = wait_for(reached, timeout=90, what=f"canary phase {phase}")
    return obj


def test_canary_is_promoted_after_staying_healthy(cluster: Cluster, operator: Operator, namespace: str) -> None:
    name = _with_canary(cluster, namespace, trafficPercent=20, autoPromote={"after": "3s"})
    obj = _canary_phase(cluster, namespace, name, "Promoted")
    obj = wait_for(
        lambda: (o := _md(cluster, namespace, name))["status"].get("activeVersion") == "1.5.0" and o,
        timeout=90,
        what="promoted version active",
    )
    cond = _cond(obj, "CanaryHealthy")
    assert cond is not None and (cond["status"], cond["reason"]) == ("True", "CanaryPromoted")
    assert [(h["version"], h["outcome"]) for h in obj["status"]["history"]][:2] == [
        ("1.5.0", "Active"),
        ("1.4.0", "Superseded"),
    ]
    wait_for(lambda: not _exists(cluster, namespace, "deployment", f"{name}-canary"), what="canary removed")
    stable = cluster.get("-n", namespace, "deployment", name)
    assert stable["spec"]["template"]["metadata"]["labels"]["plinth.dev/model-version"] == "1.5.0"
    # The user makes the promotion permanent the GitOps way: model.version moves, spec.canary goes.
    _apply(cluster, namespace, name, model={"name": "fraud-scorer", "version": "1.5.0", "uri": "s3://m/1.5.0"})
    obj = _ready_at(cluster, namespace, name, "1.5.0")
    assert obj["status"].get("canary") is None
    assert _cond(obj, "CanaryHealthy") is None


def test_failing_canary_is_rolled_back_and_stable_untouched(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    name = _with_canary(
        cluster,
        namespace,
        image="registry.example/model-server:crashloop",
        trafficPercent=50,
        autoPromote={"after": "1s"},
    )
    obj = _canary_phase(cluster, namespace, name, "RolledBack")
    cond = _cond(obj, "CanaryHealthy")
    assert cond is not None and (cond["status"], cond["reason"]) == ("False", "CanaryRolledBack")
    stalled = _cond(obj, "Stalled")
    assert stalled is not None and stalled["reason"] == "CanaryRolledBack"
    assert (_cond(obj, "Ready") or {}).get("status") == "False"
    assert obj["status"]["activeVersion"] == "1.4.0"
    assert ("1.5.0", "RolledBack") in [(h["version"], h["outcome"]) for h in obj["status"]["history"]]
    wait_for(lambda: not _exists(cluster, namespace, "deployment", f"{name}-canary"), what="canary removed")
    stable = cluster.get("-n", namespace, "deployment", name)
    assert stable["spec"]["template"]["metadata"]["labels"]["plinth.dev/model-version"] == "1.4.0"
    assert stable["status"]["readyReplicas"] == 2
    # Aborting the canary (removing it) brings Ready back.
    _apply(cluster, namespace, name)
    obj = _ready_at(cluster, namespace, name, "1.4.0")
    assert _cond(obj, "Stalled") is None


def test_canary_never_ready_is_rolled_back(cluster: Cluster, operator: Operator, namespace: str) -> None:
    name = _with_canary(
        cluster,
        namespace,
        image="registry.example/model-server:unready",
        trafficPercent=20,
        rollback={"readyTimeout": "3s"},
    )
    obj = _canary_phase(cluster, namespace, name, "RolledBack")
    assert "readyTimeout" in (_cond(obj, "CanaryHealthy") or {}).get("message", "")
    assert obj["status"]["activeVersion"] == "1.4.0"


def test_samples_become_ready_and_deletion_leaves_nothing(cluster: Cluster, operator: Operator, namespace: str) -> None:
    samples = sorted((ROOT / "crds" / "samples").glob("modeldeployment-*.yaml"))
    assert samples
    create_sample_secrets(cluster, namespace)
    for path in samples:
        cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", str(path))
    names = [yaml.safe_load(p.read_text())["metadata"]["name"] for p in samples]
    for name in names:
        cluster.kubectl("-n", namespace, "wait", "--for=condition=Ready", f"modeldeployment/{name}", "--timeout=90s")
    table = cluster.kubectl("-n", namespace, "get", "md").stdout.splitlines()
    assert table[0].split()[:6] == ["NAME", "MODEL", "VERSION", "CANARY", "CANARY%", "AVAILABLE"]
    assert "URL" in table[0].split()
    selector = "app.kubernetes.io/managed-by=plinth"
    assert cluster.get("-n", namespace, "deployments,services", "-l", selector)["items"]
    cluster.kubectl("-n", namespace, "delete", "modeldeployments", "--all", "--wait=true", "--timeout=60s")
    wait_for(
        lambda: not cluster.get("-n", namespace, "deployments,services,hpa,pdb,pods", "-l", selector)["items"],
        timeout=90,
        what="every child garbage-collected",
    )


def test_broken_image_at_create_is_never_ready(cluster: Cluster, operator: Operator, namespace: str) -> None:
    name = f"md-{uuid.uuid4().hex[:6]}"
    _apply(cluster, namespace, name, runtime={"image": "registry.example/model-server:crashloop", "port": 8080})

    def stalled() -> Any:
        obj = _md(cluster, namespace, name)
        cond = _cond(obj, "Stalled")
        return cond and cond["status"] == "True" and obj

    obj = wait_for(stalled, timeout=90, what="Stalled at create")
    stalled_cond = _cond(obj, "Stalled") or {}
    assert stalled_cond["reason"] == "CrashLoopBackOff"
    assert f"Deployment {name}" in stalled_cond["message"]
    assert (_cond(obj, "Ready") or {}).get("status") == "False"
    assert obj["status"].get("activeVersion") is None  # nothing ever served
    waited = cluster.kubectl(
        "-n", namespace, "wait", "--for=condition=Ready", f"modeldeployment/{name}", "--timeout=2s", check=False
    )
    assert waited.returncode != 0
