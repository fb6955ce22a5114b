"""Security against the real control plane: secret hygiene, tenancy, Pod Security and the aggregate quota.

- A canary value, random per run, travels through every secret path (copy from the preview's own namespace, copy
  from an opted-in namespace, a generated Secret, storage credentials of a ModelDeployment, a refused copy, and a
  failed write carrying Secret data) and must appear, in any encoding, in no operator log line, Event, Plinth object,
  annotation or label of any object in the namespaces involved, non-Secret object there, or metric.
- A user who may only manage PreviewEnvironments and ModelDeployments in their namespace (a ServiceAccount with a
  Role, impersonated) cannot read or write elsewhere, and what Plinth writes for them is only the documented children
  in their preview namespace (plus a ModelDeployment's children beside it); the only cluster-scoped child is the
  preview Namespace. docs/security.md has the threat model these tests follow.
- Preview namespaces enforce Pod Security "restricted" (the API server refuses a privileged pod there), and Plinth's
  own pods there are admitted.
- 20 PreviewEnvironments created at once cannot overflow their team's NamespaceQuota total.
"""

from __future__ import annotations

import base64
import json
import math
import secrets
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import yaml
from plinth.operator.builders import quota
from plinth.operator.builders.preview import namespace_name

from tests.conftest import Cluster, Operator, wait_for

pytestmark = pytest.mark.cluster
PE = "previewenvironment"
MD = "modeldeployment"
FIELD_MANAGER = "plinth"
# What Plinth may create, per docs/previewenvironment.md and docs/modeldeployment.md (security.md lists them all).
PREVIEW_CHILDREN = {
    "Deployment",
    "Service",
    "Ingress",
    "HTTPRoute",
    "Secret",
    "ModelDeployment",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
}
MODEL_CHILDREN = {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "HTTPRoute"}


# -- helpers -----------------------------------------------------------------------------------------------------


def preview(namespace: str, name: str, pr: int, *, team: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "source": {"repository": "github.com/acme/shop", "pullRequest": pr, "commit": "aaaaaaa"},
        "team": team,
        "services": [{"name": "web", "image": "registry.example/shop-web:pr", "port": 8080}],
        **spec,
    }
    return {
        "apiVersion": "plinth.dev/v1alpha1",
        "kind": "PreviewEnvironment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def model(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "plinth.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"name": name, "version": "1.0.0", "uri": f"s3://models/{name}/1.0.0"},
            "runtime": {"image": "registry.example/model-server:2"},
            **spec,
        },
    }


def apply(cluster: Cluster, body: dict[str, Any], *, user: str | None = None) -> None:
    who = ["--as", user] if user else []
    cluster.kubectl(*who, "apply", "--server-side", "--field-manager=ci", "-f", "-", input=yaml.safe_dump(body))


def create_secret(
    cluster: Cluster,
    namespace: str,
    name: str,
    values: dict[str, str],
    *,
    type_: str = "Opaque",
    annotations: dict[str, str] | None = None,
) -> None:
    """``kubectl create`` (never client-side apply, whose last-applied annotation would hold the values)."""
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
        "type": type_,
        "data": {k: b64(v) for k, v in values.items()},
    }
    cluster.kubectl("create", "-f", "-", input=json.dumps(body))


