"""Input only the operator can judge: the manifests are valid, but what they point at is missing or not theirs.

Admission cannot know whether a Secret, an IngressClass or a team exists, so these pass the API server (the corpus of
invalid manifests that must not is tests/data/invalid, run by test_crds_live.py). Each must end in a condition with a
reason a user can act on (`Stalled`, or `Reconciling` when it will resolve by itself), `Ready=False`, and nothing
half-applied: every check runs before the first write, so a refused preview has no namespace, and a refused update
leaves what already ran untouched.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.conftest import Cluster, Operator, wait_for
from tests.integration.test_security import preview as security_preview

pytestmark = pytest.mark.cluster
PE = "previewenvironment"
MD = "modeldeployment"


def preview(namespace: str, name: str, pr: int, *, team: str = "bad-input", **spec: Any) -> dict[str, Any]:
    """test_security's preview manifest, in this module's team by default."""
    return security_preview(namespace, name, pr, team=team, **spec)


def apply(cluster: Cluster, body: dict[str, Any]) -> None:
    cluster.kubectl("apply", "--server-side", "--field-manager=ci", "-f", "-", input=yaml.safe_dump(body))


def get(cluster: Cluster, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
    found = cluster.kubectl("get", "-n", namespace, resource, name, "-o", "json", check=False)
    return json.loads(found.stdout) if found.returncode == 0 else None


def conditions(obj: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in ((obj or {}).get("status") or {}).get("conditions") or []}


def wait_reason(cluster: Cluster, ref: tuple[str, str, str], type_: str, reason: str) -> dict[str, Any]:
    """The object *ref* (resource, namespace, name) once *type_* is True with *reason* for its current generation."""
    resource, namespace, name = ref

    def check() -> dict[str, Any] | None:
        obj = get(cluster, resource, namespace, name)
        cond = conditions(obj).get(type_) or {}
        current = obj is not None and cond.get("observedGeneration") == obj["metadata"]["generation"]
        return obj if current and cond.get("status") == "True" and cond.get("reason") == reason else None

    try:
        found: dict[str, Any] = wait_for(check, timeout=90, what=f"{resource}/{name}: {type_}=True ({reason})")
    except AssertionError as timeout:
        last = conditions(get(cluster, resource, namespace, name))
        raise AssertionError(f"{timeout}; conditions now: {json.dumps(list(last.values()), indent=1)}") from None
    return found


def namespace_exists(cluster: Cluster, name: str) -> bool:
    return cluster.kubectl("get", "namespace", name, check=False).returncode == 0


def assert_blocked(obj: dict[str, Any], type_: str, reason: str, *, names: str) -> str:
    """Ready=False with the blocking reason, and a message that names what is missing; returns the message."""
    conds = conditions(obj)
    assert conds["Ready"]["status"] == "False", conds
    assert conds["Ready"]["reason"] == reason, conds
    assert conds[type_]["status"] == "True" and conds[type_]["reason"] == reason, conds
    other = "Reconciling" if type_ == "Stalled" else "Stalled"
    assert conds.get(other, {}).get("status") != "True", f"both Stalled and Reconciling: {conds}"
    message = str(conds[type_]["message"])
    assert names in message, message
    return message


@pytest.fixture
def team(cluster: Cluster) -> Iterator[str]:
    """A team namespace for previews; deleted afterwards with what is left in it (the operator runs their
    finalizers)."""
    name = f"bad-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", PE, "--all", "-n", name, "--wait=false", check=False)
    cluster.kubectl("delete", MD, "--all", "-n", name, "--wait=false", check=False)
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_missing_secret_in_own_namespace_waits_then_proceeds(cluster: Cluster, operator: Operator, team: str) -> None:
    """A Secret of the preview's own namespace that does not exist yet is something to wait for (CI often creates
    it in the same pipeline), not a refusal: Reconciling/SecretNotFound, nothing created until it appears."""
    apply(cluster, preview(team, "nosecret", 201, secrets=[{"copyFrom": {"name": "db"}}]))
    obj = wait_reason(cluster, (PE, team, "nosecret"), "Reconciling", "SecretNotFound")
    assert_blocked(obj, "Reconciling", "SecretNotFound", names=f"{team}/db")
    target = obj["status"]["namespace"]
    assert not namespace_exists(cluster, target), "the preview namespace was created before its Secret existed"

    cluster.kubectl("create", "secret", "generic", "db", "-n", team, "--from-literal=password=later")
    obj = wait_reason(cluster, (PE, team, "nosecret"), "Ready", "Ready")
    assert obj["status"]["secrets"] == ["db"]
    assert cluster.get("-n", target, "secret", "db")["data"] == cluster.get("-n", team, "secret", "db")["data"]


def test_secret_of_another_namespace_without_opt_in_is_refused(cluster: Cluster, operator: Operator, team: str) -> None:
    """Stalled/SecretCopyRefused before anything exists; a missing Secret elsewhere is refused with the same words,
    so a preview cannot probe which Secrets another namespace has."""
    other = f"bad-other-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", other)
    try:
        cluster.kubectl("create", "secret", "generic", "prod-db", "-n", other, "--from-literal=password=prod")
        apply(cluster, preview(team, "exists", 202, secrets=[{"copyFrom": {"name": "prod-db", "namespace": other}}]))
        apply(cluster, preview(team, "missing", 203, secrets=[{"copyFrom": {"name": "nothing", "namespace": other}}]))
        messages = {}
        for name, secret in (("exists", "prod-db"), ("missing", "nothing")):
            obj = wait_reason(cluster, (PE, team, name), "Stalled", "SecretCopyRefused")
            messages[name] = assert_blocked(obj, "Stalled", "SecretCopyRefused", names=f"{other}/{secret}")
            assert not namespace_exists(cluster, obj["status"]["namespace"]), "namespace created although refused"
        assert messages["exists"].replace("prod-db", "X") == messages["missing"].replace("nothing", "X")
        # Only the original holds the value: no copy anywhere.
        assert [s["metadata"]["namespace"] for s in all_secrets_named(cluster, "prod-db")] == [other]
    finally:
        cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)


def all_secrets_named(cluster: Cluster, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.get("secrets", "-A")["items"]
    return [s for s in items if s["metadata"]["name"] == name]


def test_unknown_ingress_class_stalls_before_anything_is_created(
    cluster: Cluster, operator: Operator, team: str
) -> None:
    missing = f"no-such-class-{uuid.uuid4().hex[:6]}"
    ingress = {"domain": "preview.example.com", "className": missing}
    apply(cluster, preview(team, "noclass", 204, ingress=ingress))
    obj = wait_reason(cluster, (PE, team, "noclass"), "Stalled", "IngressClassNotFound")
    assert_blocked(obj, "Stalled", "IngressClassNotFound", names=missing)
    assert not namespace_exists(cluster, obj["status"]["namespace"])
    # Installing the class is the fix: the preview goes on without being edited (IngressClasses are watched).
    ingress_class = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": missing},
        "spec": {"controller": "example.com/none"},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(ingress_class))
    try:
        ready = wait_reason(cluster, (PE, team, "noclass"), "Ready", "Ready")
        assert "blockedBy" not in ready["status"]
        assert cluster.get("-n", ready["status"]["namespace"], "ingresses")["items"]
    finally:
        cluster.kubectl("delete", "ingressclass", missing, "--wait=false", check=False)


def test_refused_update_keeps_what_already_runs(cluster: Cluster, operator: Operator, team: str) -> None:
    """A Ready preview updated with an unknown IngressClass and a new service: Stalled, and none of the update is
    applied (no new Deployment, no Ingress), while the running service is left as it was."""
    body = preview(team, "running", 205)
    apply(cluster, body)
    obj = wait_reason(cluster, (PE, team, "running"), "Ready", "Ready")
    target = obj["status"]["namespace"]
    web_before = cluster.get("-n", target, "deployment", "web")

    missing = f"no-such-class-{uuid.uuid4().hex[:6]}"
    body["spec"]["services"].append({"name": "api", "image": "registry.example/shop-api:pr", "port": 9000})
    body["spec"]["ingress"] = {"domain": "preview.example.com", "className": missing}
    body["spec"]["source"]["commit"] = "bbbbbbb"
    apply(cluster, body)
    obj = wait_reason(cluster, (PE, team, "running"), "Stalled", "IngressClassNotFound")
    assert_blocked(obj, "Stalled", "IngressClassNotFound", names=missing)
    assert get(cluster, "deployment", target, "api") is None, "half-applied: the new service was created"
    assert cluster.get("-n", target, "ingresses")["items"] == [], "half-applied: an Ingress was created"
    web_after = cluster.get("-n", target, "deployment", "web")
    assert web_after["metadata"]["generation"] == web_before["metadata"]["generation"]
    assert web_after["spec"]["template"] == web_before["spec"]["template"]


def test_team_of_another_namespace_is_refused(cluster: Cluster, operator: Operator, team: str) -> None:
    """A namespace labelled plinth.dev/team=<a> may only create previews for team <a>: otherwise anyone allowed to
    create a PreviewEnvironment could spend (or exhaust) another team's quota."""
    cluster.kubectl("label", "namespace", team, "plinth.dev/team=alpha")
    apply(cluster, preview(team, "mismatch", 206, team="beta"))
    obj = wait_reason(cluster, (PE, team, "mismatch"), "Stalled", "TeamMismatch")
    message = assert_blocked(obj, "Stalled", "TeamMismatch", names="'beta'")
    assert "'alpha'" in message, message
    assert not namespace_exists(cluster, obj["status"]["namespace"])


