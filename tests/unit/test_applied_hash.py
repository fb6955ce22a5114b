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
PLINTH = {"manager": "plinth", "operation": "Apply", "fieldsV1": {"f:spec": {"f:replicas": {}}}}
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


def test_a_field_taken_by_another_manager_is_drift() -> None:
    scaled = {
        "manager": "kubectl",
        "operation": "Update",
        "subresource": "scale",
        "fieldsV1": {"f:spec": {"f:replicas": {}}},
    }
    assert not up_to_date(DESIRED, live(PLINTH, scaled), "plinth")
    image_edit = {
        "manager": "kubectl-edit",
        "operation": "Update",
        "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {'k:{"name":"web"}': {"f:image": {}}}}}}},
    }
    assert not up_to_date(DESIRED, live(PLINTH, image_edit), "plinth")
    port_edit = {
        "manager": "kubectl-patch",
        "operation": "Update",
        "fieldsV1": {
            "f:spec": {
                "f:template": {
                    "f:spec": {"f:containers": {'k:{"name":"web"}': {"f:ports": {'k:{"containerPort":80}': {".": {}}}}}}
                }
            }
        },
    }
    # Owning only the item itself ('.') is not a field we set: a sidecar tool's entry beside ours stays.
    assert up_to_date(DESIRED, live(PLINTH, port_edit), "plinth")


def test_fields_of_other_containers_or_unset_fields_are_not_drift() -> None:
    sidecar = {
        "manager": "mesh-injector",
        "operation": "Update",
        "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {'k:{"name":"proxy"}': {"f:image": {}}}}}}},
    }
    hpa = {"manager": "hpa", "operation": "Update", "subresource": "scale", "fieldsV1": {"f:spec": {"f:replicas": {}}}}
    autoscaled = copy.deepcopy(DESIRED)
    del autoscaled["spec"]["replicas"]
    assert up_to_date(DESIRED, live(PLINTH, sidecar), "plinth")
    assert up_to_date(autoscaled, live(PLINTH, hpa, manifest=autoscaled), "plinth")
