"""The total split: the invariant that makes the aggregate limit race-free, checked over many generated inputs."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest
from plinth.operator.api.v1alpha1 import parse_quantity
from plinth.operator.reconcilers.namespacequota import uncounted_quotas
from plinth.operator.reconcilers.quotasplit import split_total


def _sum(allocation: dict[str, dict[str, str]], resource: str) -> Decimal:
    return sum((parse_quantity(a[resource]) for a in allocation.values()), Decimal(0))


def test_equal_shares_with_remainder_to_the_least_allocated() -> None:
    allocation, exceeded = split_total({"pods": "4"}, {"pods": "4"}, {}, ["c", "a", "b"])
    assert allocation == {"a": {"pods": "2"}, "b": {"pods": "1"}, "c": {"pods": "1"}}
    assert exceeded == []


def test_busy_namespace_keeps_its_usage_and_an_empty_one_can_start() -> None:
    allocation, _ = split_total({"pods": "4"}, {}, {"a": {"pods": "3"}}, ["a", "b", "c"])
    assert allocation == {"a": {"pods": "3"}, "b": {"pods": "1"}, "c": {"pods": "0"}}


def test_per_namespace_cap_leaves_room_to_the_others() -> None:
    allocation, _ = split_total({"pods": "10"}, {"pods": "2"}, {}, ["a", "b", "c"])
    assert allocation == {"a": {"pods": "2"}, "b": {"pods": "2"}, "c": {"pods": "2"}}
    allocation, _ = split_total({"pods": "10"}, {"pods": "8"}, {"a": {"pods": "7"}}, ["a", "b"])
    assert allocation == {"a": {"pods": "8"}, "b": {"pods": "2"}}


def test_cpu_is_split_in_millicores() -> None:
    allocation, _ = split_total({"requests.cpu": "1"}, {}, {}, ["a", "b", "c"])
    assert sorted(a["requests.cpu"] for a in allocation.values()) == ["333m", "333m", "334m"]


def test_usage_above_total_freezes_every_namespace_at_its_usage() -> None:
    allocation, exceeded = split_total({"requests.cpu": "1"}, {}, {"a": {"requests.cpu": "1500m"}}, ["a", "b"])
    assert exceeded == ["requests.cpu"]
    assert allocation == {"a": {"requests.cpu": "1500m"}, "b": {"requests.cpu": "0"}}


def test_no_namespaces_no_allocation() -> None:
    assert split_total({"pods": "3"}, {}, {}, []) == ({}, [])


@pytest.mark.parametrize("seed", range(200))
def test_shares_never_sum_past_the_total_and_never_cut_below_usage(seed: int) -> None:
    rng = random.Random(seed)
    resource = rng.choice(["pods", "requests.cpu", "requests.memory"])
    scale = {"pods": 1, "requests.cpu": 1, "requests.memory": 1024**2}[resource]
    names = [f"ns{i}" for i in range(rng.randint(1, 12))]
    total = rng.randint(0, 40) * scale
    cap = rng.choice([None, rng.randint(1, 20) * scale])
    used = {ns: {resource: str(rng.randint(0, 6) * scale)} for ns in names if rng.random() < 0.7}
    allocation, exceeded = split_total({resource: str(total)}, {resource: str(cap)} if cap else {}, used, names)
    used_sum = sum((parse_quantity(u[resource]) for u in used.values()), Decimal(0))
    for ns in names:
        share = parse_quantity(allocation[ns][resource])
        usage = parse_quantity(used.get(ns, {}).get(resource, "0"))
        assert share >= usage  # never below what is already admitted
        if cap is not None and usage <= cap:
            assert share <= cap
    if used_sum <= total:
        assert _sum(allocation, resource) <= total
        assert exceeded == []
    else:
        assert _sum(allocation, resource) == used_sum  # frozen: nothing new fits anywhere
        assert exceeded == [resource]


def test_isolation_policies_always_admit_the_ingress_controller() -> None:
    from plinth.operator.api.v1alpha1 import NamespaceQuotaSpec
    from plinth.operator.builders import quota

    owner = {"apiVersion": "plinth.dev/v1alpha1", "kind": "NamespaceQuota", "metadata": {"name": "t", "uid": "u"}}
    controller = {"from": [{"namespaceSelector": {"matchLabels": {quota.INGRESS_CONTROLLER_LABEL: "true"}}}]}

    def rules(isolation: str) -> list[object]:
        spec = NamespaceQuotaSpec.model_validate({"namespaces": ["shop"], "networkIsolation": isolation})
        return [p["spec"]["ingress"] for p in quota.network_policies(owner, spec, "shop")]

    assert rules("None") == []
    assert rules("DefaultDeny") == [[controller]]
    assert rules("AllowSameNamespace") == [[controller, {"from": [{"podSelector": {}}]}]]


def test_a_quota_counts_once_its_controller_took_the_limits_into_its_status() -> None:
    """Until then the API server refuses every new Pod in the namespace ("status unknown for quota")."""

    def rq(hard: dict[str, str], counted: dict[str, str] | None = None) -> dict[str, Any]:
        found = {"kind": "ResourceQuota", "metadata": {"name": "plinth-quota"}, "spec": {"hard": hard}}
        status = {"hard": counted, "used": dict.fromkeys(counted, "0")} if counted is not None else None
        return found | ({"status": status} if status is not None else {})

    key = ("ResourceQuota", "team-a", "plinth-quota")
    want = {key: rq({"requests.cpu": "2", "pods": "10"})}
    assert [b.name for b in uncounted_quotas(want, {})] == ["team-a/plinth-quota"], "just created"
    assert uncounted_quotas(want, {key: rq({"requests.cpu": "1"}, {"requests.cpu": "1"})}), "changed by this reconcile"
    assert not uncounted_quotas(want, {key: rq({}, {"requests.cpu": "2000m", "pods": "10"})}), (
        "same amounts, other form"
    )
    extra = {"requests.cpu": "2", "pods": "10", "services": "3"}  # a key another manager added to our quota
    assert not uncounted_quotas(want, {key: rq({}, extra)})
    blocked = uncounted_quotas(want, {key: rq({}, {"requests.cpu": "2"})})
    assert blocked and (blocked[0].reason, blocked[0].stalled) == ("QuotaNotCounted", False)
    # An object count of a kind the quota controller discovered a moment ago: its limit is there, its count not yet.
    uncounted = rq({}, {"requests.cpu": "2", "pods": "10"})
    uncounted["status"]["used"].pop("pods")
    assert uncounted_quotas(want, {key: uncounted}), "admission refuses while a limit has no count"
    limits = ("LimitRange", "team-a", "plinth-limits")
    assert not uncounted_quotas({limits: {"kind": "LimitRange", "spec": {}}}, {}), "only quotas are counted"
