"""Skipping applies that cannot change anything: the applied hash and the managedFields drift check (pure functions;
the cluster tests prove the same against real managedFields)."""

from __future__ import annotations

import copy
from typing import Any

from plinth.adapters.kubernetes import APPLIED_HASH_ANNOTATION, applied_hash, up_to_date, with_applied_hash

DESIRED: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "p", "labels": {"app": "web"}},
    "spec": {
        "replicas": 2,
        "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}]}]}},
    },
}


def plinth_fields(replicas: bool = True, image: bool = True) -> dict[str, Any]:
    """Plinth's own Apply entry for DESIRED as the API server records it (ports keyed with the defaulted protocol)."""
    container: dict[str, Any] = {
        ".": {},
        "f:name": {},
        "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}},
    }
    if image:
        container["f:image"] = {}
    spec: dict[str, Any] = {"f:template": {"f:spec": {"f:containers": {'k:{"name":"web"}': container}}}}
    if replicas:
        spec["f:replicas"] = {}
    meta = {"f:labels": {"f:app": {}}, "f:annotations": {f"f:{APPLIED_HASH_ANNOTATION}": {}}}
    return {"manager": "plinth", "operation": "Apply", "fieldsV1": {"f:metadata": meta, "f:spec": spec}}


PLINTH = plinth_fields()
CONTROLLER_STATUS = {
    "manager": "kube-controller-manager",
    "operation": "Update",
    "subresource": "status",
    "fieldsV1": {"f:status": {"f:replicas": {}}},
}
CONTROLLER_REVISION = {
    "manager": "kube-controller-manager",
    "operation": "Update",
    "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:deployment.kubernetes.io/revision": {}}}},
}


def live(*managers: dict[str, Any], manifest: dict[str, Any] = DESIRED) -> dict[str, Any]:
    obj = copy.deepcopy(with_applied_hash(manifest))
    obj["metadata"]["managedFields"] = list(managers)
    obj["status"] = {"replicas": 2}
    return obj


def test_hash_ignores_its_own_annotation_and_key_order() -> None:
    reordered = {
        "spec": DESIRED["spec"],
        "kind": "Deployment",
        "metadata": DESIRED["metadata"],
        "apiVersion": "apps/v1",
    }
    assert applied_hash(reordered) == applied_hash(DESIRED) == applied_hash(with_applied_hash(DESIRED))
    changed = copy.deepcopy(DESIRED)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    assert applied_hash(changed) != applied_hash(DESIRED)
    assert with_applied_hash(DESIRED)["metadata"]["annotations"] == {APPLIED_HASH_ANNOTATION: applied_hash(DESIRED)}


def test_unchanged_object_with_only_controllers_and_user_labels_beside_ours_is_up_to_date() -> None:
    user_label = {
        "manager": "kubectl-label",
        "operation": "Update",
        "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:team.example.com/owner": {}}}},
    }
    assert up_to_date(DESIRED, live(PLINTH, CONTROLLER_STATUS, CONTROLLER_REVISION, user_label), "plinth")


def test_a_new_desired_state_a_missing_or_deleted_object_needs_an_apply() -> None:
    changed = copy.deepcopy(DESIRED)
    changed["spec"]["replicas"] = 3
    assert not up_to_date(changed, live(PLINTH), "plinth")
    assert not up_to_date(DESIRED, None, "plinth")
    deleting = live(PLINTH)
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert not up_to_date(DESIRED, deleting, "plinth")
    unstamped = live(PLINTH)
    del unstamped["metadata"]["annotations"]
    assert not up_to_date(DESIRED, unstamped, "plinth")  # applied before the hash existed


def test_a_field_taken_by_another_manager_or_removed_is_drift() -> None:
    # kubectl scale / edit (Update): the edited field's ownership moves to the editor, out of plinth's entry.
    scaled = {
        "manager": "kubectl",
        "operation": "Update",
        "subresource": "scale",
        "fieldsV1": {"f:spec": {"f:replicas": {}}},
    }
    assert not up_to_date(DESIRED, live(plinth_fields(replicas=False), scaled), "plinth")
    assert not up_to_date(DESIRED, live(plinth_fields(image=False)), "plinth")
    # Another manager sharing a field (same value applied) takes nothing from plinth.
    shared = {"manager": "argocd", "operation": "Apply", "fieldsV1": {"f:spec": {"f:replicas": {}}}}
    assert up_to_date(DESIRED, live(PLINTH, shared), "plinth")
    # Plinth's entry must be there, once, as an Apply, keyed as the manifest's items are.
    assert not up_to_date(DESIRED, live(), "plinth")
    assert not up_to_date(DESIRED, live({**PLINTH, "operation": "Update"}), "plinth")
    other_port = plinth_fields()
    container = other_port["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']
    container["f:ports"] = {'k:{"containerPort":81,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}}
    assert not up_to_date(DESIRED, live(other_port), "plinth")


def test_empty_values_and_fields_owned_as_a_whole_need_no_entries() -> None:
    desired = copy.deepcopy(DESIRED)
    container = desired["spec"]["template"]["spec"]["containers"][0]
    container.update(env=[], resources={}, command=None)
    desired["spec"]["selector"] = {"matchLabels": {"app": "web"}}  # atomic: recorded as f:selector {}
    entry = plinth_fields()
    entry["fieldsV1"]["f:spec"]["f:selector"] = {}
    assert up_to_date(desired, live(entry, manifest=desired), "plinth")
    autoscaled = copy.deepcopy(DESIRED)
    del autoscaled["spec"]["replicas"]
    hpa = {"manager": "hpa", "operation": "Update", "subresource": "scale", "fieldsV1": {"f:spec": {"f:replicas": {}}}}
    assert up_to_date(autoscaled, live(plinth_fields(replicas=False), hpa, manifest=autoscaled), "plinth")


def test_secrets_carry_no_hash_and_are_rewritten_only_when_they_differ() -> None:
    from plinth.adapters.secrets import KubernetesSecrets, StoredSecret

    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "p", "labels": {"a": "b"}}}
    secret["data"] = {"password": "aHVudGVyMg=="}
    assert with_applied_hash(secret) == secret  # a digest of the values would let guesses of them be checked
    assert not up_to_date(secret, copy.deepcopy(secret), "plinth")

    applied: list[dict[str, Any]] = []

    class Recorder:
        def apply(self, manifest: dict[str, Any], *, live: dict[str, Any] | None = None) -> dict[str, Any]:
            applied.append(manifest)
            return manifest

    secrets = KubernetesSecrets(Recorder())  # type: ignore[arg-type]
    same = StoredSecret("p", "db", "Opaque", {}, {"a": "b", "user": "label"}, {"password": "aHVudGVyMg=="})
    secrets.write(secret, current=same)
    assert applied == []
    changed = StoredSecret("p", "db", "Opaque", {}, {"a": "b"}, {"password": "b2xk"})
    secrets.write(secret, current=changed)
    secrets.write(secret)
    assert applied == [secret, secret]