def test_modeldeployment_with_missing_storage_secret_says_so(cluster: Cluster, operator: Operator, team: str) -> None:
    """spec.storage.secretRef names a Secret that does not exist. A kubelet cannot mount it, so the pods would hang
    in ContainerCreating (FailedMount) and the rollout never completes; the ModelDeployment must say which Secret is
    missing (Ready=False, reason SecretNotFound) instead of waiting without a reason, and create no Deployment whose
    pods cannot start. Once the Secret exists, it serves."""
    body = {
        "apiVersion": "plinth.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "creds", "namespace": team},
        "spec": {
            "model": {"name": "scorer", "version": "1.0.0", "uri": "s3://models/scorer/1.0.0"},
            "runtime": {"image": "registry.example/model-server:2"},
            "storage": {"secretRef": {"name": "s3-credentials"}},
        },
    }
    apply(cluster, body)
    obj = wait_reason(cluster, (MD, team, "creds"), "Reconciling", "SecretNotFound")
    assert_blocked(obj, "Reconciling", "SecretNotFound", names=f"{team}/s3-credentials")
    assert get(cluster, "deployment", team, "creds") is None, "a Deployment whose pods cannot mount their Secret"

    cluster.kubectl(
        "create", "secret", "generic", "s3-credentials", "-n", team, "--from-literal=AWS_SECRET_ACCESS_KEY=k"
    )
    wait_reason(cluster, (MD, team, "creds"), "Ready", "Serving")
