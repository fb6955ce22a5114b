"""NamespaceQuota's network isolation, enforced by packets: a real enforcer (kube-network-policies) on the real node
drops what the policies deny, while the ingress controller still reaches the preview it serves."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from plinth.operator.builders import preview as preview_builder

from tests.conftest import Operator, wait_for
from tests.integration.test_previewenvironment import PE, apply, manifest, wait_condition
from tests.nodes.conftest import NodeCluster
from tests.nodes.test_preview_on_a_real_node import DOMAIN, demo

pytestmark = pytest.mark.cluster
CONNECT = ("--connect-timeout", "3", "--max-time", "6", "--fail")


@pytest.fixture
def namespaces(node_cluster: NodeCluster) -> Iterator[tuple[str, str]]:
    """The team's CI namespace and an outsider's namespace (no team label)."""
    suffix = uuid.uuid4().hex[:6]
    team, outsider = f"np-{suffix}", f"np-out-{suffix}"
    for name in (team, outsider):
        node_cluster.kubectl("create", "namespace", name)
    yield team, outsider
    node_cluster.kubectl("delete", "namespacequota", f"isolate-{team}", "--wait=false", check=False)
    node_cluster.kubectl("delete", PE, "--all", "-n", team, "--wait=false", check=False)
    for name in (team, outsider):
        node_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _isolate(cluster: NodeCluster, team: str, isolation: str) -> None:
    quota = {
        "apiVersion": "plinth.dev/v1alpha1",
        "kind": "NamespaceQuota",
        "metadata": {"name": f"isolate-{team}"},
        "spec": {
            "namespaceSelector": {"matchLabels": {preview_builder.TEAM_LABEL: team}},
            "networkIsolation": isolation,
        },
    }
    cluster.kubectl("apply", "--server-side", "--field-manager=platform", "-f", "-", input=json.dumps(quota))
    cluster.kubectl("wait", "--for=condition=Ready", f"namespacequota/isolate-{team}", "--timeout=60s")


def test_isolation_drops_packets_but_not_the_ingress(
    node_cluster: NodeCluster, node_operator: Operator, namespaces: tuple[str, str]
) -> None:
    team, outsider = namespaces
    body = manifest(team, "shop", 11, team=team, services=[demo()], ingress={"domain": DOMAIN, "tls": False})
    apply(node_cluster, body)
    ready = wait_condition(node_cluster, team, "shop", "Ready", timeout=120)
    host = ready["status"]["url"].removeprefix("http://")
    preview = preview_builder.namespace_name(ready)
    url = f"http://web.{preview}.svc.cluster.local:8080/healthz"

    def reaches(namespace: str) -> bool:
        return node_cluster.curl(namespace, *CONNECT, url)[0]

    # without isolation, any Pod reaches the preview: what follows is the policies' doing
    assert reaches(outsider)
    assert wait_for(lambda: node_cluster.fetch(host)[0] == 200, timeout=60, what=f"{host} through the ingress")

    _isolate(node_cluster, team, "DefaultDeny")
    wait_for(lambda: not reaches(outsider), timeout=90, what="DefaultDeny to drop the outsider's connection")
    assert not reaches(preview), "DefaultDeny admits no Pod of the preview's own namespace either"
    assert node_cluster.fetch(host)[0] == 200, "the ingress controller's namespace is admitted"

    _isolate(node_cluster, team, "AllowSameNamespace")
    wait_for(lambda: reaches(preview), timeout=90, what="AllowSameNamespace to admit the preview's own Pods")
    assert not reaches(outsider)
    assert node_cluster.fetch(host)[0] == 200

    node_cluster.kubectl("delete", "namespacequota", f"isolate-{team}", "--wait=true", "--timeout=60s")
    wait_for(lambda: reaches(outsider), timeout=90, what="the policy gone with its NamespaceQuota")
