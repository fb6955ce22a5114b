"""A cluster with one real node (kubelet, containerd, runc) for the tests whose Pods must run: booted once per
session beside the simulated cluster, with its own operator. Requests reach the node only through the ingress that
localkube publishes on 127.0.0.1."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from plinth.operator import devcluster, devimages, devnode

from tests.conftest import Cluster, Operator, plinth_api, wait_for


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

    def curl(self, namespace: str, *args: str, timeout: float = 120) -> tuple[bool, str]:
        """Run ``curl -sS <args>`` in a Pod of *namespace* (cluster DNS, kube-proxy, the network policies apply to
        it as to any Pod); whether it exited 0, and its output."""
        devnode.load_image(self.local, devimages.curl_image())
        pod = f"curl-{uuid.uuid4().hex[:6]}"
        self.kubectl("apply", "-f", "-", input=json.dumps(curl_pod(namespace, pod, ["-sS", *args])))

        def finished() -> str | None:
            phase = self.get("-n", namespace, "pod", pod).get("status", {}).get("phase")
            return str(phase) if phase in ("Succeeded", "Failed") else None

        phase = wait_for(finished, timeout=timeout, what=f"pod {pod} to finish")
        output = self.kubectl("-n", namespace, "logs", pod).stdout
        self.kubectl("-n", namespace, "delete", "pod", pod, "--wait=false")
        return phase == "Succeeded", output


def curl_pod(namespace: str, name: str, args: list[str]) -> dict[str, Any]:
    """A one-shot Pod running the local curl image under restricted Pod Security."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "curl",
                    "image": devimages.CURL,
                    "imagePullPolicy": "Never",
                    "args": args,
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "16Mi"},
                        "limits": {"cpu": "100m", "memory": "64Mi"},
                    },
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                }
            ],
        },
    }


@pytest.fixture(scope="session")
def node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeCluster]:
    directory = tmp_path_factory.mktemp("localkube-real")
    name = f"pytest-real-{os.getpid()}"
    running = devnode.up(name, directory=directory, log=False)
    try:
        started = NodeCluster(running.kubeconfig, ingress=running.ingress, local=running)
        with plinth_api(started, directory / "webhook.log"):
            yield started
    finally:
        devcluster.down(name, directory=directory, keep=True)


@pytest.fixture(scope="session")
def node_operator(node_cluster: NodeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    running = Operator(node_cluster, tmp_path_factory.mktemp("node-operator") / "operator.log")
    yield running
    running.stop()
