"""The pydantic models: wire format (camelCase), scalar types, and the cross-field rules they mirror from CEL."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from plinth.operator.api.v1alpha1 import (
    API_VERSION,
    GROUP,
    KINDS,
    VERSION,
    Condition,
    ContainerDefaults,
    EnvVar,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    ModelSource,
    NamespaceQuotaSpec,
    NamespaceQuotaStatus,
    PreviewEnvironmentSpec,
    PreviewEnvironmentStatus,
    PreviewSecret,
    Quantity,
    ResourceList,
    format_time,
    kind_info,
    parse_duration,
    parse_quantity,
)
from plinth.operator.api.v1alpha1.common import Duration
from pydantic import TypeAdapter, ValidationError

QUANTITY: TypeAdapter[str] = TypeAdapter(Quantity)
RESOURCES: TypeAdapter[dict[str, str]] = TypeAdapter(ResourceList)
DURATION: TypeAdapter[str] = TypeAdapter(Duration)

MODEL_DEPLOYMENT: dict[str, Any] = {
    "model": {"name": "fraud-scorer", "version": "1.4.0", "uri": "s3://models/fraud/1.4.0"},
    "runtime": {
        "image": "ghcr.io/acme/model-server:2.1",
        "port": 8080,
        "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "store", "key": "token"}}}],
        "args": ["--workers=4"],
    },
    "storage": {"secretRef": {"name": "s3-credentials"}},
    "autoscaling": {"minReplicas": 2, "maxReplicas": 10, "targetCPUUtilizationPercentage": 70},
    "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
    "canary": {
        "version": "1.5.0",
        "uri": "s3://models/fraud/1.5.0",
        "trafficPercent": 10,
        "autoPromote": {"after": "10m"},
        "rollback": {"maxRestarts": 3},
    },
    "monitoring": {"metricsPort": 9090, "metricsPath": "/metrics"},
}


def _md(**changes: Any) -> dict[str, Any]:
    spec = {k: v for k, v in MODEL_DEPLOYMENT.items() if k not in changes}
    spec.update({k: v for k, v in changes.items() if v is not None})
    return spec


def test_api_constants() -> None:
    assert (GROUP, VERSION, API_VERSION) == ("plinth.dev", "v1alpha1", "plinth.dev/v1alpha1")
    assert [k.kind for k in KINDS] == ["ModelDeployment", "PreviewEnvironment", "NamespaceQuota"]
    assert kind_info("NamespaceQuota").scope == "Cluster"
    with pytest.raises(KeyError):
        kind_info("Nope")


# --------------------------------------------------------------------------------------------------------------------
# Wire format
# --------------------------------------------------------------------------------------------------------------------


def test_camel_case_round_trip() -> None:
    spec = ModelDeploymentSpec.model_validate(MODEL_DEPLOYMENT)
    assert spec.autoscaling is not None
    assert spec.autoscaling.target_cpu_utilization_percentage == 70
    assert spec.runtime.env[0].value_from is not None
    assert spec.runtime.env[0].value_from.secret_key_ref.key == "token"
    assert spec.model_dump(mode="json", exclude_unset=True) == MODEL_DEPLOYMENT
    assert ModelDeploymentSpec.model_validate(spec.to_dict()) == spec


def test_python_names_are_accepted_too() -> None:
    source = ModelSource(name="scorer", version="1.0.0", uri="gs://bucket/scorer")
    assert source.to_dict() == {"name": "scorer", "version": "1.0.0", "uri": "gs://bucket/scorer"}
    nsq = NamespaceQuotaSpec(namespaces=["shop"], network_isolation="DefaultDeny")
    assert nsq.to_dict() == {"namespaces": ["shop"], "networkIsolation": "DefaultDeny"}


def test_defaults_match_the_documentation() -> None:
    spec = ModelDeploymentSpec.model_validate(
        {"model": MODEL_DEPLOYMENT["model"], "runtime": {"image": "ghcr.io/acme/model-server:2.1"}}
    )
    assert spec.runtime.port == 8080
    assert spec.replicas is None and spec.autoscaling is None
    assert spec.fixed_replicas == 1
    assert ModelDeploymentSpec.model_validate(_md(autoscaling=None, replicas=0)).fixed_replicas == 0
    assert ModelDeploymentSpec.model_validate(MODEL_DEPLOYMENT).fixed_replicas is None
    canary = ModelDeploymentSpec.model_validate(
        _md(canary={"version": "1.5.0", "uri": "s3://models/fraud/1.5.0"})
    ).canary
    assert canary is not None
    assert (canary.traffic_percent, canary.rollback.max_restarts, canary.auto_promote) == (10, 3, None)

    pe = PreviewEnvironmentSpec.model_validate(
        {
            "source": {"repository": "github.com/acme/shop", "pullRequest": 1},
            "team": "shop",
            "services": [{"name": "web", "image": "web:1"}],
            "secrets": [{"generate": {"name": "session", "keys": ["K"]}}],
        }
    )
    assert pe.ttl == "72h" and pe.sleep_after is None
    assert (pe.services[0].port, pe.services[0].replicas, pe.services[0].expose) == (8080, 1, True)
    assert pe.secrets[0].generate is not None and pe.secrets[0].generate.length == 32
    assert pe.secrets[0].secret_name == "session"
    assert NamespaceQuotaSpec(namespaces=["a"]).network_isolation == "None"


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError, match="replica"):
        ModelDeploymentSpec.model_validate(_md(replica=3))


def test_condition_serialises_like_metav1_condition() -> None:
    condition = Condition(
        type="Ready",
        status="False",
        reason="ProgressingRollout",
        message="Deployment fraud-scorer: 1/2 replicas ready",
        last_transition_time="2025-01-31T12:00:00Z",
        observed_generation=3,
    )
    assert condition.to_dict() == {
        "type": "Ready",
        "status": "False",
        "reason": "ProgressingRollout",
        "message": "Deployment fraud-scorer: 1/2 replicas ready",
        "lastTransitionTime": "2025-01-31T12:00:00Z",
        "observedGeneration": 3,
    }
    status = ModelDeploymentStatus(observed_generation=3, conditions=[condition], ready_replicas=1)
    assert status.condition("Ready") == condition
    assert status.condition("Stalled") is None
    assert status.to_dict()["readyReplicas"] == 1
    assert ModelDeploymentStatus.model_validate(status.to_dict()) == status


@pytest.mark.parametrize(
    "changes",
    [
        {"status": "Maybe"},
        {"reason": "not camel case"},
        {"reason": ""},
        {"last_transition_time": "yesterday"},
        {"type": ""},
    ],
)
def test_condition_rejects_malformed_values(changes: dict[str, str]) -> None:
    fields: dict[str, Any] = {
        "type": "Ready",
        "status": "True",
        "reason": "Ready",
        "last_transition_time": format_time(),
    }
    with pytest.raises(ValidationError):
        Condition.model_validate({**fields, **changes})


def test_duplicate_condition_types_are_rejected() -> None:
    ready = {"type": "Ready", "status": "True", "reason": "Ready", "lastTransitionTime": "2025-01-31T12:00:00Z"}
    with pytest.raises(ValidationError, match="duplicate condition type"):
        NamespaceQuotaStatus.model_validate({"conditions": [ready, ready]})


def test_format_time_is_rfc3339_utc() -> None:
    stamp = format_time()
    assert stamp.endswith("Z") and len(stamp) == len("2025-01-31T12:00:00Z")


def test_statuses_accept_operator_output() -> None:
    nsq = NamespaceQuotaStatus.model_validate(
        {
            "observedGeneration": 2,
            "namespaces": {"count": 3, "names": ["a", "b", "c"]},
            "used": {"requests.cpu": "2"},
            "hard": {"requests.cpu": 20},
            "summary": "3 namespaces, requests.cpu 2/20",
        }
    )
    assert nsq.hard == {"requests.cpu": "20"}
    with pytest.raises(ValidationError):
        NamespaceQuotaStatus.model_validate({"namespaces": {"count": 51, "names": [f"n{i}" for i in range(51)]}})
    pe = PreviewEnvironmentStatus.model_validate(
        {
            "namespace": "shop-pr-1234",
            "url": "https://shop-1234.preview.example.com",
            "expiresAt": "2025-02-03T12:00:00Z",
            "sleeping": False,
            "services": [{"name": "web", "url": "https://shop-1234.preview.example.com", "readyReplicas": 1}],
        }
    )
    assert pe.services[0].replicas == 0
    history = {"version": "1.4.0", "startedAt": "2025-01-31T12:00:00Z", "outcome": "Active"}
    assert ModelDeploymentStatus.model_validate({"history": [history]}).history[0].ended_at is None
    with pytest.raises(ValidationError):
        ModelDeploymentStatus.model_validate({"history": [{**history, "outcome": "Exploded"}]})


# --------------------------------------------------------------------------------------------------------------------
# Scalar types
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(2, "2"), (0, "0"), ("2", "2"), ("500m", "500m"), ("1.5", "1.5"), ("512Mi", "512Mi"), ("1e3", "1e3")],
)
def test_quantity_accepts_kubernetes_quantities(value: object, expected: str) -> None:
    assert QUANTITY.validate_python(value) == expected


@pytest.mark.parametrize("value", ["abc", "", "1.5.5", "5 Gi", "2KiB", "m", 1.5, True, None, "1" * 65])
def test_quantity_rejects_everything_else(value: object) -> None:
    with pytest.raises(ValidationError):
        QUANTITY.validate_python(value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2", Decimal(2)),
        (2, Decimal(2)),
        ("500m", Decimal("0.5")),
        ("1Ki", Decimal(1024)),
        ("1.5Gi", Decimal(1610612736)),
        ("100M", Decimal(100_000_000)),
        ("1e3", Decimal(1000)),
        ("1E-3", Decimal("0.001")),
        ("-1", Decimal(-1)),
        (".5", Decimal("0.5")),
    ],
)
def test_parse_quantity(text: str | int, value: Decimal) -> None:
    assert parse_quantity(text) == value


def test_parse_quantity_rejects_garbage() -> None:
    for bad in ("abc", "1e1.5", "", "Gi"):
        with pytest.raises(ValueError):
            parse_quantity(bad)


def test_resource_list_is_bounded() -> None:
    assert RESOURCES.validate_python({"cpu": 2, "memory": "1Gi"}) == {"cpu": "2", "memory": "1Gi"}
    with pytest.raises(ValidationError):
        RESOURCES.validate_python({f"example.com/r{i}": "1" for i in range(33)})


@pytest.mark.parametrize("version", ["1.4.0", "0.0.1", "2.0.0-rc.1", "1.0.0-alpha.beta", "1.0.0+build.5", "10.20.30"])
def test_semver_accepted(version: str) -> None:
    assert ModelSource(name="m", version=version, uri="s3://b/m").version == version


@pytest.mark.parametrize("version", ["1.4", "v1.4.0", "01.2.3", "1.2.3-", "latest", "1.2.3.4", ""])
def test_semver_rejected(version: str) -> None:
    with pytest.raises(ValidationError, match="version"):
        ModelSource(name="m", version=version, uri="s3://b/m")


@pytest.mark.parametrize(
    "uri",
    [
        "s3://models/fraud/1.4.0",
        "gs://bucket/m",
        "https://h.example.com/m.onnx",
        "pvc://claim/m",
        "oci://ghcr.io/a/m:1",
    ],
)
def test_model_uri_accepted(uri: str) -> None:
    assert ModelSource(name="m", version="1.0.0", uri=uri).uri == uri


@pytest.mark.parametrize("uri", ["ftp://h/m", "http://h/m", "s3://", "/models/m", "s3://bucket/with space"])
def test_model_uri_rejected(uri: str) -> None:
    with pytest.raises(ValidationError, match="uri"):
        ModelSource(name="m", version="1.0.0", uri=uri)


@pytest.mark.parametrize(("text", "seconds"), [("72h", 259200), ("1h30m", 5400), ("10m", 600), ("1.5s", 1.5)])
def test_durations(text: str, seconds: float) -> None:
    assert DURATION.validate_python(text) == text
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["3 days", "72", "-1h", "h", "1d", ""])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValidationError):
        DURATION.validate_python(text)
    with pytest.raises(ValueError):
        parse_duration(text)


# --------------------------------------------------------------------------------------------------------------------
# Cross-field rules (mirrors of the CEL rules)
# --------------------------------------------------------------------------------------------------------------------


def test_replicas_and_autoscaling_are_exclusive() -> None:
    with pytest.raises(ValidationError, match="mutually exclusive"):
        ModelDeploymentSpec.model_validate(_md(replicas=2))
    assert ModelDeploymentSpec.model_validate(_md(autoscaling=None, replicas=2)).replicas == 2


def test_autoscaling_bounds() -> None:
    with pytest.raises(ValidationError, match="minReplicas must not exceed maxReplicas"):
        ModelDeploymentSpec.model_validate(_md(autoscaling={"minReplicas": 5, "maxReplicas": 2}))


def test_canary_must_change_version() -> None:
    with pytest.raises(ValidationError, match=r"canary\.version must differ"):
        ModelDeploymentSpec.model_validate(_md(canary={"version": "1.4.0", "uri": "s3://m/1.4.0-b"}))


def test_requests_must_not_exceed_limits() -> None:
    with pytest.raises(ValidationError, match="requests must not exceed limits"):
        ModelDeploymentSpec.model_validate(_md(resources={"requests": {"cpu": "2"}, "limits": {"cpu": "1500m"}}))
    ok = _md(resources={"requests": {"cpu": "1500m", "memory": "1Gi"}, "limits": {"cpu": 2}})
    assert ModelDeploymentSpec.model_validate(ok).resources is not None


def test_env_value_xor_value_from() -> None:
    with pytest.raises(ValidationError, match="not both"):
        EnvVar.model_validate({"name": "A", "value": "x", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}})
    with pytest.raises(ValidationError, match="duplicate environment variable"):
        ModelDeploymentSpec.model_validate(
            _md(runtime={"image": "img:1", "env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]})
        )


def test_namespace_quota_needs_a_target() -> None:
    with pytest.raises(ValidationError, match="set namespaceSelector or namespaces"):
        NamespaceQuotaSpec.model_validate({"perNamespace": {"hard": {"pods": 10}}})
    with pytest.raises(ValidationError, match="set namespaceSelector or namespaces"):
        NamespaceQuotaSpec.model_validate({"namespaces": []})
    with pytest.raises(ValidationError, match="must not be empty"):
        NamespaceQuotaSpec.model_validate({"namespaceSelector": {}})
    with pytest.raises(ValidationError, match="must not be empty"):
        NamespaceQuotaSpec.model_validate({"namespaceSelector": {"matchLabels": {}, "matchExpressions": []}})
    with pytest.raises(ValidationError, match="duplicate"):
        NamespaceQuotaSpec.model_validate({"namespaces": ["a", "a"]})
    with pytest.raises(ValidationError):
        NamespaceQuotaSpec.model_validate({"namespaces": ["Not_A_Label"]})
    selector = {"matchExpressions": [{"key": "plinth.dev/team", "operator": "Exists"}]}
    assert NamespaceQuotaSpec.model_validate({"namespaceSelector": selector}).namespace_selector is not None


def test_selector_requirement_values_follow_operator() -> None:
    for bad in ({"key": "k", "operator": "In"}, {"key": "k", "operator": "Exists", "values": ["v"]}):
        with pytest.raises(ValidationError, match="values must be non-empty for In"):
            NamespaceQuotaSpec.model_validate({"namespaceSelector": {"matchExpressions": [bad]}})


@pytest.mark.parametrize(
    ("per_namespace", "total", "ok"),
    [
        ({"requests.cpu": "4"}, {"requests.cpu": "20"}, True),
        ({"requests.cpu": "4"}, {"requests.cpu": "4000m"}, True),  # equal is fine
        ({"requests.cpu": "4"}, {"requests.cpu": "2000m"}, False),
        ({"requests.memory": "8Gi"}, {"requests.memory": "8G"}, False),  # 8G < 8Gi
        ({"pods": 20}, {"requests.cpu": "1"}, True),  # keys only in one list are not compared
    ],
)
def test_total_must_cover_per_namespace(per_namespace: dict[str, Any], total: dict[str, Any], ok: bool) -> None:
    spec = {"namespaces": ["a"], "perNamespace": {"hard": per_namespace}, "total": {"hard": total}}
    if ok:
        NamespaceQuotaSpec.model_validate(spec)
    else:
        with pytest.raises(ValidationError, match=r"total\.hard must be at least"):
            NamespaceQuotaSpec.model_validate(spec)


def test_container_defaults_are_ordered() -> None:
    ContainerDefaults.model_validate({"request": {"cpu": "100m"}, "limit": {"cpu": 1}, "max": {"cpu": 2}})
    for bad, message in (
        ({"request": {"memory": "2Gi"}, "limit": {"memory": "1Gi"}}, "request must not exceed defaults.limit"),
        ({"limit": {"cpu": 4}, "max": {"cpu": 2}}, "limit must not exceed defaults.max"),
        ({"request": {"cpu": 4}, "max": {"cpu": 2}}, "request must not exceed defaults.max"),
    ):
        with pytest.raises(ValidationError, match=message):
            ContainerDefaults.model_validate(bad)


def test_preview_secret_is_exactly_one_source() -> None:
    copy = {"copyFrom": {"name": "shop-db"}}
    generate = {"generate": {"name": "session", "keys": ["SECRET_KEY"]}}
    assert PreviewSecret.model_validate(copy).secret_name == "shop-db"
    for bad in ({}, {**copy, **generate}):
        with pytest.raises(ValidationError, match="exactly one of copyFrom or generate"):
            PreviewSecret.model_validate(bad)
    for keys in ([], ["A", "A"]):
        with pytest.raises(ValidationError):
            PreviewSecret.model_validate({"generate": {"name": "s", "keys": keys}})
    with pytest.raises(ValidationError):
        PreviewSecret.model_validate({"generate": {"name": "s", "keys": ["A"], "length": 8}})


def test_preview_lists_are_keyed_and_bounded() -> None:
    base: dict[str, Any] = {"source": {"repository": "github.com/acme/shop", "pullRequest": 1}, "team": "shop"}
    with pytest.raises(ValidationError, match="duplicate service"):
        PreviewEnvironmentSpec.model_validate(
            {**base, "services": [{"name": "web", "image": "a:1"}, {"name": "web", "image": "b:1"}]}
        )
    with pytest.raises(ValidationError):
        PreviewEnvironmentSpec.model_validate(
            {**base, "services": [{"name": f"s{i}", "image": "a:1"} for i in range(21)]}
        )
    with pytest.raises(ValidationError):  # Service names must start with a letter (RFC 1035)
        PreviewEnvironmentSpec.model_validate({**base, "services": [{"name": "1web", "image": "a:1"}]})
    with pytest.raises(ValidationError):
        PreviewEnvironmentSpec.model_validate({**base, "services": [{"name": "web", "image": "a:1", "replicas": 11}]})
    with pytest.raises(ValidationError):
        PreviewEnvironmentSpec.model_validate({**base, "source": {"repository": "r", "pullRequest": 0}})
    model = {"name": "scorer", "spec": {**MODEL_DEPLOYMENT, "replicas": 1}}
    with pytest.raises(ValidationError, match="mutually exclusive"):  # embedded ModelDeployment specs are checked
        PreviewEnvironmentSpec.model_validate({**base, "models": [model]})


@pytest.mark.parametrize("amount", ["-3", -3, "-1Gi", "-.5"])
def test_a_negative_resource_amount_is_refused_as_the_api_server_refuses_it(amount: str | int) -> None:
    with pytest.raises(ValidationError) as raised:
        NamespaceQuotaSpec.model_validate({"namespaces": ["a"], "total": {"hard": {"requests.cpu": amount}}})
    assert raised.value.errors()[0]["loc"][:3] == ("total", "hard", "requests.cpu")
    assert NamespaceQuotaSpec.model_validate({"namespaces": ["a"], "total": {"hard": {"requests.cpu": "+1e-3"}}})


def test_runtime_env_leaves_what_plinth_sets_to_plinth() -> None:
    model = {"name": "iris", "version": "1.0.0", "uri": "s3://m/iris.joblib"}
    for name in ("MODEL_URI", "PORT"):
        with pytest.raises(ValidationError, match=r"runtime\.env may not set MODEL_NAME"):
            ModelDeploymentSpec.model_validate({"model": model, "runtime": {"env": [{"name": name, "value": "x"}]}})
    custom = {"image": "ghcr.io/acme/server:1", "env": [{"name": "PORT", "value": "9000"}]}
    assert ModelDeploymentSpec.model_validate({"model": model, "runtime": custom}).runtime.env[0].name == "PORT"
