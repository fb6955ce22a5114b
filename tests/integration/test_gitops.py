"""GitOps against the real control plane and operator.

1. Health through real reconciles: objects of every kind are driven to Ready, to a new generation the operator has
   not observed, to an in-progress rollout, to sleep (a PreviewEnvironment) and to failures (a NamespaceQuota
   conflict, crash-looping pods, a rolled-back canary). At each step the Argo CD health script runs on the live
   object and the kstatus checker checks it; the committed snapshots in tests/data/statuses must still describe the
   same conditions (refresh them with ``PLINTH_UPDATE_SNAPSHOTS=1``; the unit tests run the scripts over them
   without a cluster).
2. A GitOps-style sync: a folder of manifests server-side applied under a foreign field manager (as Argo CD or Flux
   would), reconciled to Ready, then re-applied: no conflict, no spec change, status untouched, an empty
   ``kubectl diff``, and the operator owns no spec field.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import kstatus
from tests.conftest import Cluster, Operator, create_sample_secrets, wait_for
from tests.unit.test_argocd_health import EXPECTED, SNAPSHOTS, argocd_health

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]
UPDATE_SNAPSHOTS = os.environ.get("PLINTH_UPDATE_SNAPSHOTS") == "1"
GITOPS_MANAGER = "argocd-controller"
# Placeholders that keep refreshed snapshots stable: random names and times are replaced by these.
SNAPSHOT_NAMESPACE = "team-shop"
SNAPSHOT_TIME = "2026-01-01T00:00:00Z"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in (obj.get("status") or {}).get("conditions", []) if c["type"] == type_), None)


def _signature(obj: dict[str, Any]) -> dict[str, Any]:
    """What a snapshot must keep describing: the conditions and whether the status is stale."""
    status = obj.get("status") or {}
    return {
        "conditions": [(c["type"], c["status"], c["reason"]) for c in status.get("conditions", [])],
        "stale": status.get("observedGeneration") != obj["metadata"].get("generation"),
    }


def _normalized(obj: dict[str, Any], replacements: dict[str, str]) -> dict[str, Any]:
    """The object as committed: server bookkeeping dropped, random names and times replaced by placeholders."""
    meta = {
        k: v
        for k, v in obj["metadata"].items()
        if k not in ("managedFields", "uid", "resourceVersion", "creationTimestamp", "annotations")
    }
    text = json.dumps({**obj, "metadata": meta})
    for old, new in sorted(replacements.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(old, new)
    normalized: dict[str, Any] = json.loads(TIMESTAMP.sub(SNAPSHOT_TIME, text))
    return normalized


def check_state(name: str, obj: dict[str, Any], replacements: dict[str, str]) -> None:
    """The live *obj* gets the health EXPECTED for snapshot *name*, conforms to kstatus, and matches the committed
    snapshot's conditions (or, with PLINTH_UPDATE_SNAPSHOTS=1, becomes the committed snapshot)."""
    status, message = EXPECTED[name]
    health = argocd_health(obj)
    assert health["status"] == status and message in health["message"], (name, health, obj.get("status"))
    found = kstatus.violations(obj, kstatus_truthful=False)
    assert not found, found
    path = SNAPSHOTS / name
    if UPDATE_SNAPSHOTS:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_normalized(obj, replacements), indent=2, sort_keys=True) + "\n")
        return
    assert path.exists(), f"{path} missing: run this test with PLINTH_UPDATE_SNAPSHOTS=1"
    committed = json.loads(path.read_text())
    assert _signature(committed) == _signature(obj), (
        f"{name}: the operator now reports different conditions; refresh with PLINTH_UPDATE_SNAPSHOTS=1 and review"
    )


def _apply(cluster: Cluster, body: dict[str, Any], *, manager: str = "tests") -> dict[str, Any]:
    """Server-side apply one object; returns the object as the API server stored it (status as it was)."""
    out = cluster.kubectl(
        "apply", "--server-side", f"--field-manager={manager}", "-o", "json", "-f", "-", input=yaml.safe_dump(body)
    ).stdout
    applied: dict[str, Any] = json.loads(out)
    return applied


def _reached(cluster: Cluster, ref: tuple[str, ...], type_: str, status: str, reason: str | None = None) -> Any:
    """Wait until the condition holds at the current generation; returns the object."""

    def check() -> Any:
        obj = cluster.get(*ref)
        cond = _condition(obj, type_)
        current = obj.get("status", {}).get("observedGeneration") == obj["metadata"]["generation"]
        return (
            current
            and cond is not None
            and cond["status"] == status
            and (reason is None or cond["reason"] == reason)
            and obj
        )

    return wait_for(check, timeout=120, what=f"{' '.join(ref)}: {type_}={status} {reason or ''}")