def get(cluster: Cluster, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
    found = cluster.kubectl("get", "-n", namespace, resource, name, "-o", "json", check=False)
    return json.loads(found.stdout) if found.returncode == 0 else None


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return {}


def current(obj: dict[str, Any] | None, type_: str, reason: str | None = None) -> bool:
    """Whether *type_* is True (with *reason*, if given) for the object's current generation."""
    cond = condition(obj, type_)
    return (
        obj is not None
        and cond.get("status") == "True"
        and cond.get("observedGeneration") == obj["metadata"]["generation"]
        and (reason is None or cond.get("reason") == reason)
    )


def wait_condition(
    cluster: Cluster, ref: tuple[str, str, str], type_: str, reason: str | None = None
) -> dict[str, Any]:
    """The object *ref* (resource, namespace, name) once *type_* is True (with *reason*) for its generation."""
    resource, namespace, name = ref

    def check() -> dict[str, Any] | None:
        obj = get(cluster, resource, namespace, name)
        return obj if current(obj, type_, reason) else None

    try:
        found: dict[str, Any] = wait_for(check, timeout=120, what=f"{resource}/{name}: {type_}=True {reason or ''}")
    except AssertionError as timeout:
        now = ((get(cluster, resource, namespace, name) or {}).get("status") or {}).get("conditions")
        raise AssertionError(f"{timeout}; conditions now: {json.dumps(now, indent=1)}") from None
    return found


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def encodings(value: str) -> set[str]:
    """*value* and the forms it could leak in: base64 (also nested, URL-safe, and at every alignment inside a longer
    base64 blob, e.g. a whole Secret encoded into an annotation) and hex."""
    raw = value.encode()
    found = {value, raw.hex(), b64(b64(value)).rstrip("="), base64.urlsafe_b64encode(raw).decode().rstrip("=")}
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        found.add(encoded[math.ceil(offset * 8 / 6) : -3])  # characters determined by *value* alone
    return found


def leaks(text: str, canaries: list[str]) -> list[str]:
    return sorted({form for canary in canaries for form in encodings(canary) if form in text})


def namespaced_resources(cluster: Cluster) -> list[str]:
    out = cluster.kubectl("api-resources", "--verbs=list", "--namespaced", "-o", "name").stdout.split()
    # Events are searched across all namespaces on their own.
    return [r for r in out if r not in ("events", "events.events.k8s.io")]


def objects_in(cluster: Cluster, namespace: str, resources: list[str]) -> list[dict[str, Any]]:
    """Every object in *namespace*, of every listable kind, with managedFields."""
    result = cluster.kubectl(
        "get", ",".join(resources), "-n", namespace, "-o", "json", "--show-managed-fields", "--ignore-not-found"
    )
    items: list[dict[str, Any]] = json.loads(result.stdout or '{"items": []}')["items"] if result.stdout else []
    return items


def written_by_plinth(obj: dict[str, Any]) -> bool:
    """Plinth wrote the object itself (server-side apply under its field manager), not only its status, for a
    PreviewEnvironment or ModelDeployment (a NamespaceQuota's children are the platform team's doing: it selects
    namespaces, users do not)."""
    if quota.OWNER_LABEL in (obj["metadata"].get("labels") or {}):
        return False
    return any(
        entry.get("manager") == FIELD_MANAGER and entry.get("subresource") != "status"
        for entry in obj["metadata"].get("managedFields") or []
    )


def forbidden(result: Any) -> bool:
    return bool(result.returncode != 0 and "forbidden" in result.stderr.lower())


@pytest.fixture
def namespaces(cluster: Cluster) -> Iterator[list[str]]:
    """Creates namespaces on demand (append to the list); deletes them and their Plinth objects afterwards."""
    created: list[str] = []
    yield created
    for name in created:
        cluster.kubectl("delete", f"{PE},{MD}", "--all", "-n", name, "--wait=false", check=False)
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def new_namespace(cluster: Cluster, namespaces: list[str], prefix: str, labels: dict[str, str] | None = None) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    namespaces.append(name)
    if labels:
        cluster.kubectl("label", "namespace", name, *(f"{k}={v}" for k, v in labels.items()))
    return name


# -- secret hygiene ----------------------------------------------------------------------------------------------


def test_encodings_find_a_value_inside_encoded_blobs() -> None:
    """The search itself: a value is found raw, base64-encoded, and base64-encoded inside a longer blob at every
    alignment, so a leak through an encoded annotation cannot slip past the canary test."""
    value = "cnry" + secrets.token_hex(8)
    for prefix in ("", "a", "ab", "abc"):
        assert leaks(b64(prefix + value + "tail"), [value]), prefix
        assert leaks(json.dumps({"data": {"k": b64(prefix + value)}}), [value]), prefix
    assert leaks(b64(b64(value)), [value])
    assert not leaks(b64("something else entirely"), [value])


def leaky_preview(home: str, shared: str) -> dict[str, Any]:
    """A preview using every secret path: a copy from its namespace (also an env reference and a model's storage
    credentials), a copy from an opted-in namespace, and a generated Secret."""
    return preview(
        home,
        "leak",
        301,
        team="leak",
        services=[
            {
                "name": "web",
                "image": "registry.example/shop-web:pr",
                "env": [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}],
            }
        ],
        secrets=[
            {"copyFrom": {"name": "db"}},
            {"copyFrom": {"name": "registry", "namespace": shared}},
            {"generate": {"name": "session", "keys": ["SECRET_KEY", "API_TOKEN"], "length": 48}},
        ],
        models=[
            {
                "name": "scorer",
                "spec": {
                    "model": {"name": "scorer", "version": "1.0.0", "uri": "s3://models/scorer/1.0.0"},
                    "runtime": {"image": "registry.example/model-server:2"},
                    "storage": {"secretRef": {"name": "db"}},
                },
            }
        ],
        ingress={"domain": "preview.example.com"},
    )


