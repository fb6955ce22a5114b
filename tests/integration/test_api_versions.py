"""Both API versions on the real API server, converted by the real webhook (``plinth webhook``, tests/conftest.py):
an object written at one version is read, updated and watched at the other; a GitOps tool re-applying its manifest
sees no diff; the operator's own reads and writes need no conversion; with the webhook down, the API server says
so and nothing is lost."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from plinth.operator.api.conversion import ALPHA, BETA, convert
from plinth.operator.api.served import WEBHOOK_URL

from tests.conftest import Cluster, Operator, kubectl_binary, wait_for

pytestmark = pytest.mark.cluster


def _model(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": ALPHA,
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"name": "fraud", "version": "1.4.0", "uri": "s3://models/fraud/1.4.0"},
            "runtime": {"image": "registry.example/model-server:2.1"},
            "replicas": 2,
            "rateLimit": {"requestsPerSecond": 20},
        },
    }


def _get(cluster: Cluster, api_version: str, namespace: str, name: str) -> dict[str, Any]:
    group, version = api_version.split("/")
    found: dict[str, Any] = cluster.get("-n", namespace, f"modeldeployments.{version}.{group}", name)
    return found


def _apply(cluster: Cluster, obj: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl("apply", "--server-side", *args, "-f", "-", input=json.dumps(obj))


def test_written_at_one_version_read_and_updated_at_the_other(cluster: Cluster, namespace: str) -> None:
    name = f"v-{uuid.uuid4().hex[:6]}"
    _apply(cluster, _model(name, namespace), "--field-manager=team")
    beta = _get(cluster, BETA, namespace, name)
    assert beta["apiVersion"] == BETA
    assert beta["spec"]["scaling"] == {"replicas": 2} and beta["spec"]["access"]["rateLimit"]["requestsPerSecond"] == 20
    assert "replicas" not in beta["spec"]
    # kubectl prefers the newest version: `kubectl get md` shows v1beta1.
    assert cluster.get("-n", namespace, "md", name)["apiVersion"] == BETA

    # Updated at v1beta1 (by another manager), read back at v1alpha1: the change is there, nothing else moved.
    patch = {"spec": {"scaling": {"replicas": 3}}}
    cluster.kubectl(
        "-n", namespace, "patch", f"modeldeployments.v1beta1.plinth.dev/{name}", "--type=merge", "-p", json.dumps(patch)
    )
    alpha = _get(cluster, ALPHA, namespace, name)
    assert alpha["spec"]["replicas"] == 3 and alpha["spec"]["rateLimit"] == {"requestsPerSecond": 20.0}
    assert "scaling" not in alpha["spec"]
    assert convert(alpha, BETA)["spec"] == _get(cluster, BETA, namespace, name)["spec"]


def test_a_gitops_reapply_of_a_v1alpha1_manifest_shows_no_diff_and_no_conflict(
    cluster: Cluster, namespace: str
) -> None:
    name = f"g-{uuid.uuid4().hex[:6]}"
    manifest = _model(name, namespace)
    _apply(cluster, manifest, "--field-manager=argocd-controller")
    diff = cluster.kubectl(
        "diff", "--server-side", "--field-manager=argocd-controller", "-f", "-", input=json.dumps(manifest), check=False
    )
    assert diff.returncode == 0, diff.stdout + diff.stderr  # 0: no differences
    again = _apply(cluster, manifest, "--field-manager=argocd-controller")
    assert "unchanged" in again.stdout or "serverside-applied" in again.stdout
    # The same object written as v1beta1 by the same manager is the same object: no diff either.
    beta = convert(manifest, BETA)
    diff = cluster.kubectl(
        "diff", "--server-side", "--field-manager=argocd-controller", "-f", "-", input=json.dumps(beta), check=False
    )
    assert diff.returncode == 0, diff.stdout + diff.stderr


def test_a_watch_at_one_version_sees_changes_made_at_the_other(cluster: Cluster, namespace: str) -> None:
    name = f"w-{uuid.uuid4().hex[:6]}"
    _apply(cluster, _model(name, namespace), "--field-manager=team")
    watch = subprocess.Popen(
        [
            kubectl_binary(),
            "--kubeconfig",
            str(cluster.kubeconfig),
            "-n",
            namespace,
            "get",
            "modeldeployments.v1beta1.plinth.dev",
            name,
            "--watch",
            "--output-watch-events",
            "-o",
            "json",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        patch = {"spec": {"replicas": 4}}
        cluster.kubectl(
            "-n",
            namespace,
            "patch",
            f"modeldeployments.v1alpha1.plinth.dev/{name}",
            "--type=merge",
            "-p",
            json.dumps(patch),
        )
        assert watch.stdout is not None
        decoder, buffer = json.JSONDecoder(), ""
        while True:
            line = watch.stdout.readline()
            assert line, "the watch ended"
            buffer += line
            try:
                event, _ = decoder.raw_decode(buffer.strip())
            except ValueError:
                continue
            buffer = ""
            if event["object"]["spec"].get("scaling", {}).get("replicas") == 4:
                assert event["object"]["apiVersion"] == BETA
                break
    finally:
        watch.kill()
        watch.wait()


def test_with_the_webhook_down_the_api_server_says_so_and_nothing_is_lost(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    """Conversions fail with the API server's own message; the version etcd stores (v1beta1) reads and writes
    without the webhook, and the operator, which uses only that version, keeps working."""
    name = f"d-{uuid.uuid4().hex[:6]}"
    manifest = _model(name, namespace)
    _apply(cluster, manifest, "--field-manager=team")
    wait_for(lambda: _deployment_replicas(cluster, namespace, name) == 2, timeout=60, what="the model's Deployment")
    # Down as the API server sees it: nothing answers where the CRD sends conversions. (Stopping the session's
    # webhook would not do: any other process on the machine may serve 127.0.0.1:9443 with the same certificate.)
    _conversions_at(cluster, "https://127.0.0.1:1/convert")
    try:
        refused = wait_for(
            lambda: (
                found
                if (found := cluster.kubectl("-n", namespace, "get", f"{ALPHA_MD}/{name}", check=False)).returncode
                else None
            ),
            timeout=30,
            what="the API server to use the new webhook address",
        )
        message = "conversion webhook for plinth.dev/v1beta1, Kind=ModelDeployment failed"
        assert message in refused.stderr, refused.stderr
        manifest["spec"]["replicas"] = 5
        written = cluster.kubectl(
            "apply", "--server-side", "--field-manager=team", "-f", "-", input=json.dumps(manifest), check=False
        )
        assert written.returncode != 0 and "conversion webhook" in written.stderr, written.stderr
        # At v1beta1 nothing needs converting: a change there is stored, and the operator carries it out.
        patch = json.dumps({"spec": {"scaling": {"replicas": 3}}})
        cluster.kubectl(
            "-n", namespace, "patch", f"modeldeployments.v1beta1.plinth.dev/{name}", "--type=merge", "-p", patch
        )
        wait_for(lambda: _deployment_replicas(cluster, namespace, name) == 3, timeout=60, what="the operator's rollout")
    finally:
        _conversions_at(cluster, WEBHOOK_URL)
    back = wait_for(
        lambda: (
            cluster.kubectl("-n", namespace, "get", f"{ALPHA_MD}/{name}", "-o", "json", check=False).returncode == 0
        ),
        timeout=30,
        what="v1alpha1 to read again",
    )
    assert back and _get(cluster, ALPHA, namespace, name)["spec"]["replicas"] == 3, "nothing lost"


ALPHA_MD = "modeldeployments.v1alpha1.plinth.dev"


def _conversions_at(cluster: Cluster, url: str) -> None:
    """Point the ModelDeployment CRD's conversion webhook at *url* (the same field the session's CRDs set)."""
    patch = [{"op": "replace", "path": "/spec/conversion/webhook/clientConfig/url", "value": url}]
    cluster.kubectl("patch", "crd", "modeldeployments.plinth.dev", "--type=json", "-p", json.dumps(patch))


def _deployment_replicas(cluster: Cluster, namespace: str, name: str) -> int | None:
    found = cluster.kubectl("-n", namespace, "get", "deployment", name, "-o", "json", check=False)
    return json.loads(found.stdout)["spec"]["replicas"] if found.returncode == 0 else None


def test_the_operator_reconciles_an_object_written_at_v1beta1(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    name = f"b-{uuid.uuid4().hex[:6]}"
    beta = convert(_model(name, namespace), BETA)
    cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(beta))
    wait_for(
        lambda: cluster.kubectl("-n", namespace, "get", "deployment", name, check=False).returncode == 0,
        timeout=60,
        what="the model's Deployment",
    )
    assert cluster.get("-n", namespace, "deployment", name)["spec"]["replicas"] == 2


def _storage(cluster: Cluster, crd: str, version: str) -> None:
    """Make *version* the storage version of *crd* (as an older Plinth release had it), and wait until the API server
    stores at it: a probe written at the other version is then converted on its way to etcd, which the API server's
    own conversion metric counts."""
    versions = cluster.get("crd", crd)["spec"]["versions"]
    patch = [
        {"op": "replace", "path": f"/spec/versions/{i}/storage", "value": v["name"] == version}
        for i, v in enumerate(versions)
    ]
    cluster.kubectl("patch", "crd", crd, "--type=json", "-p", json.dumps(patch))
    other = BETA if version == "v1alpha1" else ALPHA
    probe = convert({**_quota(f"storage-probe-{uuid.uuid4().hex[:6]}", "storage-probe"), "apiVersion": ALPHA}, other)

    def stored_at_version() -> bool:
        before = _conversions(cluster, crd, other.split("/")[1], version)
        _apply(cluster, probe, "--field-manager=team")
        return _conversions(cluster, crd, other.split("/")[1], version) > before

    try:
        wait_for(stored_at_version, timeout=60, what=f"{crd} stored at {version}")
    finally:
        cluster.kubectl("delete", "namespacequota", probe["metadata"]["name"], "--ignore-not-found", "--wait=false")


def _conversions(cluster: Cluster, crd: str, source: str, target: str) -> float:
    """The API server's count of successful conversions of *crd* objects from *source* to *target*."""
    metrics = cluster.kubectl("get", "--raw", "/metrics").stdout
    wanted = f'crd_name="{crd}",from_version="{source}",succeeded="true",to_version="{target}"'
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("apiserver_crd_conversion_webhook_duration_seconds_count{") and wanted in line
    )