@pytest.fixture
def quotas(cluster: Cluster) -> Iterator[list[str]]:
    """Names of cluster-scoped NamespaceQuotas a test creates; deleted afterwards (no namespace collects them)."""
    names: list[str] = []
    yield names
    for name in names:
        cluster.kubectl("delete", "namespacequota", name, "--ignore-not-found", "--wait=false", check=False)


def _quota(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "plinth.dev/v1alpha1",
        "kind": "NamespaceQuota",
        "metadata": {"name": name},
        "spec": {"namespaces": [namespace], "perNamespace": {"hard": {"pods": "10"}}},
    }


def test_namespacequota_health_through_real_reconciles(
    cluster: Cluster, operator: Operator, namespace: str, quotas: list[str]
) -> None:
    token = uuid.uuid4().hex[:6]
    first, second = f"gitops-{token}-a", f"gitops-{token}-b"
    quotas.extend([first, second])
    names = {namespace: SNAPSHOT_NAMESPACE, first: "shop", second: "shop-duplicate"}

    _apply(cluster, _quota(first, namespace))
    obj = _reached(cluster, ("namespacequota", first), "Ready", "True")
    check_state("namespacequota/ready.json", obj, names)

    # A new spec: the API server bumps the generation; the status still describes the previous one.
    changed = _quota(first, namespace)
    changed["spec"]["perNamespace"]["hard"]["pods"] = "12"
    applied = _apply(cluster, changed)
    assert applied["metadata"]["generation"] == applied["status"]["observedGeneration"] + 1
    check_state("namespacequota/new-generation.json", applied, names)
    obj = _reached(cluster, ("namespacequota", first), "Ready", "True")
    assert argocd_health(obj)["status"] == "Healthy"

    # A younger quota selecting the same namespace loses it: Conflict, Degraded.
    _apply(cluster, _quota(second, namespace))
    obj = _reached(cluster, ("namespacequota", second), "Conflict", "True", "NamespaceClaimedByOlderQuota")
    check_state("namespacequota/conflict.json", obj, names)
    # The winner stays Healthy.
    assert argocd_health(cluster.get("namespacequota", first))["status"] == "Healthy"


def test_a_conflicting_quota_is_not_current_to_flux(
    cluster: Cluster, operator: Operator, namespace: str, quotas: list[str]
) -> None:
    token = uuid.uuid4().hex[:6]
    first, second = f"gitops-{token}-a", f"gitops-{token}-b"
    quotas.extend([first, second])
    _apply(cluster, _quota(first, namespace))
    _reached(cluster, ("namespacequota", first), "Ready", "True")
    _apply(cluster, _quota(second, namespace))
    obj = _reached(cluster, ("namespacequota", second), "Conflict", "True", "NamespaceClaimedByOlderQuota")
    assert kstatus.compute(obj) == "Failed"
    assert kstatus.violations(obj) == []


def _model(name: str, namespace: str, version: str = "1.4.0", image: str = "model-server:2.1") -> dict[str, Any]:
    return {
        "apiVersion": "plinth.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"name": "fraud-scorer", "version": version, "uri": f"s3://models/fraud/{version}"},
            "runtime": {"image": f"registry.example/{image}", "port": 8080},
            "replicas": 1,
        },
    }


def test_modeldeployment_health_through_real_reconciles(cluster: Cluster, operator: Operator, namespace: str) -> None:
    names = {namespace: SNAPSHOT_NAMESPACE}
    ref = ("-n", namespace, "modeldeployment", "fraud-scorer")
    _apply(cluster, _model("fraud-scorer", namespace))
    obj = _reached(cluster, ref, "Ready", "True")
    check_state("modeldeployment/ready.json", obj, names)

    applied = _apply(cluster, _model("fraud-scorer", namespace, version="1.5.0"))
    assert applied["metadata"]["generation"] == applied["status"]["observedGeneration"] + 1
    check_state("modeldeployment/new-generation.json", applied, names)
    _reached(cluster, ref, "Ready", "True")

    # Pods that never pass readiness: the rollout cannot finish (the old version keeps serving).
    _apply(cluster, _model("fraud-scorer", namespace, version="1.6.0", image="model-server:unready"))
    obj = _reached(cluster, ref, "Reconciling", "True", "RolloutInProgress")
    check_state("modeldeployment/rollout-in-progress.json", obj, names)

    # Pods that crash-loop: Stalled, someone must fix the image.
    _apply(cluster, _model("fraud-scorer", namespace, version="1.6.1", image="model-server:crashloop"))
    obj = _reached(cluster, ref, "Stalled", "True", "CrashLoopBackOff")
    check_state("modeldeployment/crashloop.json", obj, names)


