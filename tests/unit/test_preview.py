"""PreviewEnvironment builders and pure reconcile logic: names, hosts, manifests, quota demand, lifecycle."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from plinth.adapters.secrets import ALPHABET, StoredSecret, random_value
from plinth.operator.api.conversion import internal
from plinth.operator.api.v1alpha1 import PreviewEnvironmentSpec, parse_quantity
from plinth.operator.builders import common, preview
from plinth.operator.reconcilers.previewenvironment import (
    is_expired,
    lifecycle,
    next_event,
    opted_in,
    quota_failure,
)
from plinth.operator.reconcilers.quotasplit import split_total


def owner(name: str = "shop", namespace: str = "team-shop", pr: int = 1234, **spec: Any) -> dict[str, Any]:
    body = {
        "source": {"repository": "github.com/acme/shop", "pullRequest": pr, "commit": "3f2c9a1"},
        "team": "shop",
        **spec,
    }
    if not body.get("services") and not body.get("models"):
        body["services"] = [{"name": "web", "image": "ghcr.io/acme/web:1"}]  # a preview runs something
    return {
        "apiVersion": "plinth.dev/v1alpha1",
        "kind": "PreviewEnvironment",
        "metadata": {"name": name, "namespace": namespace, "uid": "uid-1", "generation": 1},
        "spec": body,
    }


def parsed(obj: dict[str, Any]) -> PreviewEnvironmentSpec:
    return PreviewEnvironmentSpec.model_validate(obj["spec"])


def test_namespace_name_is_deterministic_dns_safe_and_unique_per_preview() -> None:
    a = preview.namespace_name(owner())
    assert a == preview.namespace_name(owner())
    assert a.startswith("preview-shop-1234-")
    # Same repository and PR from another team's namespace, or another preview name: another namespace.
    assert preview.namespace_name(owner(namespace="team-other")) != a
    assert preview.namespace_name(owner(name="shop2")) != a
    longest = preview.namespace_name(owner(name="x" * 40, namespace="n" * 63, pr=2147483647))
    assert len(longest) <= 63
    assert longest.replace("-", "").isalnum()
    assert longest == longest.lower()


def test_namespace_labels_select_it_for_team_quotas_and_enforce_restricted() -> None:
    obj = owner()
    ns = preview.namespace(obj, parsed(obj), {"pods": "2"})
    labels = ns["metadata"]["labels"]
    assert labels[preview.TEAM_LABEL] == "shop"
    assert labels[preview.PREVIEW_LABEL] == "true"
    assert labels[preview.PULL_REQUEST_LABEL] == "1234"
    assert labels[preview.REPOSITORY_LABEL] == "github.com-acme-shop"
    assert labels[preview.OWNER_UID_LABEL] == "uid-1"
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert ns["metadata"]["annotations"][common.QUOTA_REQUEST_ANNOTATION] == "pods=2"


def test_hosts_and_urls_per_exposed_service() -> None:
    obj = owner(
        services=[
            {"name": "web", "image": "ghcr.io/acme/web:1"},
            {"name": "api", "image": "ghcr.io/acme/api:1"},
            {"name": "worker", "image": "ghcr.io/acme/worker:1", "expose": False},
        ],
        ingress={"domain": "preview.example.com"},
    )
    spec = parsed(obj)
    assert preview.hosts(obj, spec) == {
        "web": "shop-1234.preview.example.com",
        "api": "api-shop-1234.preview.example.com",
    }
    assert preview.urls(obj, spec)["web"] == "https://shop-1234.preview.example.com"
    ing = preview.ingress(obj, spec)
    assert ing is not None
    assert [r["host"] for r in ing["spec"]["rules"]] == [
        "shop-1234.preview.example.com",
        "api-shop-1234.preview.example.com",
    ]
    assert ing["spec"]["tls"] == [{"hosts": ["shop-1234.preview.example.com", "api-shop-1234.preview.example.com"]}]
    assert preview.http_routes(obj, spec) == []


def test_a_name_that_already_names_the_pull_request_is_not_repeated_in_the_host() -> None:
    for name, pr, label in (
        ("shop-pr-1842", 1842, "shop-pr-1842"),
        ("shop-1842", 1842, "shop-1842"),
        ("shop-18420", 1842, "shop-18420-1842"),
        ("shop", 1842, "shop-1842"),
    ):
        obj = owner(
            name=name,
            pr=pr,
            services=[{"name": "web", "image": "i:1"}, {"name": "api", "image": "i:1"}],
            ingress={"domain": "preview.example.com"},
        )
        assert preview.hosts(obj, parsed(obj)) == {
            "web": f"{label}.preview.example.com",
            "api": f"api-{label}.preview.example.com",
        }


def test_a_long_host_label_is_cut_to_63_with_a_hash() -> None:
    obj = owner(
        name="a" * 40,
        pr=2147483647,
        services=[{"name": "w", "image": "i:1"}, {"name": "s" * 30, "image": "i:1"}],
        ingress={"domain": "p.example.com", "tls": False},
    )
    spec = parsed(obj)
    for host in preview.hosts(obj, spec).values():
        assert len(host.split(".")[0]) <= 63
    assert preview.urls(obj, spec)["w"].startswith("http://")


def test_gateway_routes_replace_the_ingress() -> None:
    obj = owner(
        services=[{"name": "web", "image": "ghcr.io/acme/web:1", "port": 3000}],
        ingress={"domain": "p.example.com", "gateway": {"name": "public", "namespace": "gateways"}},
    )
    spec = parsed(obj)
    assert preview.ingress(obj, spec) is None
    (route,) = preview.http_routes(obj, spec)
    assert route["kind"] == "HTTPRoute"
    assert route["spec"]["parentRefs"] == [{"name": "public", "namespace": "gateways"}]
    assert route["spec"]["hostnames"] == ["shop-1234.p.example.com"]
    assert route["spec"]["rules"] == [{"backendRefs": [{"name": "web", "port": 3000}]}]


def test_deployment_is_restricted_labelled_and_sleeps_at_zero() -> None:
    obj = owner(services=[{"name": "web", "image": "ghcr.io/acme/web:1", "replicas": 2, "readinessPath": "/healthz"}])
    spec = parsed(obj)
    dep = preview.deployment(obj, spec, spec.services[0], sleeping=False)
    assert dep["metadata"]["namespace"] == preview.namespace_name(obj)
    assert dep["metadata"]["labels"][preview.OWNER_LABEL] == "shop"
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    template = dep["spec"]["template"]
    assert template["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "plinth"
    assert template["metadata"]["annotations"] == {preview.COMMIT_ANNOTATION: "3f2c9a1"}
    container = template["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert preview.deployment(obj, spec, spec.services[0], sleeping=True)["spec"]["replicas"] == 0


def test_containers_are_told_their_port_service_and_commit_unless_they_set_them() -> None:
    obj = owner(
        services=[
            {"name": "web", "image": "ghcr.io/acme/web:1", "port": 3000},
            {"name": "api", "image": "ghcr.io/acme/api:1", "env": [{"name": "PORT", "value": "9000"}]},
        ]
    )
    spec = parsed(obj)

    def env(i: int) -> dict[str, str]:
        container = preview.deployment(obj, spec, spec.services[i], sleeping=False)["spec"]["template"]["spec"]
        return {e["name"]: e["value"] for e in container["containers"][0]["env"]}

    assert env(0) == {"PORT": "3000", "PLINTH_SERVICE": "web", "PLINTH_COMMIT": "3f2c9a1"}
    assert env(1) == {"PORT": "9000", "PLINTH_SERVICE": "api", "PLINTH_COMMIT": "3f2c9a1"}  # the user's PORT wins
    del obj["spec"]["source"]["commit"]
    assert "PLINTH_COMMIT" not in {e["name"] for e in preview.platform_env(parsed(obj), spec.services[0])}


def test_model_deployment_keeps_the_users_spec_and_sleeps() -> None:
    raw = {
        "model": {"name": "scorer", "version": "1.0.0", "uri": "s3://m/1"},
        "runtime": {"image": "ghcr.io/acme/serve:1"},
        "autoscaling": {"maxReplicas": 3},
    }
    obj = owner(models=[{"name": "scorer", "spec": raw}])
    spec = parsed(obj)
    md = preview.model_deployment(obj, spec.models[0], raw, sleeping=False)
    assert md["apiVersion"] == "plinth.dev/v1beta1", "written at the version etcd stores"
    assert internal(md)["spec"] == raw
    asleep = preview.model_deployment(obj, spec.models[0], raw, sleeping=True)
    assert asleep["spec"]["scaling"] == {"replicas": 0}


def test_copied_secret_takes_type_and_data_but_no_source_metadata() -> None:
    obj = owner()
    source = {
        "metadata": {"namespace": "shared", "name": "db", "annotations": {"x": "y"}, "labels": {"a": "b"}},
        "type": "kubernetes.io/basic-auth",
        "data": {"password": "c2VjcmV0"},
    }
    copy = preview.copied_secret(obj, "db", source)
    assert copy["type"] == "kubernetes.io/basic-auth"
    assert copy["data"] == {"password": "c2VjcmV0"}
    assert copy["metadata"]["annotations"] == {preview.COPIED_FROM_ANNOTATION: "shared/db"}
    assert "a" not in copy["metadata"]["labels"]


def test_stored_secret_repr_never_shows_values() -> None:
    secret = StoredSecret("ns", "db", "Opaque", {}, {}, {"password": "c3VwZXJzZWNyZXQ="})
    assert "c3VwZXJzZWNyZXQ=" not in repr(secret)


def test_random_values_have_the_length_and_alphabet_and_differ() -> None:
    values = {base64.b64decode(random_value(24)).decode() for _ in range(20)}
    assert len(values) == 20
    assert all(len(v) == 24 and set(v) <= set(ALPHABET) for v in values)


def test_opt_in_annotation_must_list_the_namespace() -> None:
    def secret(annotation: str | None) -> StoredSecret:
        notes = {} if annotation is None else {"plinth.dev/preview-namespaces": annotation}
        return StoredSecret("shared", "db", "Opaque", notes, {}, {})

    assert opted_in(secret("team-a, team-shop"), "team-shop")
    assert not opted_in(secret("team-shop-2"), "team-shop")
    assert not opted_in(secret(None), "team-shop")
    assert not opted_in(secret("*"), "team-shop")


def test_quota_request_counts_replicas_defaults_and_model_surge() -> None:
    obj = owner(
        services=[
            {"name": "web", "image": "i:1", "replicas": 2, "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}}},
            {"name": "worker", "image": "i:1"},
        ],
        models=[
            {
                "name": "scorer",
                "spec": {
                    "model": {"name": "s", "version": "1.0.0", "uri": "s3://m/1"},
                    "runtime": {"image": "i:1"},
                    "replicas": 1,
                    "resources": {"requests": {"cpu": "1"}, "limits": {"memory": "2Gi"}},
                },
            }
        ],
    )
    request = preview.quota_request(parsed(obj), {"cpu": "100m", "memory": "128Mi"}, {"memory": "256Mi"})
    # web 2 + worker 1 + scorer 1 (+1 surge)
    assert request["pods"] == "5"
    assert request["services"] == "3"
    # 2 x 250m + 1 x 100m (default) + 2 x 1
    assert request["requests.cpu"] == "2600m"
    assert request["requests.memory"] == str(2 * 2**30 + 128 * 2**20 + 2 * 2 * 2**30)
    assert request["limits.memory"] == str(3 * 256 * 2**20 + 2 * 2 * 2**30)
    asleep = preview.quota_request(parsed(obj), sleeping=True)
    assert asleep["pods"] == "0"
    assert asleep["services"] == "3"


def test_request_annotation_round_trips_and_ignores_garbage() -> None:
    request = {"pods": "3", "requests.cpu": "1500m"}
    assert common.parse_request(common.format_request(request)) == request
    assert common.parse_request("pods=2,junk,cpu=lots,=1") == {"pods": "2"}
    assert common.parse_request(None) == {}


def test_split_reserves_a_whole_request_before_sharing() -> None:
    # Without the reservation the free 2 pods would be shared 1/1 and the preview would get only half of its pods.
    allocation, _ = split_total(
        {"pods": "5"}, {}, {"busy": {"pods": "3"}}, ["busy", "preview-a"], {"preview-a": {"pods": "2"}}
    )
    assert allocation["preview-a"]["pods"] == "2"
    assert allocation["busy"]["pods"] == "3"


def test_split_grants_a_request_whole_or_not_at_all() -> None:
    requested = {"preview-a": {"pods": "2", "requests.cpu": "1"}, "preview-b": {"pods": "2", "requests.cpu": "1"}}
    allocation, _ = split_total({"pods": "10", "requests.cpu": "1500m"}, {}, {}, ["preview-a", "preview-b"], requested)
    cpu = {ns: parse_quantity(a["requests.cpu"]) for ns, a in allocation.items()}
    # a fits (name order) and is granted whole; b's cpu no longer fits, so it gets no reservation, only a share.
    assert cpu["preview-a"] >= 1
    assert cpu["preview-b"] < 1
    assert sum(cpu.values()) <= Decimal("1.5")


def test_a_namespace_keeps_the_room_it_holds_when_an_earlier_named_one_appears() -> None:
    """A preview checks its namespace's limits once, before its first workload: room it saw must not move to a
    namespace that appeared since, or its Pods are refused after its Deployment was made."""
    requested = {"preview-b": {"pods": "1"}}
    first, _ = split_total({"pods": "1"}, {}, {}, ["preview-b"], requested)
    assert first["preview-b"]["pods"] == "1"
    requested["preview-a"] = {"pods": "1"}  # sorts first, and nothing is used yet
    again, _ = split_total({"pods": "1"}, {}, {}, ["preview-a", "preview-b"], requested, held=first)
    assert (again["preview-a"]["pods"], again["preview-b"]["pods"]) == ("0", "1")
    unheld, _ = split_total({"pods": "1"}, {}, {}, ["preview-a", "preview-b"], requested)
    assert (unheld["preview-a"]["pods"], unheld["preview-b"]["pods"]) == ("1", "0")  # name order without it


@pytest.mark.parametrize("waiting", [1, 5, 19])
def test_concurrent_requests_never_sum_above_the_total(waiting: int) -> None:
    names = [f"preview-{i:02d}" for i in range(waiting)]
    allocation, _ = split_total({"pods": "5"}, {}, {}, names, {n: {"pods": "2"} for n in names})
    assert sum(int(a["pods"]) for a in allocation.values()) <= 5
    granted = [n for n in names if int(allocation[n]["pods"]) >= 2]
    assert len(granted) == min(waiting, 2)


def test_lifecycle_counts_ttl_and_sleep_from_the_last_spec_change() -> None:
    spec = parsed(owner(ttl="2h", sleepAfter="30m"))
    t0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    first = lifecycle({}, 1, spec, t0)
    assert first == {
        "lastUpdate": {"generation": 1, "time": "2026-01-01T12:00:00Z"},
        "expiresAt": "2026-01-01T14:00:00Z",
        "sleeping": False,
    }
    later = lifecycle(first, 1, spec, t0 + timedelta(minutes=31))
    assert later["sleeping"] is True
    assert later["expiresAt"] == first["expiresAt"]
    assert next_event(spec, first) == t0 + timedelta(minutes=30)
    pushed = lifecycle(later, 2, spec, t0 + timedelta(minutes=90))
    assert pushed["sleeping"] is False
    assert pushed["expiresAt"] == "2026-01-01T15:30:00Z"
    assert not is_expired(pushed, t0 + timedelta(hours=3))
    assert is_expired(pushed, t0 + timedelta(hours=3, minutes=30))


def test_quota_failure_is_read_from_replica_failure() -> None:
    refused = {
        "status": {
            "conditions": [
                {
                    "type": "ReplicaFailure",
                    "status": "True",
                    "message": 'pods "web-1" is forbidden: exceeded quota: plinth-quota, requested: pods=1',
                }
            ]
        }
    }
    assert quota_failure(refused) is not None
    assert quota_failure({"status": {"conditions": [{"type": "Available", "status": "True"}]}}) is None