def decoded(cluster: Cluster, namespace: str, name: str) -> dict[str, str]:
    data = cluster.get("-n", namespace, "secret", name)["data"]
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def leak_report(cluster: Cluster, operator: Operator, canaries: list[str], involved: list[str]) -> dict[str, list[str]]:
    """Where any form of a canary shows up, outside the data of Secrets: {place: forms found}, empty places left
    out."""
    found: dict[str, list[str]] = {"operator log": leaks(operator.log.read_text(), canaries)}
    for resource in ("events", "events.events.k8s.io"):
        found[f"{resource} (all namespaces)"] = leaks(
            cluster.kubectl("get", resource, "-A", "-o", "json").stdout, canaries
        )
    plinth_objects = cluster.kubectl("get", "plinth", "-A", "-o", "json", "--show-managed-fields").stdout
    found["Plinth objects"] = leaks(plinth_objects, canaries)
    found["NamespaceQuotas"] = leaks(cluster.kubectl("get", "namespacequotas", "-o", "json").stdout, canaries)
    found["/metrics"] = leaks(operator.metrics(), canaries)
    found["Namespace objects"] = leaks(cluster.kubectl("get", "namespace", *involved, "-o", "json").stdout, canaries)
    resources = namespaced_resources(cluster)
    secrets_seen = 0
    for namespace in involved:
        for item in objects_in(cluster, namespace, resources):
            where = f"{item['kind']} {namespace}/{item['metadata']['name']}"
            if item["kind"] == "Secret":
                secrets_seen += 1
                # Values live in data; everything else about a Secret (annotations, labels, managedFields) is public.
                found[f"{where} metadata"] = leaks(json.dumps(item["metadata"]), canaries)
            else:
                found[where] = leaks(json.dumps(item), canaries)
    assert secrets_seen >= 7  # db, s3, registry, prod, and the three in the preview namespace
    return {where: forms for where, forms in found.items() if forms}


