"""The Helm chart on a real node: the operator runs as a real Pod from its locally built image (operator/Dockerfile's
recipe, operator/devimages.py) under restricted Pod Security, with only the chart's RBAC, reconciles a sample, and
`helm test` runs a real Pod."""

from __future__ import annotations

import re
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from plinth.operator import devimages, devnode

from tests.conftest import wait_for
from tests.e2e.test_chart import CHART, _run, helm_env, restricted_namespace
from tests.nodes.conftest import NodeCluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1500)]


def test_the_chart_runs_the_operator_as_a_restricted_pod(node_cluster: NodeCluster, tmp_path: Path) -> None:
    for image in (devimages.operator_image(), devimages.curl_image()):
        devnode.load_image(node_cluster.local, image)
    helm = Path(_run(sys.executable, CHART.parent.parent / "hack" / "helm" / "ensure_helm.py").stdout.strip())
    suffix = uuid.uuid4().hex[:6]
    name, namespace = f"real-{suffix}", f"plinth-{suffix}"
    env = helm_env(node_cluster, tmp_path)
    restricted_namespace(node_cluster, namespace)
    repository, tag = devimages.OPERATOR.rsplit(":", 1)
    curl_repository, curl_tag = devimages.CURL.rsplit(":", 1)
    _run(
        helm,
        "install",
        name,
        CHART,
        "-n",
        namespace,
        "--wait",
        "--timeout=180s",
        "--set",
        "crds.enabled=false",
        "--set",
        f"image.repository={repository}",
        "--set",
        f"image.tag={tag}",
        "--set",
        "image.pullPolicy=Never",
        "--set",
        f"tests.image.repository={curl_repository}",
        "--set",
        f"tests.image.tag={curl_tag}",
        "--set",
        "tests.image.pullPolicy=Never",
        # The session's CRDs send conversions to the host's webhook (crds/): the release serves its own (its
        # readiness waits for it) but leaves the CRDs' caBundle to the session.
        "--set-json",
        'operator.extraEnv=[{"name": "PLINTH_WEBHOOK_CA_BUNDLE", "value": "false"}]',
        env=env,
    )
    team = f"team-{suffix}"
    try:
        pods = node_cluster.get("-n", namespace, "pods", "-l", "app.kubernetes.io/instance=" + name)["items"]
        (pod,) = [p for p in pods if p["status"]["phase"] == "Running"]
        assert all(cs["ready"] for cs in pod["status"]["containerStatuses"])
        assert pod["spec"]["serviceAccountName"].startswith(name)

        node_cluster.kubectl("create", "namespace", team)
        node_cluster.kubectl("label", "namespace", team, f"plinth.dev/team={team}")
        nsq = {
            "apiVersion": "plinth.dev/v1alpha1",
            "kind": "NamespaceQuota",
            "metadata": {"name": team},
            "spec": {"namespaces": [team], "perNamespace": {"hard": {"pods": "10"}}},
        }
        node_cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(nsq))
        wait_for(
            lambda: (
                node_cluster.kubectl("-n", team, "get", "resourcequota", "plinth-quota", check=False).returncode == 0
            ),
            timeout=120,
            what="the ResourceQuota the operator Pod writes",
        )
        wait_for(
            lambda: team in node_cluster.kubectl("-n", namespace, "logs", pod["metadata"]["name"]).stdout,
            timeout=60,
            what="the operator Pod reconciling the quota",
        )
        # `helm test`: a real Pod resolves the metrics Service through CoreDNS and gets the operator's /healthz.
        tested = _run(helm, "test", name, "-n", namespace, "--timeout=120s", env=env).stdout
        assert re.search(rf"TEST SUITE:\s+{name}-plinth-test-healthz.*?Phase:\s+Succeeded", tested, re.S), tested
    finally:
        # Whatever failed, this release's operator must not outlive the test: it would fight the session's.
        node_cluster.kubectl("delete", "namespacequota", team, "--ignore-not-found", "--wait=true", "--timeout=60s")
        _run(helm, "uninstall", name, "-n", namespace, "--wait", "--timeout=60s", env=env)
