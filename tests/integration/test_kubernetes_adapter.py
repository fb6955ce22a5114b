"""The Kubernetes adapter against the real API server: what the reconcilers get back is whole, plain manifests."""

from __future__ import annotations

import pytest
from kubernetes import config
from plinth.adapters.calls import NoRecorder
from plinth.adapters.kubernetes import DynamicKubernetes

from tests.conftest import Cluster

pytestmark = pytest.mark.cluster


def _adapter(cluster: Cluster) -> DynamicKubernetes:
    return DynamicKubernetes(
        config.new_client_from_config(config_file=str(cluster.kubeconfig)), NoRecorder(), "plinth-adapter-test"
    )


def _config_map(namespace: str, name: str, value: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {"plinth.dev/adapter-test": "yes"}},
        "data": {"key": value},
    }


def test_reads_and_writes_return_plain_whole_manifests(cluster: Cluster, namespace: str) -> None:
    kube = _adapter(cluster)
    applied = kube.apply(_config_map(namespace, "one", "1"))
    kube.apply(_config_map(namespace, "two", "2"))
    assert type(applied) is dict and applied["data"] == {"key": "1"}

    # A LIST names apiVersion and kind once for all its items; the adapter puts them back on each (callers build
    # delete and apply calls from them).
    listed = kube.list("v1", "ConfigMap", namespace=namespace, label_selector="plinth.dev/adapter-test=yes")
    assert sorted(item["metadata"]["name"] for item in listed) == ["one", "two"]
    assert all(type(item) is dict and item["apiVersion"] == "v1" and item["kind"] == "ConfigMap" for item in listed)

    found = kube.get("v1", "ConfigMap", "one", namespace=namespace)
    assert found is not None and type(found) is dict and found["metadata"]["uid"] == applied["metadata"]["uid"]
    assert kube.get("v1", "ConfigMap", "missing", namespace=namespace) is None
    assert kube.delete("v1", "ConfigMap", "two", namespace=namespace)
    assert not kube.delete("v1", "ConfigMap", "two", namespace=namespace)
    assert [
        i["metadata"]["name"]
        for i in kube.list("v1", "ConfigMap", namespace=namespace, label_selector="plinth.dev/adapter-test=yes")
    ] == ["one"]
