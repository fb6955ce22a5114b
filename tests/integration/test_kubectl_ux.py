"""What people see with the real kubectl: `get plinth` across kinds, useful columns, `wait` on every kind, and
`describe` showing the operator's Events."""

from __future__ import annotations

import uuid

import pytest
import yaml

from tests.conftest import Cluster, Operator

pytestmark = pytest.mark.cluster


def test_get_wait_and_describe_every_kind(cluster: Cluster, operator: Operator, namespace: str) -> None:
    token = uuid.uuid4().hex[:6]
    quota, model, preview = f"ux-{token}", f"ux-md-{token}", f"ux-{token}"
    docs = [
        {
            "apiVersion": "plinth.dev/v1alpha1",
            "kind": "NamespaceQuota",
            "metadata": {"name": quota},
            "spec": {"namespaces": [namespace], "perNamespace": {"hard": {"pods": "20"}}},
        },
        {
            "apiVersion": "plinth.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": model, "namespace": namespace},
            "spec": {
                "model": {"name": "scorer", "version": "1.0.0", "uri": "s3://models/scorer/1.0.0"},
                "runtime": {"image": "registry.example/serve:1"},
            },
        },
        {
            "apiVersion": "plinth.dev/v1alpha1",
            "kind": "PreviewEnvironment",
            "metadata": {"name": preview, "namespace": namespace},
            "spec": {
                "source": {"repository": "github.com/acme/ux", "pullRequest": 5},
                "team": "ux",
                "services": [{"name": "web", "image": "registry.example/web:1"}],
                "ingress": {"domain": "preview.example.com"},
            },
        },
    ]
    cluster.kubectl("apply", "--server-side", "--field-manager=tests", "-f", "-", input=yaml.safe_dump_all(docs))
    try:
        cluster.kubectl("wait", "--for=condition=Ready", f"namespacequota/{quota}", "--timeout=90s")
        cluster.kubectl(
            "wait", "-n", namespace, "--for=condition=Ready", f"md/{model}", f"pe/{preview}", "--timeout=90s"
        )

        listed = cluster.kubectl("get", "plinth", "-n", namespace, "-o", "name").stdout.split()
        assert set(listed) >= {
            f"modeldeployment.plinth.dev/{model}",
            f"previewenvironment.plinth.dev/{preview}",
        }
        table = cluster.kubectl("get", "pe", preview, "-n", namespace).stdout.splitlines()
        assert table[0].split() == ["NAME", "PR", "URL", "READY", "EXPIRES", "AGE"]
        assert table[1].split()[:4] == [preview, "5", f"https://{preview}-5.preview.example.com", "True"]
        md_table = cluster.kubectl("get", "md", model, "-n", namespace).stdout.splitlines()
        assert md_table[1].split()[:3] == [model, "scorer", "1.0.0"]
        assert "True" in md_table[1].split()

        described = cluster.kubectl("describe", "pe", preview, "-n", namespace).stdout
        assert "Events:" in described
        assert "Ready=True" in described  # the operator's transition Event, shown by describe
        assert "Last Reconcile Lag Seconds" in described
    finally:
        cluster.kubectl("delete", "-n", namespace, "pe", preview, "md", model, "--wait=false", check=False)
        cluster.kubectl("delete", "namespacequota", quota, "--wait=false", check=False)
