"""v1alpha1 <-> v1beta1: exact both ways, for generated valid objects, and valid in the version converted to."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from plinth.operator.api import v1alpha1, v1beta1
from plinth.operator.api.conversion import ALPHA, BETA, MOVES, STASH_ANNOTATION, ConversionError, convert
from pydantic import ValidationError

SAMPLES = Path(__file__).resolve().parents[2] / "crds" / "samples"

MODEL_SPEC: dict[str, Any] = {
    "model": {"name": "fraud-scorer", "version": "1.4.0", "uri": "s3://models/fraud/1.4.0"},
    "runtime": {"format": "sklearn", "port": 8080, "env": [{"name": "LOG_LEVEL", "value": "info"}]},
    "storage": {"secretRef": {"name": "model-store"}},
    "auth": {"secretRef": {"name": "fraud-token"}},
    "rateLimit": {"requestsPerSecond": 50, "burst": 100},
    "replicas": 2,
    "autoscaling": {"minReplicas": 1, "maxReplicas": 4, "targetCPUUtilizationPercentage": 70},
    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
    "canary": {
        "version": "1.5.0",
        "uri": "s3://models/fraud/1.5.0",
        "trafficPercent": 20,
        "autoPromote": {"after": "10m"},
        "rollback": {"maxRestarts": 3, "readyTimeout": "5m"},
    },
    "monitoring": {"metricsPath": "/metrics"},
}
PREVIEW_SPEC: dict[str, Any] = {
    "source": {"repository": "github.com/acme/shop", "pullRequest": 1234, "commit": "abcdef1", "branch": "feat/x"},
    "team": "shop",
    "ttl": "48h",
    "sleepAfter": "8h",
    "services": [{"name": "web", "image": "ghcr.io/acme/shop:pr-1234", "port": 8080, "expose": True}],
    "models": [
        {"name": "ranker", "spec": copy.deepcopy(MODEL_SPEC)},
        {"name": "scorer", "spec": {"model": MODEL_SPEC["model"], "replicas": 1}},
    ],
    "secrets": [{"generate": {"name": "db", "keys": ["password"]}}],
    "ingress": {"domain": "preview.example.com"},
}
QUOTA_SPEC: dict[str, Any] = {
    "namespaceSelector": {"matchLabels": {"plinth.dev/team": "shop"}},
    "namespaces": ["shop-tools"],
    "perNamespace": {"hard": {"cpu": "4", "memory": "8Gi"}},
    "defaults": {"request": {"cpu": "100m"}, "limit": {"cpu": "500m"}},
    "total": {"hard": {"cpu": "16", "memory": "32Gi"}},
    "networkIsolation": "DefaultDeny",
}
FULL = {"ModelDeployment": MODEL_SPEC, "PreviewEnvironment": PREVIEW_SPEC, "NamespaceQuota": QUOTA_SPEC}
ALPHA_SPECS = {i.kind: i.spec_model for i in v1alpha1.KINDS}
BETA_SPECS = {
    "ModelDeployment": v1beta1.ModelDeploymentSpecV1beta1,
    "PreviewEnvironment": v1beta1.PreviewEnvironmentSpecV1beta1,
    "NamespaceQuota": v1beta1.NamespaceQuotaSpecV1beta1,
}


def _paths(node: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path and list index in *node*: the candidates to leave out."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            found.append((*at, key))
            found.extend(_paths(value, (*at, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_paths(value, (*at, i)))
    return found


def _without(node: Any, drop: set[tuple[Any, ...]], at: tuple[Any, ...] = ()) -> Any:
    if isinstance(node, dict):
        return {k: _without(v, drop, (*at, k)) for k, v in node.items() if (*at, k) not in drop}
    if isinstance(node, list):
        return [_without(v, drop, (*at, i)) for i, v in enumerate(node)]
    return node


def _valid(kind: str, version: str, spec: dict[str, Any]) -> bool:
    try:
        (ALPHA_SPECS if version == ALPHA else BETA_SPECS)[kind].model_validate(spec)
    except ValidationError:
        return False
    return True


@st.composite
def alpha_objects(draw: st.DrawFn) -> dict[str, Any]:
    """A valid v1alpha1 object of any kind: the full spec with any fields left out, with or without status and
    annotations, each kept only if v1alpha1 accepts it."""
    kind = draw(st.sampled_from(sorted(FULL)))
    candidates = _paths(FULL[kind])
    drop = set(draw(st.lists(st.sampled_from(candidates), max_size=8)))
    spec = _without(FULL[kind], drop)
    assume(_valid(kind, ALPHA, spec))
    meta: dict[str, Any] = {"name": "x", "uid": "u", "generation": 3}
    if kind != "NamespaceQuota":
        meta["namespace"] = "ns"
    if draw(st.booleans()):
        meta["annotations"] = {"team.example/owner": "alice"}
    obj = {"apiVersion": ALPHA, "kind": kind, "metadata": meta, "spec": spec}
    if draw(st.booleans()):
        obj["status"] = {"observedGeneration": 3, "conditions": [{"type": "Ready", "status": "True"}]}
    return obj


# Empty groups only v1beta1 has: what v1alpha1 must keep in the stash annotation.
EMPTY_GROUPS = {
    "ModelDeployment": [("spec", "scaling"), ("spec", "access")],
    "PreviewEnvironment": [("spec", "lifecycle")],
    "NamespaceQuota": [],
}


@st.composite
def beta_objects(draw: st.DrawFn) -> dict[str, Any]:
    obj = convert(draw(alpha_objects()), BETA)
    for path in draw(st.lists(st.sampled_from(EMPTY_GROUPS[obj["kind"]] or [("spec",)]), max_size=2)):
        node = obj
        for key in path[:-1]:
            node = node[key]
        if path[-1] not in node and path != ("spec",):
            node[path[-1]] = {}
    return obj


PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])


@PROPERTY
@given(alpha_objects())
def test_alpha_to_beta_and_back_is_exact(obj: dict[str, Any]) -> None:
    beta = convert(obj, BETA)
    assert beta["apiVersion"] == BETA
    assert _valid(obj["kind"], BETA, beta["spec"]), "a valid v1alpha1 object is a valid v1beta1 one"
    assert STASH_ANNOTATION not in (beta["metadata"].get("annotations") or {})
    assert convert(beta, ALPHA) == obj


@PROPERTY
@given(beta_objects())
def test_beta_to_alpha_and_back_is_exact(obj: dict[str, Any]) -> None:
    alpha = convert(obj, ALPHA)
    assert _valid(obj["kind"], ALPHA, alpha["spec"]), "a valid v1beta1 object is a valid v1alpha1 one"
    assert convert(alpha, BETA) == obj


def test_the_moves_of_a_full_object() -> None:
    md = convert({"apiVersion": ALPHA, "kind": "ModelDeployment", "metadata": {}, "spec": MODEL_SPEC}, BETA)["spec"]
    assert md["scaling"] == {"replicas": 2, "autoscaling": MODEL_SPEC["autoscaling"]}
    assert md["access"] == {"auth": MODEL_SPEC["auth"], "rateLimit": MODEL_SPEC["rateLimit"]}
    assert md["canary"]["model"] == {"version": "1.5.0", "uri": "s3://models/fraud/1.5.0"}
    assert "version" not in md["canary"] and "replicas" not in md
    pe = convert({"apiVersion": ALPHA, "kind": "PreviewEnvironment", "metadata": {}, "spec": PREVIEW_SPEC}, BETA)
    assert pe["spec"]["lifecycle"] == {"ttl": "48h", "sleepAfter": "8h"}
    assert pe["spec"]["models"][1]["spec"] == {"model": MODEL_SPEC["model"], "scaling": {"replicas": 1}}
    nq = convert({"apiVersion": ALPHA, "kind": "NamespaceQuota", "metadata": {}, "spec": QUOTA_SPEC}, BETA)["spec"]
    assert nq["namespaces"] == {"selector": QUOTA_SPEC["namespaceSelector"], "names": ["shop-tools"]}


def test_an_empty_group_is_kept_in_an_annotation_on_v1alpha1() -> None:
    beta = {
        "apiVersion": BETA,
        "kind": "ModelDeployment",
        "metadata": {"name": "m"},
        "spec": {"model": MODEL_SPEC["model"], "scaling": {}},
    }
    alpha = convert(beta, ALPHA)
    assert alpha["spec"] == {"model": MODEL_SPEC["model"]}
    assert json.loads(alpha["metadata"]["annotations"][STASH_ANNOTATION]) == [
        {"path": ["spec", "scaling"], "value": {}}
    ]
    assert convert(alpha, BETA) == beta


def test_the_same_rules_in_both_versions() -> None:
    both = {**MODEL_SPEC}
    del both["autoscaling"]
    invalid = {**MODEL_SPEC, "canary": {**MODEL_SPEC["canary"], "version": "1.4.0"}}
    del invalid["autoscaling"]
    for spec, valid in ((MODEL_SPEC, False), (both, True), (invalid, False)):
        obj = {"apiVersion": ALPHA, "kind": "ModelDeployment", "metadata": {}, "spec": spec}
        assert _valid("ModelDeployment", ALPHA, spec) is valid
        assert _valid("ModelDeployment", BETA, convert(obj, BETA)["spec"]) is valid


@pytest.mark.parametrize("sample", sorted(SAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_sample_converts_both_ways(sample: Path) -> None:
    for obj in yaml.safe_load_all(sample.read_text()):
        if obj.get("kind") not in MOVES:
            continue
        other = ALPHA if obj["apiVersion"] == BETA else BETA
        converted = convert(obj, other)
        assert _valid(obj["kind"], obj["apiVersion"], obj["spec"]) and _valid(obj["kind"], other, converted["spec"])
        assert convert(converted, obj["apiVersion"]) == obj


def test_what_cannot_be_converted_says_why() -> None:
    with pytest.raises(ConversionError, match="not a Plinth kind"):
        convert({"apiVersion": ALPHA, "kind": "Deployment"}, BETA)
    with pytest.raises(ConversionError, match="v2"):
        convert({"apiVersion": ALPHA, "kind": "ModelDeployment"}, "plinth.dev/v2")
