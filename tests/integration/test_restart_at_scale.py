"""Restarts: over more objects of one kind than the operator has executor threads (20) every object is resumed, and
new and deleted objects are handled (with kopf's worker_limit set, per-object workers waited for the indexes while
holding every slot, and a restarted operator reconciled nothing); over Ready objects a restart writes nothing."""

from __future__ import annotations

import json
import uuid

import pytest
import yaml

from tests.conftest import Cluster, Operator, create_sample_secrets, wait_for
from tests.integration.test_ha import _model as model_manifest
from tests.integration.test_previewenvironment import manifest as preview_manifest

pytestmark = pytest.mark.cluster
COUNT = 30


def _quota(name: str) -> dict[str, object]:
    return {
        "apiVersion": "plinth.dev/v1alpha1",
        "kind": "NamespaceQuota",
        "metadata": {"name": name, "labels": {"plinth-test": "restart-at-scale"}},
        "spec": {"namespaces": [f"absent-{name}"], "perNamespace": {"hard": {"pods": "1"}}},
    }


def _ready(cluster: Cluster, names: list[str]) -> int:
    items = cluster.get("namespacequota", "-l", "plinth-test=restart-at-scale")["items"]
    by_name = {i["metadata"]["name"]: i for i in items}
    count = 0
    for name in names:
        obj = by_name.get(name) or {}
        ready = next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), {})
        count += ready.get("status") == "True" and ready.get("observedGeneration") == obj["metadata"]["generation"]
    return count


def test_restart_over_more_objects_than_workers(cluster: Cluster, operator: Operator) -> None:
    token = uuid.uuid4().hex[:6]
    names = [f"scale-{token}-{i:02d}" for i in range(COUNT)]
    try:
        cluster.kubectl(
            "apply", "--server-side", "--field-manager=tests", "-f", "-",
            input=yaml.safe_dump_all([_quota(n) for n in names]),
        )  # fmt: skip
        wait_for(lambda: _ready(cluster, names) == COUNT, timeout=120, what=f"{COUNT} quotas Ready")
        assert operator.stop() == 0
        # While it is down: a spec change to every object, one new object, one deletion.
        for name in names[:-1]:
            cluster.kubectl(
                "patch", "namespacequota", name, "--type=merge", "-p", '{"spec":{"perNamespace":{"hard":{"pods":"2"}}}}'
            )
        cluster.kubectl("delete", "namespacequota", names[-1], "--wait=false")
        extra = f"scale-{token}-new"
        cluster.kubectl(
            "apply", "--server-side", "--field-manager=tests", "-f", "-", input=yaml.safe_dump(_quota(extra))
        )
        operator.start()
        live = [*names[:-1], extra]
        wait_for(lambda: _ready(cluster, live) == len(live), timeout=120, what="every quota Ready after the restart")
        wait_for(
            lambda: cluster.kubectl("get", "namespacequota", names[-1], check=False).returncode != 0,
            timeout=60,
            what="the deleted quota's finalizer removed",
        )
    finally:
        if operator.proc.poll() is not None:
            operator.start()
        cluster.kubectl("delete", "namespacequota", "-l", "plinth-test=restart-at-scale", "--wait=false", check=False)


def _versions(cluster: Cluster, namespaces: list[str]) -> dict[str, str]:
    """resourceVersion of every Plinth object and child in *namespaces*: any write changes one."""
    found = {}
    for ns in namespaces:
        listed = cluster.get("-n", ns, "previewenvironments,modeldeployments,deployments,services,secrets,ingresses")
        for obj in listed["items"]:
            found[f"{obj['kind']} {ns}/{obj['metadata']['name']}"] = obj["metadata"]["resourceVersion"]
        namespace = cluster.get("namespace", ns)
        found[f"Namespace {ns}"] = namespace["metadata"]["resourceVersion"]
    return found


def _all_ready(cluster: Cluster, namespace: str) -> bool:
    items = cluster.get("-n", namespace, "previewenvironments,modeldeployments")["items"]
    return len(items) == 4 and all(
        any(
            c["type"] == "Ready"
            and c["status"] == "True"
            and c.get("observedGeneration") == i["metadata"]["generation"]
            for c in (i.get("status") or {}).get("conditions") or []
        )
        for i in items
    )


def _resumed(log_lines: list[str], refs: set[tuple[str, str]]) -> bool:
    seen = set()
    for line in log_lines:
        if '"reconciled"' in line:
            ref = json.loads(line).get("ref") or {}
            seen.add((ref.get("kind"), ref.get("name")))
    return refs <= seen


def test_restart_over_ready_objects_writes_nothing(cluster: Cluster, operator: Operator, namespace: str) -> None:
    """Every child already carries the hash of what the operator would apply and every status is current: the
    restarted operator reconciles each object and changes no resourceVersion (no apply, no status patch)."""
    create_sample_secrets(cluster, namespace)
    objects = [
        preview_manifest(namespace, "restart-a", 901),
        preview_manifest(namespace, "restart-b", 902, secrets=[{"generate": {"name": "session", "keys": ["KEY"]}}]),
        model_manifest("restart-m1", namespace, 1),
        model_manifest("restart-m2", namespace, 1),
    ]
    cluster.kubectl("apply", "--server-side", "--field-manager=tests", "-f", "-", input=yaml.safe_dump_all(objects))
    wait_for(lambda: _all_ready(cluster, namespace), timeout=120, what="previews and models Ready")
    previews = cluster.get("-n", namespace, "previewenvironments")["items"]
    watched = [namespace, *(p["status"]["namespace"] for p in previews)]
    assert operator.stop() == 0
    before = _versions(cluster, watched)
    offset = len(operator.log.read_text().splitlines())
    operator.start()
    refs = {(o["kind"], o["metadata"]["name"]) for o in objects}
    wait_for(
        lambda: _resumed(operator.log.read_text().splitlines()[offset:], refs),
        timeout=120,
        what="every object reconciled by the restarted operator",
    )
    assert _versions(cluster, watched) == before