def _quota(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": ALPHA,
        "kind": "NamespaceQuota",
        "metadata": {"name": name},
        "spec": {"namespaces": [namespace], "perNamespace": {"hard": {"pods": "3"}}},
    }


def test_the_storage_migration_rewrites_every_object_once_and_trims_stored_versions(cluster: Cluster) -> None:
    """Objects stored by a release whose storage version was v1alpha1 are rewritten at v1beta1 by `plinth
    migrate-storage`; storedVersions is then [v1beta1], so v1alpha1 could stop being served; run again, it writes
    nothing."""
    crd, suffix = "namespacequotas.plinth.dev", uuid.uuid4().hex[:6]
    names = [f"migrate-{suffix}-{i}" for i in range(3)]
    _storage(cluster, crd, "v1alpha1")
    try:
        for name in names:
            _apply(cluster, _quota(name, f"absent-{suffix}"), "--field-manager=team")  # stored as written: v1alpha1
    finally:
        _storage(cluster, crd, "v1beta1")
    try:
        assert sorted(cluster.get("crd", crd)["status"]["storedVersions"]) == ["v1alpha1", "v1beta1"]
        before = {n: cluster.get("namespacequotas.v1beta1.plinth.dev", n) for n in names}
        migrate = [str(Path(sys.executable).parent / "plinth"), "migrate-storage"]
        first = subprocess.run(migrate, env=cluster.env(), capture_output=True, text=True, check=True, timeout=120)
        rewritten = re.search(rf"{crd}: (\d+) object\(s\) rewritten at plinth.dev/v1beta1", first.stdout)
        assert rewritten and int(rewritten.group(1)) >= len(names), first.stdout  # every stored object written back
        assert cluster.get("crd", crd)["status"]["storedVersions"] == ["v1beta1"]
        for name, old in before.items():
            now = cluster.get("namespacequotas.v1beta1.plinth.dev", name)
            assert now["spec"] == old["spec"] and now["spec"]["namespaces"] == {"names": [f"absent-{suffix}"]}
        again = subprocess.run(migrate, env=cluster.env(), capture_output=True, text=True, check=True, timeout=120)
        assert f"{crd}: every object is stored at plinth.dev/v1beta1 already" in again.stdout, "nothing written twice"
    finally:
        cluster.kubectl("delete", "namespacequota", *names, "--ignore-not-found", "--wait=false")
