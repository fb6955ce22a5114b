"""ModelDeployment builders and the pure parts of its reconciler: golden manifests, rollout and health checks."""

from __future__ import annotations

from typing import Any

from plinth.operator.api.v1alpha1 import ModelDeploymentSpec
from plinth.operator.builders import model
from plinth.operator.reconcilers.modeldeployment import crash_looping, next_history, rollout

OWNER = {
    "apiVersion": "plinth.dev/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "fraud", "namespace": "ml", "uid": "u-1"},
}
META = {
    "name": "fraud",
    "namespace": "ml",
    "labels": {"app.kubernetes.io/managed-by": "plinth", "plinth.dev/modeldeployment": "fraud"},
    "ownerReferences": [
        {
            "apiVersion": "plinth.dev/v1alpha1",
            "kind": "ModelDeployment",
            "name": "fraud",
            "uid": "u-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ],
}


def _spec(**extra: Any) -> ModelDeploymentSpec:
    base: dict[str, Any] = {
        "model": {"name": "fraud-scorer", "version": "1.4.0", "uri": "s3://models/fraud/1.4.0"},
        "runtime": {"image": "registry.example/server:2.1", "port": 9000, "args": ["--workers", "2"]},
    }
    return ModelDeploymentSpec.model_validate({**base, **extra})


def test_deployment_golden() -> None:
    dep = model.deployment(OWNER, _spec(replicas=3, storage={"secretRef": {"name": "s3-creds"}}))
    assert dep["metadata"]["labels"] == {
        **META["labels"],
        "app.kubernetes.io/name": "fraud-scorer",
        "plinth.dev/model-version": "1.4.0",
        "plinth.dev/track": "stable",
    }
    spec = dep["spec"]
    assert spec["replicas"] == 3
    assert spec["selector"] == {"matchLabels": {"plinth.dev/modeldeployment": "fraud", "plinth.dev/track": "stable"}}
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    pod = spec["template"]
    assert pod["metadata"]["labels"]["app.kubernetes.io/version"] == "1.4.0"
    assert pod["metadata"]["annotations"] == {"plinth.dev/model-uri": "s3://models/fraud/1.4.0"}
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "registry.example/server:2.1"
    assert container["args"] == ["--workers", "2"]
    assert container["ports"] == [{"name": "http", "containerPort": 9000, "protocol": "TCP"}]
    assert container["env"] == [
        {"name": "MODEL_NAME", "value": "fraud-scorer"},
        {"name": "MODEL_VERSION", "value": "1.4.0"},
        {"name": "MODEL_URI", "value": "s3://models/fraud/1.4.0"},
        {"name": "MODEL_STORAGE_CREDENTIALS_DIR", "value": model.CREDENTIALS_DIR},
    ]
    # Credentials are a read-only mounted Secret, never copied into env values.
    assert container["volumeMounts"] == [
        {"name": "storage-credentials", "mountPath": model.CREDENTIALS_DIR, "readOnly": True}
    ]
    assert pod["spec"]["volumes"] == [{"name": "storage-credentials", "secret": {"secretName": "s3-creds"}}]
    assert container["readinessProbe"]["tcpSocket"] == {"port": "http"}


def test_autoscaling_leaves_replicas_to_the_hpa() -> None:
    spec = _spec(autoscaling={"minReplicas": 2, "maxReplicas": 5, "targetCPUUtilizationPercentage": 60})
    assert "replicas" not in model.deployment(OWNER, spec)["spec"]
    hpa = model.autoscaler(OWNER, spec)
    assert hpa is not None
    assert hpa["spec"] == {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "fraud"},
        "minReplicas": 2,
        "maxReplicas": 5,
        "metrics": [
            {
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}},
            }
        ],
    }
    assert model.disruption_budget(OWNER, spec) is not None


def test_single_replica_has_no_pdb_and_no_hpa() -> None:
    spec = _spec(replicas=1)
    assert model.autoscaler(OWNER, spec) is None
    assert model.disruption_budget(OWNER, spec) is None
    assert [c["kind"] for c in model.children(OWNER, spec)] == ["Deployment", "Service"]


def test_service_selects_every_track() -> None:
    svc = model.service(OWNER, _spec())
    assert svc["metadata"] == META
    assert svc["spec"] == {
        "selector": {"plinth.dev/modeldeployment": "fraud"},
        "ports": [{"name": "http", "port": 9000, "targetPort": "http", "protocol": "TCP"}],
    }


def _pod(name: str, **container: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"containerStatuses": [container]}}


def test_crash_looping_pods() -> None:
    pods = [
        _pod("ok", restartCount=0, state={"running": {}}),
        _pod("loop", restartCount=1, state={"waiting": {"reason": "CrashLoopBackOff"}}),
        _pod("flaky", restartCount=3, state={"running": {}}),
        {"metadata": {"name": "pending"}, "status": {}},
    ]
    assert crash_looping(pods) == ["flaky", "loop"]


def _deployment(generation: int, observed: int, **status: int) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": 2},
        "status": {"observedGeneration": observed, **status},
    }


def test_rollout_progress() -> None:
    assert rollout(_deployment(2, 1, replicas=2, updatedReplicas=2, availableReplicas=2), 2)[0] is False
    # An old pod is still there.
    assert rollout(_deployment(2, 2, replicas=3, updatedReplicas=2, availableReplicas=2), 2)[0] is False
    assert rollout(_deployment(2, 2, replicas=2, updatedReplicas=1, availableReplicas=2), 2) == (
        False,
        "1/2 replicas of the desired version available",
    )
    assert rollout(_deployment(2, 2, replicas=2, updatedReplicas=2, availableReplicas=2), 2)[0] is True


def test_history() -> None:
    first = next_history([], "1.0.0", "t1")
    assert first == [{"version": "1.0.0", "startedAt": "t1", "outcome": "Active"}]
    assert next_history(first, "1.0.0", "t2") == first  # no change, no new entry
    assert next_history(first, None, "t2") == first
    second = next_history(first, "1.1.0", "t2")
    assert second == [
        {"version": "1.1.0", "startedAt": "t2", "outcome": "Active"},
        {"version": "1.0.0", "startedAt": "t1", "outcome": "Superseded", "endedAt": "t2"},
    ]
    many = first
    for i in range(30):
        many = next_history(many, f"2.0.{i}", f"t{i}")
    assert len(many) == 20 and many[0]["version"] == "2.0.29"


def test_monitoring_adds_scrape_annotations_and_metrics_port() -> None:
    assert "prometheus.io/scrape" not in model.deployment(OWNER, _spec())["spec"]["template"]["metadata"]["annotations"]
    dep = model.deployment(OWNER, _spec(monitoring={"metricsPort": 9090, "metricsPath": "/stats"}))
    pod = dep["spec"]["template"]
    assert pod["metadata"]["annotations"] == {
        "plinth.dev/model-uri": "s3://models/fraud/1.4.0",
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9090",
        "prometheus.io/path": "/stats",
    }
    assert pod["spec"]["containers"][0]["ports"][1] == {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}
    same_port = model.deployment(OWNER, _spec(monitoring={}))
    assert same_port["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "9000"
    assert len(same_port["spec"]["template"]["spec"]["containers"][0]["ports"]) == 1