def test_failed_canary_health_through_real_reconciles(cluster: Cluster, operator: Operator, namespace: str) -> None:
    names = {namespace: SNAPSHOT_NAMESPACE}
    ref = ("-n", namespace, "modeldeployment", "fraud-scorer")
    _apply(cluster, _model("fraud-scorer", namespace))
    _reached(cluster, ref, "Ready", "True")
    body = _model("fraud-scorer", namespace)
    body["spec"]["canary"] = {
        "version": "1.5.0",
        "uri": "s3://models/fraud/1.5.0",
        "image": "registry.example/model-server:crashloop",
        "trafficPercent": 50,
        "autoPromote": {"after": "1s"},
    }
    _apply(cluster, body)
    obj = _reached(cluster, ref, "CanaryHealthy", "False", "CanaryRolledBack")
    check_state("modeldeployment/canary-rolled-back.json", obj, names)


def _preview(namespace: str, team: str, image: str = "blog:pr-42", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "plinth.dev/v1alpha1",
        "kind": "PreviewEnvironment",
        "metadata": {"name": "blog", "namespace": namespace},
        "spec": {
            "source": {"repository": "github.com/acme/blog", "pullRequest": 42},
            "team": team,
            "services": [{"name": "web", "image": f"registry.example/{image}"}],
            **spec,
        },
    }


