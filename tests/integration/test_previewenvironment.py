"""PreviewEnvironment against the real control plane, driven the way a CI pipeline drives it: create on a pull
request, push, close; TTL expiry, sleep and wake, secrets copied (allowed and refused) and generated, the team's
quota, a failing image, and deletion while the operator is down."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.conftest import Cluster, Operator, wait_for

pytestmark = pytest.mark.cluster
PE = "previewenvironment"


def manifest(namespace: str, name: str, pr: int, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "source": {"repository": "github.com/acme/shop", "pullRequest": pr, "commit": "aaaaaaa"},
        "team": f"team-{name}",
        "services": [{"name": "web", "image": "registry.example/shop-web:pr", "port": 8080}],
        **spec,
    }
    return {
        "apiVersion": "plinth.dev/v1alpha1",
        "kind": "PreviewEnvironment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def apply(cluster: Cluster, body: dict[str, Any], check: bool = True) -> Any:
    return cluster.kubectl(
        "apply", "--server-side", "--field-manager=ci", "-f", "-", input=yaml.safe_dump(body), check=check
    )


def get(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    found = cluster.kubectl("get", "-n", namespace, PE, name, "-o", "json", check=False)
    return json.loads(found.stdout) if found.returncode == 0 else None


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return {}


def wait_condition(
    cluster: Cluster, namespace: str, name: str, type_: str, *, status: str = "True", timeout: float = 90, **match: str
) -> dict[str, Any]:
    def check() -> Any:
        obj = get(cluster, namespace, name)
        cond = condition(obj, type_)
        current = obj is not None and cond.get("observedGeneration") == obj["metadata"]["generation"]
        fits = all(cond.get(k) == v for k, v in match.items())
        return current and cond.get("status") == status and fits and obj

    found: dict[str, Any] = wait_for(check, timeout=timeout, what=f"{name}: {type_}={status} {match or ''}")
    return found


def namespace_exists(cluster: Cluster, name: str) -> bool:
    return cluster.kubectl("get", "namespace", name, check=False).returncode == 0


def secret_data(cluster: Cluster, namespace: str, name: str) -> dict[str, str]:
    data = cluster.get("-n", namespace, "secret", name).get("data") or {}
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


@pytest.fixture
def team(cluster: Cluster) -> Iterator[str]:
    """A team namespace where previews are created (deleted afterwards, with what is left in it)."""
    name = f"team-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", PE, "--all", "-n", name, "--wait=false", check=False)
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_pull_request_lifecycle(cluster: Cluster, operator: Operator, team: str) -> None:
    """Open -> Ready with URL, secrets, model -> push -> rolled and ttl extended -> close -> nothing left."""
    cluster.kubectl("create", "secret", "generic", "db", "-n", team, "--from-literal=password=hunter2-canary")
    body = manifest(
        team,
        "shop",
        101,
        services=[
            {"name": "web", "image": "registry.example/shop-web:pr", "port": 8080, "readinessPath": "/healthz"},
            {"name": "api", "image": "registry.example/shop-api:pr", "port": 9000},
        ],
        secrets=[{"copyFrom": {"name": "db"}}, {"generate": {"name": "session", "keys": ["SECRET_KEY"]}}],
        models=[
            {
                "name": "scorer",
                "spec": {
                    "model": {"name": "scorer", "version": "1.0.0", "uri": "s3://models/scorer/1.0.0"},
                    "runtime": {"image": "registry.example/model-server:2"},
                },
            }
        ],
        ingress={"domain": "preview.example.com"},
        ttl="2h",
    )
    apply(cluster, body)
    obj = wait_condition(cluster, team, "shop", "Ready")
    status = obj["status"]
    target = status["namespace"]
    assert status["url"] == "https://shop-101.preview.example.com"
    assert {s["name"]: s.get("url") for s in status["services"]} == {
        "web": "https://shop-101.preview.example.com",
        "api": "https://api-shop-101.preview.example.com",
    }
    assert sorted(status["secrets"]) == ["db", "session"]
    ns = cluster.get("namespace", target)
    assert ns["metadata"]["labels"]["plinth.dev/team"] == "team-shop"
    assert ns["metadata"]["labels"]["plinth.dev/preview"] == "true"
    assert ns["metadata"]["labels"]["plinth.dev/pull-request"] == "101"
    assert {d["metadata"]["name"] for d in cluster.get("-n", target, "deployments")["items"]} >= {"web", "api"}
    rules = cluster.get("-n", target, "ingress", "preview")["spec"]["rules"]
    assert [r["host"] for r in rules] == ["shop-101.preview.example.com", "api-shop-101.preview.example.com"]
    assert secret_data(cluster, target, "db") == {"password": "hunter2-canary"}
    generated = secret_data(cluster, target, "session")["SECRET_KEY"]
    assert len(generated) == 32
    md = cluster.get("-n", target, "modeldeployment", "scorer")
    assert condition(md, "Ready")["status"] == "True"
    cluster.kubectl("wait", "-n", team, "--for=condition=Ready", f"{PE}/shop", "--timeout=10s")

    # A push: new commit -> the workloads roll to it, the ttl counts from now, generated values stay.
    expires = status["expiresAt"]
    body["spec"]["source"]["commit"] = "bbbbbbb"
    apply(cluster, body)
    obj = wait_condition(cluster, team, "shop", "Ready")
    web = cluster.get("-n", target, "deployment", "web")
    assert web["spec"]["template"]["metadata"]["annotations"]["plinth.dev/commit"] == "bbbbbbb"
    assert obj["status"]["expiresAt"] >= expires
    assert obj["status"]["lastUpdate"]["generation"] == obj["metadata"]["generation"]
    assert secret_data(cluster, target, "session")["SECRET_KEY"] == generated

    # The source Secret changes: the copy follows (the operator re-reads sources on its tick).
    cluster.kubectl("patch", "secret", "db", "-n", team, "-p", json.dumps({"stringData": {"password": "rotated"}}))
    wait_for(
        lambda: secret_data(cluster, target, "db") == {"password": "rotated"}, timeout=75, what="copy follows source"
    )

    # A service removed from the spec is pruned.
    body["spec"]["services"] = body["spec"]["services"][:1]
    apply(cluster, body)
    wait_for(
        lambda: cluster.kubectl("get", "-n", target, "deployment", "api", check=False).returncode != 0,
        what="api pruned",
    )
    # A kind the spec no longer names is pruned too: it is read because the namespace records the preview has it...
    kinds = "plinth.dev/child-kinds"
    assert cluster.get("namespace", target)["metadata"]["annotations"][kinds] == (
        "Deployment,Ingress,ModelDeployment,Service"
    )
    del body["spec"]["models"]
    apply(cluster, body)
    wait_for(lambda: not cluster.get("-n", target, "modeldeployments")["items"], what="model pruned")
    # ...and without that record (a namespace made by an older Plinth, or the annotation removed) every kind is read.
    cluster.kubectl("annotate", "namespace", target, f"{kinds}-")
    del body["spec"]["ingress"]
    apply(cluster, body)
    wait_for(lambda: not cluster.get("-n", target, "ingresses")["items"], what="ingress pruned")
    wait_for(
        lambda: cluster.get("namespace", target)["metadata"]["annotations"].get(kinds) == "Deployment,Service",
        what="the record follows what is left",
    )

    # The pull request closes: CI deletes the object; the namespace and everything in it go first.
    cluster.kubectl("delete", "-n", team, PE, "shop", "--timeout=90s")
    assert not namespace_exists(cluster, target)


def test_cross_namespace_secret_needs_an_opt_in(cluster: Cluster, operator: Operator, team: str) -> None:
    other = f"shared-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", other)
    try:
        cluster.kubectl("create", "secret", "generic", "prod-db", "-n", other, "--from-literal=password=prod-canary")
        apply(cluster, manifest(team, "xns", 102, secrets=[{"copyFrom": {"name": "prod-db", "namespace": other}}]))
        obj = wait_condition(cluster, team, "xns", "Stalled", reason="SecretCopyRefused")
        assert condition(obj, "Ready")["status"] == "False"
        assert "prod-canary" not in json.dumps(obj)
        # Refused before anything was created: no namespace, so no copy anywhere.
        assert not namespace_exists(cluster, obj["status"]["namespace"])

        # The owner of the Secret opts the team's namespace in: the preview proceeds on its own.
        cluster.kubectl("annotate", "secret", "prod-db", "-n", other, f"plinth.dev/preview-namespaces=x,{team}")
        obj = wait_condition(cluster, team, "xns", "Ready", timeout=120)
        assert secret_data(cluster, obj["status"]["namespace"], "prod-db") == {"password": "prod-canary"}
    finally:
        cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)


def test_ttl_expiry_deletes_everything(cluster: Cluster, operator: Operator, team: str) -> None:
    apply(cluster, manifest(team, "short", 103, ttl="20s"))
    obj = wait_condition(cluster, team, "short", "Ready")
    target = obj["status"]["namespace"]
    wait_for(lambda: get(cluster, team, "short") is None, timeout=120, what="expired preview deleted")
    assert not namespace_exists(cluster, target)


def test_sleep_scales_to_zero_and_a_push_wakes_it(cluster: Cluster, operator: Operator, team: str) -> None:
    body = manifest(team, "sleepy", 104, sleepAfter="5s")
    apply(cluster, body)
    obj = wait_condition(cluster, team, "sleepy", "Ready", reason="Asleep", timeout=120)
    assert obj["status"]["sleeping"] is True
    target = obj["status"]["namespace"]
    assert cluster.get("-n", target, "deployment", "web")["spec"]["replicas"] == 0
    body["spec"]["source"]["commit"] = "ccccccc"
    apply(cluster, body)
    obj = wait_condition(cluster, team, "sleepy", "Ready", reason="Ready")
    assert obj["status"]["sleeping"] is False
    assert cluster.get("-n", target, "deployment", "web")["spec"]["replicas"] == 1


def test_quota_exceeded_then_provisioned_when_room_appears(cluster: Cluster, operator: Operator, team: str) -> None:
    quota_name = f"q-{uuid.uuid4().hex[:6]}"

    def quota(pods: int) -> str:
        return yaml.safe_dump(
            {
                "apiVersion": "plinth.dev/v1alpha1",
                "kind": "NamespaceQuota",
                "metadata": {"name": quota_name},
                "spec": {
                    "namespaceSelector": {"matchLabels": {"plinth.dev/team": "team-big"}},
                    "total": {"hard": {"pods": str(pods)}},
                },
            }
        )

    cluster.kubectl("apply", "--server-side", "--field-manager=tests", "-f", "-", input=quota(2))
    try:
        apply(cluster, manifest(team, "big", 105, services=[{"name": "web", "image": "r.example/w:1", "replicas": 3}]))
        obj = wait_condition(cluster, team, "big", "QuotaExceeded")
        message = condition(obj, "QuotaExceeded")["message"]
        assert "pods needs 3" in message
        assert "pods total 2" in message
        target = obj["status"]["namespace"]
        assert cluster.get("-n", target, "deployments")["items"] == []  # not provisioned

        cluster.kubectl("apply", "--server-side", "--field-manager=tests", "-f", "-", input=quota(5))
        obj = wait_condition(cluster, team, "big", "Ready", timeout=120)
        assert condition(obj, "QuotaExceeded") == {}
        assert obj["status"]["services"][0]["readyReplicas"] == 3
    finally:
        cluster.kubectl("delete", "namespacequota", quota_name, "--wait=false", check=False)


def test_failing_image_is_named_and_kubectl_wait_times_out(cluster: Cluster, operator: Operator, team: str) -> None:
    apply(
        cluster,
        manifest(
            team,
            "broken",
            106,
            services=[
                {"name": "web", "image": "registry.example/web:1"},
                {"name": "api", "image": "registry.example/api:crashloop"},
            ],
        ),
    )
    obj = wait_condition(cluster, team, "broken", "Stalled", reason="CrashLoopBackOff")
    assert "api" in condition(obj, "Stalled")["message"]
    waited = cluster.kubectl("wait", "-n", team, "--for=condition=Ready", f"{PE}/broken", "--timeout=3s", check=False)
    assert waited.returncode != 0


def test_deletion_while_the_operator_is_down(cluster: Cluster, operator: Operator, team: str) -> None:
    apply(cluster, manifest(team, "orphan", 107, secrets=[{"generate": {"name": "s", "keys": ["K"]}}]))
    obj = wait_condition(cluster, team, "orphan", "Ready")
    target = obj["status"]["namespace"]
    assert operator.stop() == 0
    try:
        # Generated values survive an operator restart (they live in the Secret, not in memory).
        body = manifest(team, "orphan", 107, secrets=[{"generate": {"name": "s", "keys": ["K"]}}])
        body["spec"]["source"]["commit"] = "ddddddd"
        apply(cluster, body)
        cluster.kubectl("delete", "-n", team, PE, "orphan", "--wait=false")
        # The finalizer holds the object while nobody can clean up.
        assert get(cluster, team, "orphan") is not None
        assert namespace_exists(cluster, target)
    finally:
        operator.start()
    wait_for(lambda: get(cluster, team, "orphan") is None, timeout=90, what="deletion completes after restart")
    assert not namespace_exists(cluster, target)


def test_generated_secret_is_stable_across_restarts(cluster: Cluster, operator: Operator, team: str) -> None:
    body = manifest(team, "stable", 108, secrets=[{"generate": {"name": "s", "keys": ["A", "B"], "length": 20}}])
    apply(cluster, body)
    obj = wait_condition(cluster, team, "stable", "Ready")
    target = obj["status"]["namespace"]
    before = secret_data(cluster, target, "s")
    assert sorted(before) == ["A", "B"] and all(len(v) == 20 for v in before.values())
    assert operator.stop() == 0
    operator.start()
    body["spec"]["source"]["commit"] = "eeeeeee"
    apply(cluster, body)
    obj = wait_condition(cluster, team, "stable", "Ready")
    assert obj["status"]["lastUpdate"]["generation"] == obj["metadata"]["generation"]
    assert secret_data(cluster, target, "s") == before
    log = operator.log.read_text()
    assert all(v not in log for v in before.values())


def test_pull_request_and_repository_are_immutable(cluster: Cluster, team: str) -> None:
    apply(cluster, manifest(team, "immutable", 109))
    for field, value in (("pullRequest", 110), ("repository", "github.com/acme/other")):
        patched = cluster.kubectl(
            "patch", "-n", team, PE, "immutable", "--type=merge",
            "-p", json.dumps({"spec": {"source": {field: value}}}), check=False,
        )  # fmt: skip
        assert patched.returncode != 0
        assert f"source.{field} is immutable" in patched.stderr
