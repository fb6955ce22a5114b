"""ModelDeployment builders and the pure parts of its reconciler: golden manifests, rollout and health checks."""

from __future__ import annotations

from typing import Any

from plinth.operator.api.v1alpha1 import ModelDeploymentSpec
from plinth.operator.builders import model
from plinth.operator.reconcilers.modeldeployment import next_history
from plinth.operator.reconcilers.workloads import crash_looping, rollout

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
            "apiVersion": "plinth.dev/v1beta1",  # the version etcd stores, whichever the owner was read at
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


def _canary_spec(percent: int = 20, after: str | None = "10m", replicas: int = 2) -> ModelDeploymentSpec:
    canary: dict[str, Any] = {"version": "1.5.0", "uri": "s3://m/1.5.0", "trafficPercent": percent}
    if after:
        canary["autoPromote"] = {"after": after}
    return _spec(replicas=replicas, canary=canary)


def test_canary_replicas_approximate_the_traffic_share() -> None:
    assert model.canary_track(_spec(), 2) is None
    assert model.canary_track(_canary_spec(percent=0), 2) is None
    track = model.canary_track(_canary_spec(percent=20), 8)  # 8 * 20/80 = 2 -> exactly 20 %
    assert track is not None and (track.name, track.version, track.replicas) == ("canary", "1.5.0", 2)
    small = model.canary_track(_canary_spec(percent=10), 2)  # at least one pod: 33 % is the closest we get
    assert small is not None and small.replicas == 1
    half = model.canary_track(_canary_spec(percent=50), 3)
    assert half is not None and half.replicas == 3
    dep = model.deployment(OWNER, _canary_spec(), track)
    assert dep["metadata"]["name"] == "fraud-canary"
    assert dep["spec"]["selector"]["matchLabels"]["plinth.dev/track"] == "canary"
    assert dep["spec"]["template"]["spec"]["containers"][0]["env"][2] == {"name": "MODEL_URI", "value": "s3://m/1.5.0"}


def test_promoted_stable_track_serves_the_canary() -> None:
    spec = _canary_spec()
    assert model.stable_track(spec).version == "1.4.0"
    promoted = model.stable_track(spec, promoted=True)
    assert (promoted.name, promoted.version, promoted.uri) == ("stable", "1.5.0", "s3://m/1.5.0")


def test_canary_phases() -> None:
    from datetime import UTC, datetime, timedelta

    from plinth.operator.reconcilers.modeldeployment import next_canary

    canary = _canary_spec(after="10m").canary
    assert canary is not None
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    starting = next_canary(None, canary, ready=0, want=1, failed=False, now=t0)
    assert starting == {"version": "1.5.0", "phase": "Progressing", "startedAt": "2026-01-01T00:00:00Z"}
    healthy = next_canary(starting, canary, ready=1, want=1, failed=False, now=t0)
    assert healthy["phase"] == "Healthy" and healthy["healthySince"] == "2026-01-01T00:00:00Z"
    still = next_canary(healthy, canary, ready=1, want=1, failed=False, now=t0 + timedelta(minutes=9))
    assert still["phase"] == "Healthy" and still["healthySince"] == healthy["healthySince"]
    promoted = next_canary(still, canary, ready=1, want=1, failed=False, now=t0 + timedelta(minutes=10))
    assert promoted["phase"] == "Promoted"
    # Final for this version, whatever happens next.
    assert next_canary(promoted, canary, ready=0, want=1, failed=True, now=t0)["phase"] == "Promoted"
    # A pod that stops being ready resets the healthy clock; a crash loop rolls back for good.
    reset = next_canary(healthy, canary, ready=0, want=1, failed=False, now=t0 + timedelta(minutes=5))
    assert reset == {"version": "1.5.0", "phase": "Progressing", "startedAt": "2026-01-01T00:00:00Z"}
    failed = next_canary(healthy, canary, ready=1, want=1, failed=True, now=t0)
    assert failed["phase"] == "RolledBack"
    assert next_canary(failed, canary, ready=1, want=1, failed=False, now=t0)["phase"] == "RolledBack"
    # A new canary version starts over.
    newer = canary.model_copy(update={"version": "1.6.0"})
    assert next_canary(failed, newer, ready=0, want=1, failed=False, now=t0) == {
        "version": "1.6.0",
        "phase": "Progressing",
        "startedAt": "2026-01-01T00:00:00Z",
    }
    # Never Ready within rollback.readyTimeout (default 10m): rolled back, not waited for forever.
    late = next_canary(starting, canary, ready=0, want=1, failed=False, now=t0 + timedelta(minutes=10))
    assert late["phase"] == "RolledBack"
    # Without autoPromote a healthy canary waits for the user.
    manual = _canary_spec(after=None).canary
    assert manual is not None
    long_after = next_canary(healthy, manual, ready=1, want=1, failed=False, now=t0 + timedelta(days=7))
    assert long_after["phase"] == "Healthy"


