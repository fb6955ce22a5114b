"""A cluster with one real node (kubelet, containerd, runc) for the tests whose Pods must run: booted once per
session beside the simulated cluster, with its own operator. Requests reach the node only through the ingress that
localkube publishes on 127.0.0.1."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from plinth.operator import devcluster, devnode

from tests.conftest import Cluster, Operator, install_crds


@dataclass(frozen=True)
class NodeCluster(Cluster):
    """The real-node cluster: a Cluster plus the ingress's address on 127.0.0.1."""

    ingress: str
    local: devcluster.LocalCluster

    def fetch(self, host: str, path: str = "/") -> tuple[int, str]:
        """GET *path* of *host* through the ingress, as a browser would reach the preview's URL."""
        request = urllib.request.Request(f"{self.ingress}{path}", headers={"Host": host})
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(errors="replace")
        except OSError:
            return 0, ""


@pytest.fixture(scope="session")
def node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeCluster]:
    directory = tmp_path_factory.mktemp("localkube-real")
    name = f"pytest-real-{os.getpid()}"
    running = devnode.up(name, directory=directory, log=False)
    try:
        started = NodeCluster(running.kubeconfig, ingress=running.ingress, local=running)
        install_crds(started)
        yield started
    finally:
        devcluster.down(name, directory=directory, keep=True)


@pytest.fixture(scope="session")
def node_operator(node_cluster: NodeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    running = Operator(node_cluster, tmp_path_factory.mktemp("node-operator") / "operator.log")
    yield running
    running.stop()