def test_canary_secret_never_leaks(cluster: Cluster, operator: Operator, namespaces: list[str]) -> None:
    canary = f"cnry{secrets.token_hex(12)}"  # random per run: no earlier run can have left it anywhere
    refused_canary = f"cnry{secrets.token_hex(12)}"
    home = new_namespace(cluster, namespaces, "leak-home")
    shared = new_namespace(cluster, namespaces, "leak-shared")
    vault = new_namespace(cluster, namespaces, "leak-vault")
    create_secret(cluster, home, "db", {"password": canary})
    create_secret(cluster, home, "s3", {"AWS_ACCESS_KEY_ID": "AKIATEST", "AWS_SECRET_ACCESS_KEY": canary})
    opt_in = {"plinth.dev/preview-namespaces": home}
    create_secret(cluster, shared, "registry", {"token": canary}, annotations=opt_in)
    create_secret(cluster, vault, "prod", {"password": refused_canary})  # no opt-in

    body = leaky_preview(home, shared)
    apply(cluster, body)
    refused_copy = [{"copyFrom": {"name": "prod", "namespace": vault}}]
    apply(cluster, preview(home, "refused", 302, team="leak", secrets=refused_copy))
    apply(cluster, model(home, "stored", storage={"secretRef": {"name": "s3"}}))
    target = wait_condition(cluster, (PE, home, "leak"), "Ready")["status"]["namespace"]
    refused = wait_condition(cluster, (PE, home, "refused"), "Stalled", "SecretCopyRefused")
    wait_condition(cluster, (MD, home, "stored"), "Ready")
    wait_condition(cluster, (MD, target, "scorer"), "Ready")

    # The canary really went through every path (positive controls).
    assert decoded(cluster, target, "db") == {"password": canary}
    assert decoded(cluster, target, "registry") == {"token": canary}
    generated = list(decoded(cluster, target, "session").values())
    assert len(generated) == 2 and all(len(v) == 48 for v in generated)
    for namespace, name, secret in ((home, "stored", "s3"), (target, "scorer", "db")):
        volumes = cluster.get("-n", namespace, "deployment", name)["spec"]["template"]["spec"]["volumes"]
        assert [v["secret"]["secretName"] for v in volumes] == [secret]
    assert not namespace_exists(cluster, refused["status"]["namespace"])

    # A push: every secret path runs again (copies refreshed, generated values kept), with events.
    body["spec"]["source"]["commit"] = "bbbbbbb"
    apply(cluster, body)
    wait_condition(cluster, (PE, home, "leak"), "Ready")
    assert sorted(decoded(cluster, target, "session").values()) == sorted(generated)

    # A failing write with Secret data in flight: the source is recreated with another type, which the existing
    # copy cannot take (a Secret's type is immutable). Whatever the operator does, it must not print the data.
    cluster.kubectl("delete", "secret", "registry", "-n", shared)
    basic_auth = {"username": canary, "password": canary}
    create_secret(cluster, shared, "registry", basic_auth, type_="kubernetes.io/basic-auth", annotations=opt_in)

    def write_attempted() -> bool:
        copy = get(cluster, "secret", target, "registry") or {}
        failed = current(get(cluster, PE, home, "leak"), "Stalled", "Invalid")  # a Secret's type is immutable
        return failed or copy.get("type") == "kubernetes.io/basic-auth"

    wait_for(write_attempted, timeout=90, what="the operator to act on the changed source Secret")

    assert leak_report(cluster, operator, [canary, refused_canary, *generated], [home, shared, vault, target]) == {}
    # The refused copy left no copy anywhere: the value is only in its original.
    holders = [
        f"{s['metadata']['namespace']}/{s['metadata']['name']}"
        for s in cluster.get("secrets", "-A")["items"]
        if leaks(json.dumps(s.get("data") or {}), [refused_canary])
    ]
    assert holders == [f"{vault}/prod"]


def test_revoking_the_opt_in_removes_the_copy(cluster: Cluster, operator: Operator, namespaces: list[str]) -> None:
    """The owner of a shared Secret withdraws a namespace from its opt-in: the preview is refused from then on
    (SecretCopyRefused), and the copy it holds goes too; a copy must not outlive the consent it was made under."""
    home = new_namespace(cluster, namespaces, "revoke-home")
    shared = new_namespace(cluster, namespaces, "revoke-shared")
    create_secret(cluster, shared, "registry", {"token": "t"}, annotations={"plinth.dev/preview-namespaces": home})
    apply(
        cluster,
        preview(home, "revoke", 303, team="revoke", secrets=[{"copyFrom": {"name": "registry", "namespace": shared}}]),
    )
    target = wait_condition(cluster, (PE, home, "revoke"), "Ready")["status"]["namespace"]
    assert decoded(cluster, target, "registry") == {"token": "t"}

    cluster.kubectl("annotate", "secret", "registry", "-n", shared, "plinth.dev/preview-namespaces-")
    wait_condition(cluster, (PE, home, "revoke"), "Stalled", "SecretCopyRefused")
    wait_for(
        lambda: get(cluster, "secret", target, "registry") is None,
        timeout=60,
        what=f"the copy in {target} to be deleted after the opt-in was withdrawn",
    )


