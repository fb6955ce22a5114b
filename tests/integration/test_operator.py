"""The operator, running as a real subprocess (`plinth run`) against the local control plane.

Asserts the foundation's end-to-end path: a NamespaceQuota produces ResourceQuota/LimitRange/NetworkPolicy in the
namespaces it selects, follows namespaces as their labels change, reports kstatus conditions with
observedGeneration, serves /metrics and /healthz, and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Cluster, Operator, wait_for

pytestmark = pytest.mark.cluster


def _team_namespace(cluster: Cluster, team: str) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("label", "namespace", name, f"plinth.dev/team={team}")
    return name


def _quota(name: str, team: str, **spec: Any) -> str:
    """A NamespaceQuota selecting the namespaces labelled plinth.dev/team=<team>, with *spec* on top."""
    return yaml.safe_dump(
        {
            "apiVersion": "plinth.dev/v1alpha1",
            "kind": "NamespaceQuota",
            "metadata": {"name": name},
            "spec": {"namespaceSelector": {"matchLabels": {"plinth.dev/team": team}}, **spec},
        }
    )


def _full_quota(name: str, team: str) -> str:
    return _quota(
        name,
        team,
        perNamespace={"hard": {"requests.cpu": "2", "pods": 10}},
        defaults={"request": {"cpu": "100m"}, "limit": {"cpu": "500m"}},
        total={"hard": {"requests.cpu": "10"}},
        networkIsolation="DefaultDeny",
    )


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), None)


def test_namespacequota_end_to_end(cluster: Cluster, operator: Operator) -> None:
    team = f"team-{uuid.uuid4().hex[:6]}"
    first = _team_namespace(cluster, team)
    name = f"nsq-{team}"
    cluster.kubectl("apply", "--server-side", "-f", "-", input=_full_quota(name, team))
    try:

        def ready() -> Any:
            obj = cluster.get("namespacequota", name)
            cond = _condition(obj, "Ready")
            return (
                cond
                and cond["status"] == "True"
                and obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
                and obj
            )

        obj = wait_for(ready, what="NamespaceQuota Ready")
        assert obj["status"]["namespaces"] == {"count": 1, "names": [first]}
        assert obj["status"]["hard"] == {"requests.cpu": "10"}
        rq = cluster.get("-n", first, "resourcequota", "plinth-quota")
        assert rq["spec"]["hard"] == {"pods": "10", "requests.cpu": "2"}
        assert rq["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "plinth"
        assert rq["metadata"]["ownerReferences"][0]["name"] == name
        lr = cluster.get("-n", first, "limitrange", "plinth-defaults")
        assert lr["spec"]["limits"][0]["defaultRequest"] == {"cpu": "100m"}
        np = cluster.get("-n", first, "networkpolicy", "plinth-isolation")
        assert np["spec"]["policyTypes"] == ["Ingress"]

        # A namespace that starts matching is picked up from its watch event, not a periodic resync.
        second = _team_namespace(cluster, team)
        wait_for(
            lambda: cluster.kubectl("-n", second, "get", "resourcequota", "plinth-quota", check=False).returncode == 0,
            timeout=30,
            what="quota in the newly labelled namespace",
        )
        # One that stops matching loses exactly our children; a user's own quota there stays.
        cluster.kubectl("-n", first, "create", "quota", "users-own", "--hard=pods=50")
        cluster.kubectl("label", "namespace", first, "plinth.dev/team-")
        wait_for(
            lambda: cluster.kubectl("-n", first, "get", "resourcequota", "plinth-quota", check=False).returncode != 0,
            timeout=30,
            what="quota pruned from the deselected namespace",
        )
        assert cluster.kubectl("-n", first, "get", "resourcequota", "users-own", check=False).returncode == 0
        assert cluster.kubectl("-n", first, "get", "limitrange", "plinth-defaults", check=False).returncode != 0

        # A spec change is applied and observed for the new generation.
        cluster.kubectl(
            "patch",
            "namespacequota",
            name,
            "--type=merge",
            "-p",
            '{"spec":{"perNamespace":{"hard":{"requests.cpu":"3","pods":10}},"networkIsolation":"None"}}',
        )
        wait_for(
            lambda: (
                cluster.get("-n", second, "resourcequota", "plinth-quota")["spec"]["hard"].get("requests.cpu") == "3"
            ),
            timeout=30,
            what="updated quota",
        )
        wait_for(
            lambda: (
                cluster.kubectl("-n", second, "get", "networkpolicy", "plinth-isolation", check=False).returncode != 0
            ),
            timeout=30,
            what="isolation policy removed",
        )
        obj = wait_for(ready, what="Ready for generation 2")
        assert obj["status"]["observedGeneration"] == 2
        cluster.kubectl("wait", "--for=condition=Ready", f"namespacequota/{name}", "--timeout=30s")
        # Events on change only: several triggers at once (resume, namespace and child events) post no duplicates.
        events = cluster.get("events", "-A", "--field-selector", f"involvedObject.name={name}")["items"]
        posted = [e["message"].split(":")[0] for e in events for _ in range(e.get("count") or 1)]
        # Not Ready is said once per transition: by Ready=False, or by the blocker's Event (each change counts
        # until the quota controller has the new limits: QuotaNotCounted).
        not_ready = posted.count("Ready=False") + sum(1 for p in posted if p.startswith("blocked by "))
        assert posted.count("Ready=True") >= 1
        assert posted.count("Ready=True") <= not_ready + 1, posted
    finally:
        cluster.kubectl("delete", "namespacequota", name, "--wait=true", "--timeout=60s", check=False)
    # Owned children are garbage-collected with their NamespaceQuota.
    wait_for(
        lambda: cluster.kubectl("-n", second, "get", "resourcequota", "plinth-quota", check=False).returncode != 0,
        timeout=60,
        what="children garbage-collected",
    )


def test_metrics_are_served(operator: Operator, cluster: Cluster) -> None:
    body = wait_for(
        lambda: "plinth_reconcile_total{" in (m := operator.metrics()) and m,
        what="reconcile metrics (needs the end-to-end test's reconciles)",
    )
    assert 'plinth_reconcile_total{kind="NamespaceQuota",result="success"}' in body
    assert "plinth_reconcile_lag_seconds_bucket" in body
    assert 'plinth_adapter_requests_total{adapter="kubernetes",operation="apply",result="ok"}' in body
    assert "plinth_reconcile_duration_seconds_count" in body


def test_operator_logs_are_json_and_stop_cleanly(cluster: Cluster, tmp_path: Path) -> None:
    second = Operator(cluster, tmp_path / "op.log")
    assert second.stop() == 0
    parsed = [json.loads(line) for line in second.log.read_text().splitlines() if line.strip()]
    assert any(p["message"] == "plinth operator started" for p in parsed)
    # The control plane is Kubernetes 1.37: every watched kind's objects come streamed on its watch (runtime.py).
    assert any(p["message"] == "initial listing: streamed on the watch" for p in parsed)
    assert all({"time", "level", "logger", "message"} <= p.keys() for p in parsed)


def _pods_quota(name: str, team: str, per_namespace: int, total: int) -> str:
    return _quota(name, team, perNamespace={"hard": {"pods": per_namespace}}, total={"hard": {"pods": total}})


def _pod_count(cluster: Cluster, namespaces: list[str]) -> int:
    return sum(len(cluster.get("-n", ns, "pods")["items"]) for ns in namespaces)


def test_total_cannot_be_exceeded_by_concurrent_creates(cluster: Cluster, operator: Operator) -> None:
    """Pods created at once in three namespaces never sum past total.hard (the API server's quota admission
    enforces each namespace's share), and freed room is handed out again."""
    from concurrent.futures import ThreadPoolExecutor

    team = f"race-{uuid.uuid4().hex[:6]}"
    namespaces = [_team_namespace(cluster, team) for _ in range(3)]
    name = f"nsq-{team}"
    cluster.kubectl("apply", "--server-side", "-f", "-", input=_pods_quota(name, team, per_namespace=4, total=5))
    try:

        def allocated() -> Any:
            hards = [
                cluster.kubectl(
                    "-n", ns, "get", "resourcequota", "plinth-quota", "-o", "jsonpath={.status.hard.pods}", check=False
                ).stdout
                for ns in namespaces
            ]
            return all(hards) and hards

        hards = wait_for(allocated, what="per-namespace shares of the total")
        assert sum(int(h) for h in hards) <= 5, hards

        def create(args: tuple[str, int]) -> bool:
            ns, i = args
            return (
                cluster.kubectl("-n", ns, "run", f"p{i}", "--image=registry.example/a:1", check=False).returncode == 0
            )

        attempts = [(ns, i) for i in range(4) for ns in namespaces]  # 12 creates racing for 5 pods
        with ThreadPoolExecutor(max_workers=6) as pool:
            admitted = sum(pool.map(create, attempts))
        assert admitted <= 5
        assert _pod_count(cluster, namespaces) <= 5
        # Usage is visible in status and the total is never reported as exceeded.
        obj = wait_for(
            lambda: (
                (o := cluster.get("namespacequota", name))["status"].get("used", {}).get("pods")
                == str(_pod_count(cluster, namespaces))
                and o
            ),
            what="status.used to catch up",
        )
        assert not _condition(obj, "TotalExceeded")
        table = cluster.kubectl("get", "nsq", name).stdout.splitlines()
        assert table[0].split() == ["NAME", "NAMESPACES", "USED/TOTAL", "READY", "AGE"]
        row = re.split(r"\s{2,}", table[1].strip())
        assert row[:4] == [name, "3", f"pods {_pod_count(cluster, namespaces)}/5", "True"]

        # Drift: a deleted ResourceQuota comes back within seconds, from its watch event.
        cluster.kubectl("-n", namespaces[0], "delete", "resourcequota", "plinth-quota")
        wait_for(
            lambda: (
                cluster.kubectl("-n", namespaces[0], "get", "resourcequota", "plinth-quota", check=False).returncode
                == 0
            ),
            timeout=30,
            what="quota recreated",
        )
        assert sum(int(h) for h in wait_for(allocated, what="shares again")) <= 5 + 0
    finally:
        cluster.kubectl("delete", "namespacequota", name, "--wait=true", "--timeout=60s", check=False)


def test_older_quota_wins_a_shared_namespace(cluster: Cluster, operator: Operator) -> None:
    team = f"dup-{uuid.uuid4().hex[:6]}"
    ns = _team_namespace(cluster, team)
    older, newer = f"a-{team}", f"b-{team}"
    cluster.kubectl("apply", "--server-side", "-f", "-", input=_pods_quota(older, team, per_namespace=7, total=7))
    wait_for(
        lambda: (
            cluster.kubectl(
                "-n",
                ns,
                "get",
                "resourcequota",
                "plinth-quota",
                "-o",
                "jsonpath={.metadata.labels.plinth\\.dev/namespacequota}",
                check=False,
            ).stdout
            == older
        ),
        what="older quota applied",
    )
    cluster.kubectl("apply", "--server-side", "-f", "-", input=_pods_quota(newer, team, per_namespace=3, total=3))
    try:

        def conflicted() -> Any:
            cond = _condition(cluster.get("namespacequota", newer), "Conflict")
            return cond and cond["status"] == "True" and cond

        cond = wait_for(conflicted, what="Conflict on the newer quota")
        assert older in cond["message"] and ns in cond["message"]
        ready = _condition(cluster.get("namespacequota", newer), "Ready")
        assert ready is not None and ready["status"] == "False"
        rq = cluster.get("-n", ns, "resourcequota", "plinth-quota")
        assert rq["metadata"]["labels"]["plinth.dev/namespacequota"] == older
        assert rq["spec"]["hard"]["pods"] == "7"
        events = cluster.kubectl(
            "get", "events", "-A", "--field-selector", f"involvedObject.name={newer}", "-o", "json"
        ).stdout
        assert "Conflict" in events or "NamespaceClaimedByOlderQuota" in events
        # The older one goes away: the newer takes the namespace over and recovers.
        cluster.kubectl("delete", "namespacequota", older, "--wait=true", "--timeout=60s")
        wait_for(
            lambda: (
                cluster.kubectl(
                    "-n", ns, "get", "resourcequota", "plinth-quota", "-o", "jsonpath={.spec.hard.pods}", check=False
                ).stdout
                == "3"
            ),
            timeout=60,
            what="newer quota takes over",
        )
        wait_for(lambda: not _condition(cluster.get("namespacequota", newer), "Conflict"), what="Conflict cleared")
    finally:
        for q in (older, newer):
            cluster.kubectl("delete", "namespacequota", q, "--wait=true", "--timeout=60s", check=False)