def test_previewenvironment_health_through_real_reconciles(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    team = f"gitops-{uuid.uuid4().hex[:6]}"  # no NamespaceQuota selects this team
    ref = ("-n", namespace, "previewenvironment", "blog")
    _apply(cluster, _preview(namespace, team))
    obj = _reached(cluster, ref, "Ready", "True")
    names = {namespace: SNAPSHOT_NAMESPACE, obj["status"]["namespace"]: "preview-blog-42-0a1b2c3d", team: "blog"}
    check_state("previewenvironment/ready.json", obj, names)

    applied = _apply(cluster, _preview(namespace, team, image="blog:pr-42-b"))
    assert applied["metadata"]["generation"] == applied["status"]["observedGeneration"] + 1
    check_state("previewenvironment/new-generation.json", applied, names)
    _reached(cluster, ref, "Ready", "True")

    _apply(cluster, _preview(namespace, team, image="blog:crashloop"))
    obj = _reached(cluster, ref, "Stalled", "True", "CrashLoopBackOff")
    check_state("previewenvironment/crashloop.json", obj, names)

    # Fixed, then left alone past sleepAfter: scaled to zero on purpose, Suspended rather than Healthy.
    _apply(cluster, _preview(namespace, team, image="blog:pr-42-c", sleepAfter="3s"))
    obj = wait_for(
        lambda: (o := _reached(cluster, ref, "Ready", "True"))["status"].get("sleeping") is True and o,
        timeout=60,
        what="preview asleep",
    )
    check_state("previewenvironment/asleep.json", obj, names)


def test_cluster_check_finds_every_plinth_kind(
    cluster: Cluster, operator: Operator, namespace: str, quotas: list[str]
) -> None:
    """The checker the suite runs after every cluster test sees objects of all kinds through the `plinth` category."""
    quota = f"gitops-{uuid.uuid4().hex[:6]}"
    quotas.append(quota)
    _apply(cluster, _quota(quota, namespace))
    _apply(cluster, _model("scorer", namespace))
    preview = yaml.safe_load((ROOT / "crds" / "samples" / "previewenvironment-minimal.yaml").read_text())
    cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", "-", input=yaml.safe_dump(preview))
    _reached(cluster, ("namespacequota", quota), "Ready", "True")
    _reached(cluster, ("-n", namespace, "modeldeployment", "scorer"), "Ready", "True")
    mine = [
        o
        for o in kstatus.plinth_objects(cluster)
        if o["metadata"].get("namespace") == namespace or o["metadata"]["name"] == quota
    ]
    assert sorted(o["kind"] for o in mine) == ["ModelDeployment", "NamespaceQuota", "PreviewEnvironment"]
    assert [v for o in mine for v in kstatus.violations(o)] == []
    assert not [v for v in kstatus.cluster_violations(cluster) if namespace in v or quota in v]


# --- GitOps-style sync ------------------------------------------------------------------------------------------

# The samples a GitOps repository would hold, adapted: cluster-scoped NamespaceQuotas get unique names and select only
# this test's namespaces; previews get a team no other quota selects. (previewenvironment-pr-1234.yaml needs a
# secret to copy and an IngressClass, which belong to its own tests.)
SYNCED_SAMPLES = (
    "previewenvironment-minimal.yaml",
    "modeldeployment-minimal.yaml",
    "modeldeployment-canary.yaml",
    "namespacequota-team-shop.yaml",
    "namespacequota-previews.yaml",
)


def _write_folder(folder: Path, namespace: str, token: str, cluster: Cluster) -> list[tuple[str, ...]]:
    """Copy the samples into *folder*, adapted to this test; returns a `kubectl get` reference per object."""
    refs: list[tuple[str, ...]] = []
    for sample in SYNCED_SAMPLES:
        body = yaml.safe_load((ROOT / "crds" / "samples" / sample).read_text())
        if body["kind"] == "NamespaceQuota":
            body["metadata"]["name"] = f"{body['metadata']['name']}-{token}"
            selected = f"{namespace}-{body['metadata']['name']}"[:63].rstrip("-")
            cluster.kubectl("create", "namespace", selected)
            cluster.kubectl("label", "namespace", selected, f"plinth.dev/gitops-test={token}")
            body["spec"]["namespaces"] = {"selector": {"matchLabels": {"kubernetes.io/metadata.name": selected}}}
            refs.append(("namespacequota", body["metadata"]["name"]))
        else:
            body["metadata"]["namespace"] = namespace
            if body["kind"] == "PreviewEnvironment":
                body["spec"]["team"] = f"gitops-{token}"
            refs.append(("-n", namespace, body["kind"].lower(), body["metadata"]["name"]))
        (folder / sample).write_text(yaml.safe_dump(body))
    return refs


def _fields(entry: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = entry.get("fieldsV1") or {}
    return fields


def test_gitops_sync_is_idempotent_and_the_operator_owns_no_spec_field(
    cluster: Cluster, operator: Operator, namespace: str, tmp_path: Path
) -> None:
    token = uuid.uuid4().hex[:6]
    folder = tmp_path / "gitops"
    folder.mkdir()
    refs = _write_folder(folder, namespace, token, cluster)
    create_sample_secrets(cluster, namespace)
    apply = ("apply", "--server-side", f"--field-manager={GITOPS_MANAGER}", "-f", str(folder))
    try:
        cluster.kubectl(*apply)
        settled = {ref: _reached(cluster, ref, "Ready", "True") for ref in refs}

        # What Argo CD's diff and Flux's drift detection compute: a server-side dry-run apply against the live state.
        diff = cluster.kubectl(
            "diff", "--server-side", f"--field-manager={GITOPS_MANAGER}", "-f", str(folder), check=False
        )
        assert diff.returncode == 0, diff.stdout + diff.stderr

        # The next sync: same folder, no conflict (kubectl exits non-zero on one), nothing changes.
        again = cluster.kubectl(*apply, "-o", "json")
        applied = json.loads(again.stdout)
        applied_items = applied["items"] if applied.get("kind") == "List" else [applied]
        assert len(applied_items) == len(refs)
        for ref in refs:
            before, now = settled[ref], cluster.get(*ref)
            assert now["metadata"]["generation"] == before["metadata"]["generation"], ref
            assert now["spec"] == before["spec"], ref
            assert now["status"] == before["status"], ref
            assert argocd_health(now)["status"] == "Healthy", ref
            assert kstatus.compute(now) == "Current", ref
        for item in applied_items:
            ref_key = (item["metadata"]["name"], item["kind"])
            before = next(b for b in settled.values() if (b["metadata"]["name"], b["kind"]) == ref_key)
            assert item["status"] == before["status"], ref_key

        for ref in refs:
            managed = cluster.get(*ref, "--show-managed-fields")["metadata"]["managedFields"]
            gitops = [e for e in managed if e["manager"] == GITOPS_MANAGER]
            assert [e["operation"] for e in gitops] == ["Apply"], (ref, managed)
            assert "f:status" not in _fields(gitops[0]), ref
            # Everyone else (the operator's status writes, kopf's finalizer and progress annotations) stays out of
            # spec: a GitOps tool never meets a field it has to fight over.
            for entry in managed:
                if entry["manager"] == GITOPS_MANAGER:
                    continue
                fields = _fields(entry)
                assert set(fields) <= {"f:status", "f:metadata"}, (ref, entry["manager"], fields)
                assert set(fields.get("f:metadata", {})) <= {"f:annotations", "f:finalizers"}, (ref, entry)
                if "f:status" in fields:
                    assert entry.get("subresource") == "status", (ref, entry)
            # Not vacuous: the operator did write this object's status, and holds a preview with its finalizer (the
            # other kinds have none: their children are garbage-collected).
            others = [_fields(e) for e in managed if e["manager"] != GITOPS_MANAGER]
            assert any("f:status" in f for f in others), (ref, managed)
            finalized = any("f:finalizers" in f.get("f:metadata", {}) for f in others)
            assert finalized == ("previewenvironment" in ref), (ref, managed)
    finally:
        for ref in refs:
            if ref[0] == "namespacequota":
                cluster.kubectl("delete", *ref, "--ignore-not-found", "--wait=false", check=False)
        cluster.kubectl("delete", "namespace", "-l", f"plinth.dev/gitops-test={token}", "--wait=false", check=False)