def namespace_exists(cluster: Cluster, name: str) -> bool:
    return cluster.kubectl("get", "namespace", name, check=False).returncode == 0


# -- tenancy -----------------------------------------------------------------------------------------------------


def preview_user(cluster: Cluster, namespace: str) -> str:
    """A ServiceAccount allowed to manage PreviewEnvironments and ModelDeployments in *namespace*, and nothing else;
    returns the user name to impersonate."""
    rbac = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "dev", "namespace": namespace}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "previews", "namespace": namespace},
            "rules": [
                {
                    "apiGroups": ["plinth.dev"],
                    "resources": ["previewenvironments", "modeldeployments"],
                    "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "previews", "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "previews"},
            "subjects": [{"kind": "ServiceAccount", "name": "dev", "namespace": namespace}],
        },
    ]
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(rbac))
    return f"system:serviceaccount:{namespace}:dev"


def test_a_preview_user_cannot_use_plinth_beyond_their_namespace(
    cluster: Cluster, operator: Operator, namespaces: list[str]
) -> None:
    team = f"tenant-{uuid.uuid4().hex[:6]}"
    home = new_namespace(cluster, namespaces, "tenant-home", {"plinth.dev/team": team})
    other = new_namespace(cluster, namespaces, "tenant-other")
    create_secret(cluster, other, "prod-db", {"password": "other-team"})
    user = preview_user(cluster, home)

    def as_user(*args: str, input: str | None = None) -> Any:
        return cluster.kubectl("--as", user, *args, input=input, check=False)

    # Directly, the user can do nothing but manage Plinth objects in their namespace.
    assert as_user("auth", "can-i", "create", "previewenvironments", "-n", home).stdout.strip() == "yes"
    for args in (
        ("get", "secrets", "-n", home),
        ("get", "secret", "prod-db", "-n", other),
        ("create", "secret", "generic", "x", "-n", other, "--from-literal=a=b"),
        ("create", "deployment", "x", "--image=registry.example/x:1", "-n", home),
        ("create", "deployment", "x", "--image=registry.example/x:1", "-n", other),
        ("create", "namespace", f"mine-{uuid.uuid4().hex[:6]}"),
        ("get", "previewenvironments", "-n", other),
    ):
        assert forbidden(as_user(*args)), args
    assert forbidden(as_user("apply", "-f", "-", input=yaml.safe_dump(preview(other, "x", 1, team=team))))

    # Through Plinth: a preview with every kind of child, and a ModelDeployment beside it.
    body = preview(
        home,
        "tenant",
        401,
        team=team,
        secrets=[{"generate": {"name": "session", "keys": ["K"]}}],
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
    )
    apply(cluster, body, user=user)
    apply(cluster, model(home, "served"), user=user)
    obj = wait_condition(cluster, (PE, home, "tenant"), "Ready")
    target = obj["status"]["namespace"]
    wait_condition(cluster, (MD, home, "served"), "Ready")

    # The preview namespace is Plinth's, not the user's: they cannot read or write in it.
    for args in (("get", "secrets", "-n", target), ("get", "pods", "-n", target), ("delete", "namespace", target)):
        assert forbidden(as_user(*args)), args

    # Everything Plinth wrote for this user: documented kinds, only in the preview namespace and (for the
    # ModelDeployment) beside it; nothing in the other namespace; no cluster-scoped child but the Namespace.
    resources = namespaced_resources(cluster)
    written = {
        namespace: sorted(
            (o["kind"], o["metadata"]["name"])
            for o in objects_in(cluster, namespace, resources)
            if written_by_plinth(o)
        )
        for namespace in (home, other, target)
    }
    assert written[other] == []
    assert written[home] == [("Deployment", "served"), ("Service", "served")]
    assert written[target] == sorted(
        [
            ("Deployment", "web"),
            ("Service", "web"),
            ("Ingress", "preview"),
            ("Secret", "session"),
            ("ModelDeployment", "scorer"),
            ("Deployment", "scorer"),
            ("Service", "scorer"),
        ]
    )
    assert {kind for kind, _ in written[target]} <= PREVIEW_CHILDREN
    assert {kind for kind, _ in written[home]} <= MODEL_CHILDREN
    cluster_scoped = cluster.kubectl("api-resources", "--verbs=list", "--namespaced=false", "-o", "name").stdout.split()
    everything = json.loads(
        cluster.kubectl("get", ",".join(cluster_scoped), "-o", "json", "--show-managed-fields").stdout
    )["items"]
    assert {o["kind"] for o in everything if written_by_plinth(o)} == {"Namespace"}

    # Plinth's pods carry no service account token: creating a ModelDeployment or a preview grants no API access
    # (the namespace's default ServiceAccount may have rights the user does not).
    for namespace in (home, target):
        for deployment in cluster.get("-n", namespace, "deployments")["items"]:
            pod_spec = deployment["spec"]["template"]["spec"]
            where = f"{namespace}/{deployment['metadata']['name']}"
            assert pod_spec.get("automountServiceAccountToken") is False, f"{where} mounts a service account token"


