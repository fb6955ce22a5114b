"""A restart over more objects of one kind than the operator has executor threads (20): every object is resumed, and
new and deleted objects are handled. (With kopf's worker_limit set, per-object workers waited for the indexes while
holding every slot, and a restarted operator reconciled nothing.)"""

from __future__ import annotations

import uuid

import pytest
import yaml

from tests.conftest import Cluster, Operator, wait_for

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