def _server_spec(**extra: Any) -> ModelDeploymentSpec:
    base: dict[str, Any] = {
        "model": {"name": "iris", "version": "1.0.0", "uri": "s3://models/iris/1.0.0/model.joblib"},
        "runtime": {"format": "sklearn"},
    }
    return ModelDeploymentSpec.model_validate({**base, **extra})


def test_without_an_image_plinths_server_runs_with_its_probes_metrics_and_read_only_root() -> None:
    spec = _server_spec(auth={"secretRef": {"name": "iris-tokens"}}, rateLimit={"requestsPerSecond": 50, "burst": 100})
    deployment = model.deployment(OWNER, spec, model.stable_track(spec, server_image="plinth.local/serve:7"))
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "plinth.local/serve:7"
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {
        "MODEL_NAME": "iris",
        "MODEL_VERSION": "1.0.0",
        "MODEL_URI": "s3://models/iris/1.0.0/model.joblib",
        "MODEL_FORMAT": "sklearn",
        "AUTH_TOKENS_FILE": model.AUTH_DIR,
        "RATE_LIMIT_RPS": "50",
        "RATE_LIMIT_BURST": "100",
        "PORT": "8080",
    }
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"auth-tokens": model.AUTH_DIR, "tmp": "/tmp"}
    assert {"name": "auth-tokens", "secret": {"secretName": "iris-tokens"}} in pod["spec"]["volumes"]
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "8080"


def test_a_custom_image_keeps_tcp_probes_and_no_default_scrape() -> None:
    spec = _spec()
    (container,) = model.deployment(OWNER, spec)["spec"]["template"]["spec"]["containers"]
    assert "tcpSocket" in container["readinessProbe"] and "readOnlyRootFilesystem" not in container["securityContext"]
    assert "prometheus.io/scrape" not in model.deployment(OWNER, spec)["spec"]["template"]["metadata"]["annotations"]


def test_a_canary_with_its_own_image_runs_that_image_beside_plinths_server() -> None:
    spec = _server_spec(
        canary={"version": "1.1.0", "uri": "s3://models/iris/1.1.0/model.joblib", "image": "x.example/s:1"}
    )
    canary = model.canary_track(spec, 9, server_image="plinth.local/serve:7")
    assert canary is not None and canary.image == "x.example/s:1" and not canary.plinth_server
    assert model.stable_track(spec, server_image="plinth.local/serve:7").plinth_server


def test_the_route_on_a_gateway_sends_everything_to_the_service_until_a_canary_runs() -> None:
    gateway = {"name": "public", "namespace": "gateways"}
    spec = _spec(route={"gateway": gateway, "hostnames": ["fraud.models.example.com"], "pathPrefix": "/v2"})
    route = model.http_route(OWNER, spec, None)
    assert route["spec"] == {
        "parentRefs": [gateway],
        "hostnames": ["fraud.models.example.com"],
        "rules": [
            {
                "backendRefs": [{"name": "fraud", "port": 9000}],
                "matches": [{"path": {"type": "PathPrefix", "value": "/v2"}}],
            }
        ],
    }
    canary = _spec(
        route={"gateway": gateway}, canary={"version": "1.5.0", "uri": "s3://models/fraud/1.5.0", "trafficPercent": 30}
    )
    split = model.http_route(OWNER, canary, 30)["spec"]
    assert split["parentRefs"] == [gateway, {"group": "", "kind": "Service", "name": "fraud", "port": 9000}]
    assert "hostnames" not in split and "matches" not in split["rules"][0]  # pathPrefix "/" matches everything
    assert split["rules"][0]["backendRefs"] == [
        {"name": "fraud-stable", "port": 9000, "weight": 70},
        {"name": "fraud-canary", "port": 9000, "weight": 30},
    ]