def test_plinth_never_writes_into_a_namespace_it_did_not_create(
    cluster: Cluster, operator: Operator, namespaces: list[str]
) -> None:
    """The preview namespace's name is derived, but a namespace of that name may already exist (created by someone
    else): Plinth refuses (NamespaceConflict) and writes nothing there, not even its labels."""
    team = f"clash-{uuid.uuid4().hex[:6]}"
    home = new_namespace(cluster, namespaces, "clash-home", {"plinth.dev/team": team})
    user = preview_user(cluster, home)
    body = preview(home, "clash", 402, team=team)
    existing = namespace_name(body)
    cluster.kubectl("create", "namespace", existing)
    namespaces.append(existing)
    before = cluster.get("namespace", existing)["metadata"]
    apply(cluster, body, user=user)
    wait_condition(cluster, (PE, home, "clash"), "Stalled", "NamespaceConflict")
    after = cluster.get("namespace", existing)["metadata"]
    assert after.get("labels") == before.get("labels") and after.get("annotations") == before.get("annotations")
    assert [o for o in objects_in(cluster, existing, namespaced_resources(cluster)) if written_by_plinth(o)] == []


def test_preview_namespaces_enforce_restricted_pod_security(
    cluster: Cluster, operator: Operator, namespaces: list[str]
) -> None:
    team = f"pss-{uuid.uuid4().hex[:6]}"
    home = new_namespace(cluster, namespaces, "pss-home", {"plinth.dev/team": team})
    body = preview(
        home,
        "pss",
        403,
        team=team,
        models=[
            {
                "name": "scorer",
                "spec": {
                    "model": {"name": "scorer", "version": "1.0.0", "uri": "s3://models/scorer/1.0.0"},
                    "runtime": {"image": "registry.example/model-server:2"},
                },
            }
        ],
    )
    apply(cluster, body)
    obj = wait_condition(cluster, (PE, home, "pss"), "Ready")
    target = obj["status"]["namespace"]
    labels = cluster.get("namespace", target)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"

    def pod(name: str, container: dict[str, Any], **spec: Any) -> str:
        manifest = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": target},
            "spec": {"containers": [{"name": "c", "image": "registry.example/x:1", **container}], **spec},
        }
        return json.dumps(manifest)

    for name, manifest in (
        ("privileged", pod("privileged", {"securityContext": {"privileged": True}})),
        ("host", pod("host", {}, hostNetwork=True, hostPID=True)),
        ("default", pod("default", {})),  # baseline would admit it; restricted does not
    ):
        refused = cluster.kubectl("create", "-f", "-", input=manifest, check=False)
        assert refused.returncode != 0, f"{name} pod admitted in {target}"
        assert 'violates PodSecurity "restricted:latest"' in refused.stderr, refused.stderr
    compliant = pod(
        "compliant",
        {
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
                "runAsNonRoot": True,
                "seccompProfile": {"type": "RuntimeDefault"},
            }
        },
    )
    cluster.kubectl("create", "--dry-run=server", "-f", "-", input=compliant)  # the policy is restricted, not closed

    # Plinth's own pods (the service and the model server) were admitted there and run.
    pods = cluster.get("-n", target, "pods")["items"]
    running = sorted(p["metadata"]["labels"].get("plinth.dev/service") or "model" for p in pods)
    assert running == ["model", "web"], running
    assert all(p["status"]["phase"] == "Running" for p in pods)


# -- aggregate quota ---------------------------------------------------------------------------------------------


def test_twenty_concurrent_previews_cannot_overflow_the_team_total(
    cluster: Cluster, operator: Operator, namespaces: list[str]
) -> None:
    """A NamespaceQuota allows the team 5 pods in total; 20 previews of one pod each are created at once. Exactly 5
    run; the other 15 report QuotaExceeded with the numbers; at no sampled moment do more than 5 pods exist."""
    team = f"burst-{uuid.uuid4().hex[:6]}"
    home = new_namespace(cluster, namespaces, "burst-home")  # unlabelled: the quota selects previews only
    quota = {
        "apiVersion": "plinth.dev/v1alpha1",
        "kind": "NamespaceQuota",
        "metadata": {"name": f"nsq-{team}"},
        "spec": {"namespaceSelector": {"matchLabels": {"plinth.dev/team": team}}, "total": {"hard": {"pods": "5"}}},
    }
    bodies = [preview(home, f"b{i:02d}", 500 + i, team=team) for i in range(20)]
    targets = {namespace_name(b) for b in bodies}
    cluster.kubectl("apply", "--server-side", "--field-manager=tests", "-f", "-", input=yaml.safe_dump(quota))

    def pod_count() -> int:
        pods = cluster.get("pods", "-A", "-l", "app.kubernetes.io/managed-by=plinth,plinth.dev/service=web")["items"]
        return sum(
            1
            for p in pods
            if p["metadata"]["namespace"] in targets
            and not p["metadata"].get("deletionTimestamp")
            and p["status"].get("phase") not in ("Succeeded", "Failed")
        )

    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], pod_count())
            done.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        with ThreadPoolExecutor(max_workers=20) as pool:
            list(pool.map(lambda b: apply(cluster, b), bodies))

        def settled() -> dict[str, str] | None:
            items = cluster.get(PE, "-n", home)["items"]
            state = {}
            for obj in items:
                if current(obj, "Ready"):
                    state[obj["metadata"]["name"]] = "Ready"
                elif current(obj, "QuotaExceeded", "QuotaExceeded"):
                    state[obj["metadata"]["name"]] = "QuotaExceeded"
            return state if len(state) == 20 else None

        state = wait_for(settled, timeout=300, interval=1, what="every preview Ready or QuotaExceeded")
        done.set()
        sampler.join()
        ready = sorted(n for n, s in state.items() if s == "Ready")
        assert len(ready) == 5, state
        assert pod_count() == 5
        assert peak[0] <= 5, f"{peak[0]} pods existed at once"
        for obj in cluster.get(PE, "-n", home)["items"]:
            if obj["metadata"]["name"] not in ready:
                message = condition(obj, "QuotaExceeded")["message"]
                assert "pods needs 1, allowed 0" in message and "pods total 5" in message, message
                assert cluster.get("-n", obj["status"]["namespace"], "deployments")["items"] == []
        used = cluster.get("namespacequota", f"nsq-{team}")["status"].get("used", {})
        assert int(used.get("pods", "0")) <= 5, used
    finally:
        done.set()
        cluster.kubectl("delete", PE, "--all", "-n", home, "--wait=false", check=False)
        wait_for(lambda: cluster.get(PE, "-n", home)["items"] == [], timeout=240, interval=1, what="previews deleted")
        cluster.kubectl("delete", "namespacequota", f"nsq-{team}", "--wait=false", check=False)
