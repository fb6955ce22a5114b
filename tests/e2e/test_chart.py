"""The Helm chart (charts/plinth), its plain-manifest Kustomize base and the operator image, tested for real.

helm is built from the Go module proxy on first use (hack/helm, cached like the control plane). The chart is linted
and rendered for several value sets; its CRDs must match crds/; the rendered objects are applied to the local control
plane (server-side dry-run, then for real) in a namespace that enforces Pod Security "restricted". The decisive test
runs the operator with a token of the chart's own ServiceAccount and passes the main flows, proving the RBAC is
sufficient; `kubectl auth can-i --list` for that account is compared with a reviewed snapshot
(PLINTH_UPDATE_SNAPSHOTS=1 rewrites it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from plinth.operator.api import v1alpha1
from plinth.operator.api.served import WEBHOOK_URL

from tests.conftest import Cluster, Operator, wait_for

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "plinth"
SNAPSHOT = Path(__file__).parent / "data" / "chart-rbac.txt"
UPDATE_SNAPSHOTS = os.environ.get("PLINTH_UPDATE_SNAPSHOTS") == "1"
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}

# The first test builds helm when it is not cached yet (about 5 minutes with cold Go caches on 2 cores).
pytestmark = pytest.mark.timeout(1500)


def _run(*args: str | Path, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=1200, check=False, env=env, cwd=ROOT
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result


def _values_file(tmp: Path, values: dict[str, Any]) -> Path:
    path = tmp / f"values-{uuid.uuid4().hex[:8]}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def template(
    helm: Path,
    tmp: Path,
    values: dict[str, Any] | None = None,
    *,
    release: str = "plinth",
    namespace: str = "plinth-system",
    chart: Path = CHART,
) -> list[dict[str, Any]]:
    """`helm template` with *values*; the rendered objects (hooks included)."""
    out = _run(helm, "template", release, chart, "--namespace", namespace, "-f", _values_file(tmp, values or {}))
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def template_error(helm: Path, tmp: Path, values: dict[str, Any], chart: Path = CHART) -> str:
    result = _run(helm, "template", "plinth", chart, "-f", _values_file(tmp, values), check=False)
    assert result.returncode != 0, f"rendering {values} should fail"
    return result.stderr


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in by_kind(objects, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return container


# -- lint and render --------------------------------------------------------------------------------------------------

VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced": {"watchNamespaces": ["team-a", "team-b"]},
    "crds-disabled": {"crds": {"enabled": False}},
    "policies": {
        "policies": {
            "allowedRegistries": {"enabled": True, "prefixes": ["ghcr.io/acme/"], "teams": {"shop": ["ghcr.io/s/"]}},
            "previewTTL": {"enabled": True},
            "modelReplicas": {"enabled": True},
            "requiredLabels": {"enabled": True, "keys": ["cost-center"]},
            "allowedRepositories": {"enabled": True, "prefixes": ["github.com/acme/"]},
        }
    },
    "monitoring": {
        "metrics": {
            "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus"}},
            "prometheusRule": {"enabled": True},
            "dashboards": {"enabled": True},
        },
        "argocd": {"healthChecks": {"enabled": True}},
    },
    "ha": {
        "replicaCount": 2,
        "peering": {"enabled": True},
        "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
        "priorityClassName": "system-cluster-critical",
        "topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway"}
        ],
    },
}


@pytest.mark.parametrize("name", VALUE_SETS)
def test_lint(helm: Path, tmp_path: Path, name: str) -> None:
    result = _run(helm, "lint", "--strict", CHART, "-f", _values_file(tmp_path, VALUE_SETS[name]))
    assert "0 chart(s) failed" in result.stdout


def test_values_are_validated(helm: Path, tmp_path: Path) -> None:
    assert "additional properties 'replicas' not allowed" in template_error(helm, tmp_path, {"replicas": 1})
    assert "/replicaCount" in template_error(helm, tmp_path, {"replicaCount": "one"})
    assert "/image/digest" in template_error(helm, tmp_path, {"image": {"digest": "latest"}})
    assert "/watchNamespaces/0" in template_error(helm, tmp_path, {"watchNamespaces": ["Not_A_Name"]})
    # Two replicas without peering would both reconcile every object: refused.
    assert "needs peering.enabled=true" in template_error(helm, tmp_path, {"replicaCount": 2})
    assert "/peering/lifetimeSeconds" in template_error(helm, tmp_path, {"peering": {"lifetimeSeconds": 2}})
    assert "/peering/name" in template_error(helm, tmp_path, {"peering": {"name": "Not A Name"}})


def test_defaults(helm: Path, tmp_path: Path) -> None:
    objects = template(helm, tmp_path)
    kinds = sorted({o["kind"] for o in objects})
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "Deployment",
        "Pod",
        "Secret",
        "Service",
        "ServiceAccount",
    ]
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "plinth" and labels["app.kubernetes.io/managed-by"] == "Helm"
        if obj["kind"] not in ("CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == "plinth-system"

    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == one(objects, "ServiceAccount")["metadata"]["name"] == "plinth"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = operator_container(objects)
    assert container["image"] == "plinth:0.1.0"  # the chart's appVersion
    assert container["args"] == ["run", "--metrics-port=8080", "--all-namespaces"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    # Ready once it serves conversions: the webhook Service sends the API server's ConversionReviews to it.
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "webhook", "scheme": "HTTPS"}
    assert container["ports"] == [
        {"name": "webhook", "containerPort": 9443, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 8080, "protocol": "TCP"},
    ]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "webhook-tls", "mountPath": "/etc/plinth/webhook", "readOnly": True} in container["volumeMounts"]
    secret = one(objects, "Secret")
    assert pod["volumes"][-1] == {"name": "webhook-tls", "secret": {"secretName": secret["metadata"]["name"]}}
    assert sorted(secret["data"]) == ["ca.crt", "tls.crt", "tls.key"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {
        "PLINTH_LOG_LEVEL": "INFO",
        "PLINTH_MAX_WORKERS": "20",
        "PLINTH_WATCH_TIMEOUT_SECONDS": "300",
        "PLINTH_RESYNC_SECONDS": "300",
        "PLINTH_RESYNC_PER_SECOND": "5",
        "PLINTH_INITIAL_LISTING": "auto",
        "PLINTH_SERVING_IMAGE": "plinth-serving:0.1.0",  # the model server of the same appVersion
        "PLINTH_WEBHOOK_HOST": "0.0.0.0",
        "PLINTH_WEBHOOK_PORT": "9443",
        "PLINTH_WEBHOOK_CERT_DIR": "/etc/plinth/webhook",
        "PLINTH_WEBHOOK_GENERATE_CERT": "false",
        "PLINTH_WEBHOOK_DNS_NAMES": ",".join(
            f"plinth-webhook{suffix}"
            for suffix in ("", ".plinth-system", ".plinth-system.svc", ".plinth-system.svc.cluster.local")
        ),
    }

    webhook = one(objects, "Service", "plinth-webhook")
    assert webhook["spec"]["ports"] == [{"name": "webhook", "port": 443, "targetPort": "webhook", "protocol": "TCP"}]
    assert webhook["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    service = one(objects, "Service", "plinth-metrics")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}]
    # The workload permissions are bound cluster-wide; nothing is bound per namespace.
    bindings = {b["metadata"]["name"]: b["roleRef"]["name"] for b in by_kind(objects, "ClusterRoleBinding")}
    assert bindings == {"plinth": "plinth", "plinth-workloads": "plinth-workloads"}
    assert not by_kind(objects, "RoleBinding")

    # `helm test`: a hook pod that requests /healthz through the metrics Service, admissible under "restricted".
    test_pod = one(objects, "Pod")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    test_container = test_pod["spec"]["containers"][0]
    assert test_container["image"] == "curlimages/curl:8.17.0"
    assert test_container["command"][-1] == "http://plinth-metrics.plinth-system.svc:8080/healthz"
    assert test_pod["metadata"]["labels"]["app.kubernetes.io/component"] == "test"
    selector = service["spec"]["selector"].items()
    assert not selector <= test_pod["metadata"]["labels"].items(), "the test pod must not join the metrics Service"


def test_image_digest_pins_the_image(helm: Path, tmp_path: Path) -> None:
    digest = "sha256:" + "ab" * 32
    objects = template(
        helm, tmp_path, {"image": {"repository": "registry.example/plinth", "tag": "x", "digest": digest}}
    )
    assert operator_container(objects)["image"] == f"registry.example/plinth@{digest}"
    objects = template(helm, tmp_path, {"image": {"tag": "0.2.0"}, "tests": {"image": {"digest": digest}}})
    assert operator_container(objects)["image"] == "plinth:0.2.0"
    assert one(objects, "Pod")["spec"]["containers"][0]["image"] == f"curlimages/curl@{digest}"


def test_namespaced_scope(helm: Path, tmp_path: Path) -> None:
    objects = template(helm, tmp_path, VALUE_SETS["namespaced"])
    args = operator_container(objects)["args"]
    assert args == ["run", "--metrics-port=8080", "--namespace=team-a", "--namespace=team-b"]
    role_bindings = by_kind(objects, "RoleBinding")
    assert sorted(rb["metadata"]["namespace"] for rb in role_bindings) == ["team-a", "team-b"]
    for rb in role_bindings:
        assert rb["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "plinth-workloads",
        }
        assert rb["subjects"] == [{"kind": "ServiceAccount", "name": "plinth", "namespace": "plinth-system"}]
    # NamespaceQuota is cluster-scoped: its permissions stay cluster-wide; the workload ones are not.
    assert [b["roleRef"]["name"] for b in by_kind(objects, "ClusterRoleBinding")] == ["plinth"]


def _strip_meta(crd: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in crd["metadata"].items() if k not in ("labels", "annotations")}
    return {**crd, "metadata": meta}


def test_crds_match_the_generated_ones(helm: Path, tmp_path: Path) -> None:
    """files/crds is a copy of crds/ (hack/helm/sync-crds.sh), and rendering changes nothing but labels/annotations
    (Helm's fromYaml/toYaml round trip could turn large integers into floats)."""
    check = _run(ROOT / "hack" / "helm" / "sync-crds.sh", "--check", check=False)
    assert check.returncode == 0, check.stderr
    generated = {
        doc["metadata"]["name"]: doc
        for path in sorted((ROOT / "crds").glob("*.yaml"))
        if (doc := yaml.safe_load(path.read_text()))["kind"] == "CustomResourceDefinition"
    }
    at_url = template(helm, tmp_path, {"webhook": {"url": WEBHOOK_URL}})
    rendered = {c["metadata"]["name"]: c for c in by_kind(at_url, "CustomResourceDefinition")}
    assert sorted(rendered) == sorted(generated) and len(rendered) == 3
    for name, crd in rendered.items():
        assert _strip_meta(crd) == _strip_meta(generated[name]), name
        assert generated[name]["metadata"]["labels"].items() <= crd["metadata"]["labels"].items()
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}

    # By default conversions go to the release's webhook Service (the operator writes the caBundle).
    for crd in by_kind(template(helm, tmp_path, release="r", namespace="ops"), "CustomResourceDefinition"):
        client_config = crd["spec"]["conversion"]["webhook"]["clientConfig"]
        assert client_config == {
            "service": {"name": "r-plinth-webhook", "namespace": "ops", "path": "/convert", "port": 443}
        }
    unkept = by_kind(template(helm, tmp_path, {"crds": {"keep": False}}), "CustomResourceDefinition")
    assert len(unkept) == 3 and all("annotations" not in c["metadata"] for c in unkept)
    assert not by_kind(template(helm, tmp_path, VALUE_SETS["crds-disabled"]), "CustomResourceDefinition")


def _kopf_rules(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        rule
        for role in by_kind(objects, "ClusterRole") + by_kind(objects, "Role")
        for rule in role["rules"]
        if "kopf.dev" in rule["apiGroups"]
    ]


def test_peering_is_off_by_default(helm: Path, tmp_path: Path) -> None:
    """Standalone: no peering CRD, no peering permissions, no --no-standalone, Recreate."""
    objects = template(helm, tmp_path)
    assert "--no-standalone" not in operator_container(objects)["args"]
    assert not [c for c in by_kind(objects, "CustomResourceDefinition") if c["spec"]["group"] == "kopf.dev"]
    assert not _kopf_rules(objects)
    assert one(objects, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}


def test_peering(helm: Path, tmp_path: Path) -> None:
    objects = template(helm, tmp_path, VALUE_SETS["ha"])
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    # A new replica starts as a standby and the stopping one hands over: roll without a gap.
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    container = operator_container(objects)
    assert container["args"] == ["run", "--metrics-port=8080", "--all-namespaces", "--no-standalone"]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["PLINTH_PEERING_NAME"] == "plinth"  # the release's full name
    assert env["PLINTH_PEERING_LIFETIME_SECONDS"] == "10"
    assert env["POD_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    # kopf's CRD, as shipped in files/peering (labels and the keep annotation added).
    crd = one(objects, "CustomResourceDefinition", "clusterkopfpeerings.kopf.dev")
    shipped = yaml.safe_load((CHART / "files" / "peering" / "clusterkopfpeerings.kopf.dev.yaml").read_text())
    assert _strip_meta(crd) == _strip_meta(shipped)
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    # Exactly what kopf peering and the operator's start-up need, in the cluster-wide role.
    assert _kopf_rules(objects) == [
        {
            "apiGroups": ["kopf.dev"],
            "resources": ["clusterkopfpeerings"],
            "verbs": ["get", "list", "watch", "patch", "create"],
        }
    ]
    assert _kopf_rules([one(objects, "ClusterRole", "plinth")]) == _kopf_rules(objects)

    # Namespaced scope peers cluster-wide too; a given name and lifetime; the CRD left to someone else.
    values = {
        "peering": {"enabled": True, "name": "plinth-eu", "lifetimeSeconds": 15, "installCRD": False},
        "watchNamespaces": ["team-a"],
        "crds": {"keep": False},
    }
    objects = template(helm, tmp_path, values, release="payments")
    env = {e["name"]: e.get("value") for e in operator_container(objects)["env"]}
    assert env["PLINTH_PEERING_NAME"] == "plinth-eu" and env["PLINTH_PEERING_LIFETIME_SECONDS"] == "15"
    assert operator_container(objects)["args"][-2:] == ["--namespace=team-a", "--no-standalone"]
    assert not [c for c in by_kind(objects, "CustomResourceDefinition") if c["spec"]["group"] == "kopf.dev"]
    assert len(_kopf_rules(objects)) == 1
    objects = template(helm, tmp_path, {"peering": {"enabled": True}, "crds": {"keep": False}}, release="payments")
    env = {e["name"]: e.get("value") for e in operator_container(objects)["env"]}
    assert env["PLINTH_PEERING_NAME"] == "payments-plinth"  # two releases never pause each other
    crd = one(objects, "CustomResourceDefinition", "clusterkopfpeerings.kopf.dev")
    assert "annotations" not in crd["metadata"]


def test_high_availability_settings(helm: Path, tmp_path: Path) -> None:
    objects = template(helm, tmp_path, VALUE_SETS["ha"])
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1 and "maxUnavailable" not in pdb["spec"]
    assert pdb["spec"]["selector"]["matchLabels"] == one(objects, "Deployment")["spec"]["selector"]["matchLabels"]
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    pdb = one(template(helm, tmp_path, {"podDisruptionBudget": {"enabled": True}}), "PodDisruptionBudget")
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": pdb["spec"]["selector"]}
    assert one(template(helm, tmp_path, {"replicaCount": 0}), "Deployment")["spec"]["replicas"] == 0


def _alert_groups(chart: Path) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for path in sorted((chart / "files" / "alerts").glob("*.yaml")):
        if not path.name.endswith(".test.yaml"):
            doc = yaml.safe_load(path.read_text())
            groups += doc.get("groups") or doc["spec"]["groups"]
    return groups


def _check_monitoring(objects: list[dict[str, Any]], chart: Path) -> None:
    """The monitoring objects are exactly what chart/files holds (other files, or none, give other objects)."""
    files = chart / "files"
    monitor = one(objects, "ServiceMonitor")
    service = one(objects, "Service", "plinth-metrics")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [service["metadata"]["namespace"]]}

    groups = _alert_groups(chart)
    rules = by_kind(objects, "PrometheusRule")
    assert [r["spec"]["groups"] for r in rules] == ([groups] if groups else [])

    dashboards = sorted((files / "dashboards").glob("*.json"))
    maps = {
        key: value for cm in by_kind(objects, "ConfigMap") if "dashboard" in cm["metadata"]["name"]
        for key, value in cm["data"].items()
    }  # fmt: skip
    assert maps == {p.name: p.read_text() for p in dashboards}
    for cm in by_kind(objects, "ConfigMap"):
        if "dashboard" in cm["metadata"]["name"]:
            assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
            json.loads(next(iter(cm["data"].values())))

    argocd = one(objects, "ConfigMap", "plinth-argocd-health")
    kinds = {"modeldeployment": "ModelDeployment", "previewenvironment": "PreviewEnvironment"}
    kinds["namespacequota"] = "NamespaceQuota"
    expected = {
        f"resource.customizations.health.plinth.dev_{kinds[p.stem]}": p.read_text()
        for p in sorted((files / "argocd").glob("*.lua"))
    }
    assert (argocd.get("data") or {}) == expected


def test_monitoring_and_gitops_assets(helm: Path, tmp_path: Path) -> None:
    objects = template(helm, tmp_path, VALUE_SETS["monitoring"])
    _check_monitoring(objects, CHART)
    assert not by_kind(template(helm, tmp_path), "ConfigMap"), "monitoring assets are opt-in"


def test_monitoring_assets_render_with_any_files(helm: Path, tmp_path: Path) -> None:
    """The templates do not depend on which alert, dashboard and Argo CD files exist: none at all, or others."""
    chart = tmp_path / "plinth"
    shutil.copytree(CHART, chart)
    for folder in ("alerts", "dashboards", "argocd"):
        shutil.rmtree(chart / "files" / folder, ignore_errors=True)
    objects = template(helm, tmp_path, VALUE_SETS["monitoring"], chart=chart)
    assert not by_kind(objects, "PrometheusRule")
    _check_monitoring(objects, chart)

    (chart / "files" / "alerts").mkdir()
    (chart / "files" / "dashboards").mkdir()
    (chart / "files" / "argocd").mkdir()
    # Prometheus' own templating must reach Prometheus untouched.
    rule = {"alert": "PlinthDown", "expr": "up{job='plinth'} == 0", "annotations": {"summary": "{{ $labels.pod }}"}}
    (chart / "files" / "alerts" / "a.yaml").write_text(yaml.safe_dump({"groups": [{"name": "a", "rules": [rule]}]}))
    wrapped = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "spec": {"groups": [{"name": "b"}]}}
    (chart / "files" / "alerts" / "b.yaml").write_text(yaml.safe_dump(wrapped))
    (chart / "files" / "alerts" / "a.test.yaml").write_text("rule_files: [a.yaml]\ntests: []\n")
    (chart / "files" / "dashboards" / "My Board.json").write_text('{"title": "{{ not a template }}"}')
    (chart / "files" / "argocd" / "namespacequota.lua").write_text("hs = {}\nreturn hs\n")
    objects = template(helm, tmp_path, VALUE_SETS["monitoring"], chart=chart)
    _check_monitoring(objects, chart)
    assert (
        one(objects, "PrometheusRule")["spec"]["groups"][0]["rules"][0]["annotations"]["summary"] == "{{ $labels.pod }}"
    )
    assert one(objects, "ConfigMap", "plinth-dashboard-my-board")["data"]["My Board.json"].startswith('{"title"')

    (chart / "files" / "argocd" / "deployment.lua").write_text("return {}\n")
    assert "not a Plinth kind" in template_error(helm, tmp_path, VALUE_SETS["monitoring"], chart=chart)
    (chart / "files" / "argocd" / "deployment.lua").unlink()
    (chart / "files" / "alerts" / "c.yaml").write_text("rules: []\n")
    assert "has no rule groups" in template_error(helm, tmp_path, VALUE_SETS["monitoring"], chart=chart)


def test_rbac_is_least_privilege(helm: Path, tmp_path: Path) -> None:
    objects = template(helm, tmp_path)
    roles = {r["metadata"]["name"]: r["rules"] for r in by_kind(objects, "ClusterRole") + by_kind(objects, "Role")}
    for name, rules in roles.items():
        for rule in rules:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule.get(field, []), f"{name}: wildcard in {rule}"
            assert "nonResourceURLs" not in rule
            # Names narrow one rule only: the webhook's CA is written into Plinth's own CRDs, no other.
            if "resourceNames" in rule:
                assert rule["resources"] == ["customresourcedefinitions"] and rule["verbs"] == ["patch"], rule
                assert sorted(rule["resourceNames"]) == sorted(i.crd_name for i in v1alpha1.KINDS)

    def verbs(role: str, group: str, resource: str) -> set[str]:
        return {
            v
            for rule in roles[role]
            if group in rule["apiGroups"] and resource in rule["resources"]
            for v in rule["verbs"]
        }

    # Secrets: read a source by name and write copies, never enumerate.
    assert verbs("plinth-workloads", "", "secrets") == {"get", "create", "patch", "delete"}
    assert all(not verbs(role, "", "secrets") for role in roles if role != "plinth-workloads")
    assert verbs("plinth", "apiextensions.k8s.io", "customresourcedefinitions") == {"get", "list", "watch", "patch"}
    assert verbs("plinth-workloads", "", "pods") == {"get", "list"}  # listed by reconciles, never watched
    # Nothing may grant permissions onwards or act as someone else.
    forbidden = {"bind", "escalate", "impersonate"}
    assert not {v for rules in roles.values() for rule in rules for v in rule["verbs"]} & forbidden
    # People who can edit a namespace get the namespaced kinds; NamespaceQuota stays with cluster admins.
    assert verbs("plinth-edit", "plinth.dev", "modeldeployments") >= {"create", "patch", "delete"}
    assert not verbs("plinth-edit", "plinth.dev", "namespacequotas")


def test_kustomize_base_is_rendered_from_the_chart(helm: Path) -> None:
    check = _run(ROOT / "hack" / "render-install.sh", "--check", env={**os.environ, "HELM": str(helm)}, check=False)
    assert check.returncode == 0, check.stderr[-3000:]
    from tests.conftest import kubectl_binary

    built = _run(kubectl_binary(), "kustomize", ROOT / "charts" / "kustomize").stdout
    objects = [doc for doc in yaml.safe_load_all(built) if doc]
    assert len(by_kind(objects, "CustomResourceDefinition")) == 3
    namespace = one(objects, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert one(objects, "Deployment")["metadata"]["namespace"] == namespace["metadata"]["name"]
    assert not by_kind(objects, "Pod"), "no helm test hook in plain manifests"


# -- the operator image ----------------------------------------------------------------------------------------------


def _dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    logical, current = [], ""
    for line in path.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        logical.append(current.strip())
        current = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1] if " " in text else "") for text in logical]


@pytest.mark.parametrize(
    ("dockerfile", "run"),
    [("operator/Dockerfile", ["plinth", "run"]), ("serving/Dockerfile", ["plinth-serve"])],
)
def test_dockerfile_invariants(dockerfile: str, run: list[str]) -> None:
    instructions = _dockerfile_instructions(ROOT / dockerfile)
    args = dict(a.split("=", 1) for op, a in instructions if op == "ARG" and "=" in a)
    stages = [i for i, (op, _) in enumerate(instructions) if op == "FROM"]
    assert len(stages) == 2, "a build stage (wheel) and a runtime stage"
    build, final = instructions[stages[0] : stages[1]], instructions[stages[1] :]
    base = final[0][1].split()[0]
    base = args.get(base.strip("${}"), base)
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base), base

    assert any(op == "RUN" and "python -m build --wheel" in a for op, a in build)
    copied = {source.rstrip("/") for op, a in build if op == "COPY" for source in a.split()[:-1]}
    package_dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    assert set(package_dirs.values()) | {"pyproject.toml", "README.md"} <= copied, "every package folder is copied"
    assert any(op == "RUN" and "pip install" in a and ".whl" in a for op, a in final), "the wheel is installed"

    users = [a for op, a in final if op == "USER"]
    assert users, "the runtime stage sets a USER"
    for user in users:
        uid, _, gid = user.partition(":")
        assert uid.isdigit() and int(uid) != 0, f"USER must be a numeric non-root uid: {user}"
        assert not gid or (gid.isdigit() and int(gid) != 0), user
    last_user = final.index(("USER", users[-1]))
    assert not any(op == "RUN" for op, _ in final[last_user:]), "nothing runs as root after USER"
    entrypoint = json.loads(next(a for op, a in final if op == "ENTRYPOINT"))
    command = json.loads(next((a for op, a in final if op == "CMD"), "[]"))
    assert entrypoint + command == run
    # The chart runs the image as the same user, so runAsNonRoot holds with or without the chart's values.
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert str(values["podSecurityContext"]["runAsUser"]) == users[-1].partition(":")[0]


# -- values documentation -------------------------------------------------------------------------------------------


def _schema_paths(schema: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        yield path, sub
        yield from _schema_paths(sub, f"{path}.")


def test_every_value_is_documented() -> None:
    """Each value the schema declares has a comment in values.yaml and a row in docs/install.md; the schema rejects
    unknown keys, so nothing can be added to values.yaml without both."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    declared = dict(_schema_paths(schema))
    lines = (CHART / "values.yaml").read_text().splitlines()
    stack: list[tuple[int, str]] = []
    seen = set()
    for number, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z_][\w.-]*):", line)
        if not match or line.lstrip().startswith("#"):
            continue
        indent = len(match.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([*(k for _, k in stack), match.group(2)])
        stack.append((indent, match.group(2)))
        if path not in declared:
            continue  # free-form content of a documented value (resources, securityContext, labels)
        seen.add(path)
        above = lines[number - 1].strip() if number else ""
        is_group = declared[path].get("type") == "object" and "properties" in declared[path]
        assert is_group or above.startswith("#"), f"values.yaml: {path} has no comment"
    assert seen == set(declared), f"declared but not in values.yaml: {sorted(set(declared) - seen)}"
    install_doc = (ROOT / "docs" / "install.md").read_text()
    leaves = [p for p, s in declared.items() if not (s.get("type") == "object" and "properties" in s)]
    missing = [p for p in leaves if f"`{p}`" not in install_doc]
    assert not missing, f"docs/install.md's values table lacks {missing}"


# -- on the real API server ------------------------------------------------------------------------------------------


def _kubectl_apply(cluster: Cluster, manifests: str, *extra: str) -> None:
    cluster.kubectl("apply", "--server-side", "--field-manager=plinth-tests", *extra, "-f", "-", input=manifests)


def _dump(objects: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objects)


class Release:
    """The chart rendered and applied with kubectl (what `helm install` does, minus Helm's release bookkeeping)."""

    def __init__(self, cluster: Cluster, helm: Path, tmp: Path, values: dict[str, Any] | None = None) -> None:
        self.cluster = cluster
        suffix = uuid.uuid4().hex[:6]
        self.name, self.namespace = f"chart-{suffix}", f"plinth-{suffix}"
        # The session's CRDs send conversions to the host's webhook (crds/), which every test relies on.
        values = {**(values or {}), "webhook": {"url": WEBHOOK_URL}}
        self.objects = template(helm, tmp, values, release=self.name, namespace=self.namespace)
        self.service_account = one(self.objects, "ServiceAccount")["metadata"]["name"]
        self.deployment = one(self.objects, "Deployment")["metadata"]["name"]

    def install(self) -> None:
        namespace = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": self.namespace, "labels": RESTRICTED},
        }
        self.cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(namespace))
        # CRDs are applied with the fixture's field manager: the session already installed the same CRDs from crds/.
        _kubectl_apply(self.cluster, _dump(self.objects), "--dry-run=server")
        _kubectl_apply(self.cluster, _dump(self.objects))

    @property
    def subject(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    def uninstall(self) -> None:
        """Everything but the CRDs: other tests in the session use them."""
        selector = f"app.kubernetes.io/instance={self.name}"
        self.cluster.kubectl("delete", "clusterroles,clusterrolebindings", "-l", selector, check=False)
        self.cluster.kubectl("delete", "namespace", self.namespace, "--wait=false", check=False)
        for obj in by_kind(self.objects, "RoleBinding"):
            meta = obj["metadata"]
            self.cluster.kubectl("-n", meta["namespace"], "delete", "rolebinding", meta["name"], check=False)

    def kubeconfig(self, path: Path) -> Path:
        """A kubeconfig that authenticates with a token of the chart's ServiceAccount (TokenRequest API)."""
        token = self.cluster.kubectl(
            "-n", self.namespace, "create", "token", self.service_account, "--duration=2h"
        ).stdout.strip()
        admin = yaml.safe_load(self.cluster.kubeconfig.read_text())
        server = admin["clusters"][0]["cluster"]
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "local", "cluster": server}],
                    "users": [{"name": "plinth", "user": {"token": token}}],
                    "contexts": [{"name": "plinth", "context": {"cluster": "local", "user": "plinth"}}],
                    "current-context": "plinth",
                }
            )
        )
        path.chmod(0o600)
        return path


@pytest.fixture(scope="module")
def release(cluster: Cluster, helm: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    installed = Release(cluster, helm, tmp_path_factory.mktemp("chart"))
    installed.install()
    yield installed
    installed.uninstall()


@pytest.mark.cluster
def test_installs_in_a_restricted_namespace(cluster: Cluster, release: Release) -> None:
    ns = cluster.get("namespace", release.namespace)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    # The namespace really enforces "restricted": a default pod (no securityContext) is refused...
    refused = cluster.kubectl("-n", release.namespace, "run", "plain", "--image=registry.example/x:1", check=False)
    assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr, refused.stderr
    # ...while the operator's pod is admitted and the Deployment becomes available.
    cluster.kubectl(
        "-n", release.namespace, "rollout", "status", f"deployment/{release.deployment}", "--timeout=90s", timeout=120
    )
    pods = cluster.get("-n", release.namespace, "pods", "-l", "app.kubernetes.io/component=operator")["items"]
    assert len(pods) == 1 and pods[0]["spec"]["serviceAccountName"] == release.service_account
    assert pods[0]["status"]["phase"] == "Running"
    # The `helm test` pod was admitted too.
    assert cluster.get("-n", release.namespace, "pod", f"{release.deployment}-test-healthz")["metadata"]["name"]
    events = cluster.get("-n", release.namespace, "events", "--field-selector", "reason=FailedCreate")["items"]
    assert not events, [e["message"] for e in events]


@pytest.mark.cluster
def helm_env(cluster: Cluster, tmp_path: Path) -> dict[str, str]:
    """The cluster's environment with helm's cache, config and data folders private to the test."""
    return {**cluster.env(), **{f"HELM_{d}_HOME": str(tmp_path / d.lower()) for d in ("CACHE", "CONFIG", "DATA")}}


def restricted_namespace(cluster: Cluster, name: str) -> None:
    """A namespace that enforces the restricted Pod Security Standard, for a release to install into."""
    meta = {"name": name, "labels": RESTRICTED}
    body = yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace", "metadata": meta})
    cluster.kubectl("apply", "--server-side", "-f", "-", input=body)


def test_helm_install_test_and_uninstall(cluster: Cluster, helm: Path, tmp_path: Path) -> None:
    """Helm's own lifecycle on the real API server: install (waiting for the Deployment), NOTES, `helm test` (its hook
    pod admitted under "restricted"; the node simulator completes it), uninstall. The CRDs belong to the session, so
    this release leaves them alone (crds.enabled=false)."""
    suffix = uuid.uuid4().hex[:6]
    name, namespace = f"helm-{suffix}", f"plinth-{suffix}"
    env = helm_env(cluster, tmp_path)
    restricted_namespace(cluster, namespace)
    try:
        installed = _run(
            helm,
            "install",
            name,
            CHART,
            "-n",
            namespace,
            "--set",
            "crds.enabled=false",
            "--wait",
            "--timeout=120s",
            env=env,
        ).stdout
        assert "STATUS: deployed" in installed
        assert "Scope: all namespaces; NamespaceQuotas cluster-wide." in installed
        assert "CRDs: not managed by this release" in installed
        tested = _run(helm, "test", name, "-n", namespace, "--timeout=60s", env=env).stdout
        assert re.search(rf"TEST SUITE:\s+{name}-plinth-test-healthz.*?Phase:\s+Succeeded", tested, re.S), tested
        _run(helm, "uninstall", name, "-n", namespace, "--wait", "--timeout=60s", env=env)
        left = cluster.get("clusterroles,clusterrolebindings", "-l", f"app.kubernetes.io/instance={name}")["items"]
        assert not left, [o["metadata"]["name"] for o in left]
        assert cluster.get("crd", "modeldeployments.plinth.dev")["metadata"]["name"]
    finally:
        selector = f"app.kubernetes.io/instance={name}"
        cluster.kubectl("delete", "clusterroles,clusterrolebindings", "-l", selector, check=False)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _cond(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), None)


def _ready(cluster: Cluster, *args: str) -> Any:
    obj = cluster.get(*args)
    cond = _cond(obj, "Ready")
    current = obj.get("status", {}).get("observedGeneration") == obj["metadata"]["generation"]
    return cond is not None and cond["status"] == "True" and current and obj


def _exists(cluster: Cluster, *args: str) -> bool:
    return cluster.kubectl("get", *args, check=False).returncode == 0


def _reconciled(log: Path, kind: str, name: str) -> list[str]:
    """The results the operator logged for *kind*/*name*."""
    results = []
    for line in log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        ref = entry.get("ref") or {}
        if entry.get("message") == "reconciled" and ref.get("kind") == kind and ref.get("name") == name:
            results.append(entry["result"])
    return results


def _assert_no_forbidden(log: Path) -> None:
    text = log.read_text()
    denied = [line for line in text.splitlines() if re.search(r"forbidden|\(403\)|\bcode\W+403\b", line, re.IGNORECASE)]
    assert not denied, "the operator was denied:\n" + "\n".join(line[:600] for line in denied[:5])


def _until(log: Path, predicate: Callable[[], Any], what: str, timeout: float = 90) -> Any:
    """wait_for, failing at once (with the denial) when the operator logs a Forbidden answer."""

    def check() -> Any:
        _assert_no_forbidden(log)
        return predicate()

    return wait_for(check, timeout=timeout, what=what)


def _model_deployment(name: str, namespace: str, **spec: Any) -> str:
    body = {
        "apiVersion": "plinth.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"name": "fraud-scorer", "version": "1.4.0", "uri": "s3://models/fraud/1.4.0"},
            "runtime": {"image": "registry.example/model-server:2.1", "port": 8080},
            **spec,
        },
    }
    return yaml.safe_dump(body)


def _preview_flow(cluster: Cluster, operator: Operator, namespace: str, team: str) -> None:
    """PreviewEnvironment: a namespace of its own, a copied and a generated Secret, a workload and an Ingress; the
    finalizer deletes the namespace with the same credentials."""
    cluster.kubectl("-n", namespace, "create", "secret", "generic", "db", "--from-literal=url=postgres://x")
    pe = f"pe-{uuid.uuid4().hex[:6]}"
    preview = {
        "apiVersion": "plinth.dev/v1alpha1",
        "kind": "PreviewEnvironment",
        "metadata": {"name": pe, "namespace": namespace},
        "spec": {
            "source": {"repository": "github.com/acme/shop", "pullRequest": 1},
            "team": team,
            "services": [{"name": "web", "image": "registry.example/web:1"}],
            "secrets": [{"copyFrom": {"name": "db"}}, {"generate": {"name": "session", "keys": ["KEY"]}}],
            "ingress": {"domain": "preview.example.com"},
        },
    }
    _kubectl_apply(cluster, yaml.safe_dump(preview))
    _until(operator.log, lambda: _ready(cluster, "-n", namespace, "previewenvironment", pe), "PE Ready", timeout=90)
    target = cluster.get("-n", namespace, "previewenvironment", pe)["status"]["namespace"]
    for kind, name in (("secret", "db"), ("secret", "session"), ("deployment", "web"), ("ingress", "preview")):
        assert _exists(cluster, "-n", target, kind, name), kind
    cluster.kubectl("-n", namespace, "delete", "previewenvironment", pe, "--timeout=90s")
    assert not _exists(cluster, "namespace", target)
    assert "success" in _reconciled(operator.log, "PreviewEnvironment", pe)


@pytest.mark.cluster
def test_operator_runs_with_the_charts_service_account(cluster: Cluster, release: Release, tmp_path: Path) -> None:
    """The decisive RBAC test: the operator, authenticated only as the chart's ServiceAccount, passes the main flows
    with no request denied. (Objects are created by the test as admin, as users would.)"""
    kubeconfig = release.kubeconfig(tmp_path / "sa.kubeconfig")
    as_sa = Cluster(kubeconfig)
    assert release.subject in as_sa.kubectl("auth", "whoami", "-o", "json").stdout
    assert as_sa.kubectl("get", "secrets", "-A", check=False).returncode != 0, "the account must not list secrets"

    operator = Operator(as_sa, tmp_path / "operator.log")
    team = f"team-{uuid.uuid4().hex[:6]}"
    quota_ns, model_ns = f"t-{uuid.uuid4().hex[:10]}", f"t-{uuid.uuid4().hex[:10]}"
    nsq, md = f"nsq-{team}", f"md-{uuid.uuid4().hex[:6]}"
    try:
        cluster.kubectl("create", "namespace", quota_ns)
        cluster.kubectl("label", "namespace", quota_ns, f"plinth.dev/team={team}")
        cluster.kubectl("create", "namespace", model_ns)
        quota = {
            "apiVersion": "plinth.dev/v1alpha1",
            "kind": "NamespaceQuota",
            "metadata": {"name": nsq},
            "spec": {
                "namespaceSelector": {"matchLabels": {"plinth.dev/team": team}},
                "perNamespace": {"hard": {"requests.cpu": "2", "pods": 10}},
                "defaults": {"request": {"cpu": "100m"}, "limit": {"cpu": "500m"}},
                "total": {"hard": {"requests.cpu": "10"}},
                "networkIsolation": "DefaultDeny",
            },
        }
        _kubectl_apply(cluster, yaml.safe_dump(quota))
        _until(operator.log, lambda: _ready(cluster, "namespacequota", nsq), "NamespaceQuota Ready", timeout=60)
        for kind, name in (("resourcequota", "plinth-quota"), ("limitrange", "plinth-defaults")):
            assert _exists(cluster, "-n", quota_ns, kind, name)
        assert _exists(cluster, "-n", quota_ns, "networkpolicy", "plinth-isolation")
        # Namespace events reach the operator: a namespace that stops matching loses its children.
        cluster.kubectl("label", "namespace", quota_ns, "plinth.dev/team-")
        _until(
            operator.log,
            lambda: not _exists(cluster, "-n", quota_ns, "resourcequota", "plinth-quota"),
            "quota pruned from the deselected namespace",
            timeout=30,
        )

        def md_ready() -> Any:
            return _ready(cluster, "-n", model_ns, "modeldeployment", md)

        # ModelDeployment: fixed replicas (Deployment, Service, PDB), then autoscaled (HPA created),
        # then one replica (HPA and PDB deleted).
        _kubectl_apply(cluster, _model_deployment(md, model_ns, replicas=2))
        _until(operator.log, md_ready, "MD Ready", timeout=90)
        for kind in ("deployment", "service", "pdb"):
            assert _exists(cluster, "-n", model_ns, kind, md), kind
        autoscaling = {"minReplicas": 1, "maxReplicas": 3, "targetCPUUtilizationPercentage": 70}
        _kubectl_apply(cluster, _model_deployment(md, model_ns, autoscaling=autoscaling))
        _until(operator.log, lambda: _exists(cluster, "-n", model_ns, "hpa", md), "HPA created", timeout=60)
        _until(operator.log, md_ready, "MD Ready (HPA)", timeout=90)
        _kubectl_apply(cluster, _model_deployment(md, model_ns, replicas=1))
        _until(operator.log, lambda: not _exists(cluster, "-n", model_ns, "hpa", md), "HPA deleted", timeout=60)
        _until(operator.log, lambda: not _exists(cluster, "-n", model_ns, "pdb", md), "PDB deleted", timeout=60)
        _until(operator.log, md_ready, "MD Ready (1)", timeout=90)
        # A canary: a second Deployment and per-track Services (an HTTPRoute too when the Gateway API is installed),
        # promoted after staying healthy, then removed.
        canary = {
            "version": "1.5.0",
            "uri": "s3://models/fraud/1.5.0",
            "trafficPercent": 20,
            "autoPromote": {"after": "2s"},
        }
        _kubectl_apply(cluster, _model_deployment(md, model_ns, replicas=1, canary=canary))
        _until(
            operator.log,
            lambda: (cluster.get("-n", model_ns, "md", md)["status"].get("canary") or {}).get("phase") == "Promoted",
            "canary promoted",
        )
        _until(
            operator.log,
            lambda: not _exists(cluster, "-n", model_ns, "deployment", f"{md}-canary"),
            "canary Deployment deleted",
        )

        _preview_flow(cluster, operator, model_ns, team)

        # This operator did the work (another may run in the same session): it reconciled both objects successfully.
        assert "success" in _reconciled(operator.log, "NamespaceQuota", nsq)
        assert "success" in _reconciled(operator.log, "ModelDeployment", md)
        assert "error" not in _reconciled(operator.log, "ModelDeployment", md) + _reconciled(
            operator.log, "NamespaceQuota", nsq
        )
        # Deletion runs kopf's finalizer removal with the same credentials.
        cluster.kubectl("-n", model_ns, "delete", "modeldeployment", md, "--timeout=60s")
        cluster.kubectl("delete", "namespacequota", nsq, "--timeout=60s")
    finally:
        code = operator.stop()
        cluster.kubectl("delete", "namespacequota", nsq, "--ignore-not-found", "--wait=false", check=False)
        for ns in (quota_ns, model_ns):
            cluster.kubectl("delete", "namespace", ns, "--ignore-not-found", "--wait=false", check=False)
    _assert_no_forbidden(operator.log)
    assert code == 0, operator.log.read_text()[-3000:]


def _operator_in(cluster: Cluster, log: Path, *namespaces: str) -> subprocess.Popen[str]:
    """`plinth run -n ...` (the Operator fixture watches all namespaces)."""
    from tests.conftest import free_port, http_get

    port = free_port()
    args = [f"--namespace={ns}" for ns in namespaces]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "plinth"), "run", "--metrics-port", str(port), *args],
            env=cluster.env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    wait_for(lambda: proc.poll() is not None or http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200)
    assert proc.poll() is None, log.read_text()[-3000:]
    return proc


@pytest.mark.cluster
def test_namespaced_scope_runs_with_rolebindings_only(cluster: Cluster, helm: Path, tmp_path: Path) -> None:
    """With watchNamespaces, workload permissions exist only in those namespaces, and that is enough."""
    watched = f"t-{uuid.uuid4().hex[:10]}"
    scoped = Release(cluster, helm, tmp_path, {"watchNamespaces": [watched]})
    cluster.kubectl("create", "namespace", watched)
    scoped.install()
    proc: subprocess.Popen[str] | None = None
    log = tmp_path / "operator.log"
    try:
        as_sa = Cluster(scoped.kubeconfig(tmp_path / "sa.kubeconfig"))
        elsewhere = f"-n={scoped.namespace}"
        assert as_sa.kubectl("auth", "can-i", "create", "deployments", f"-n={watched}").stdout.strip() == "yes"
        assert as_sa.kubectl("auth", "can-i", "create", "deployments", elsewhere, check=False).stdout.strip() == "no"
        proc = _operator_in(as_sa, log, watched)
        md = f"md-{uuid.uuid4().hex[:6]}"
        _kubectl_apply(cluster, _model_deployment(md, watched, replicas=2))
        _until(log, lambda: _ready(cluster, "-n", watched, "modeldeployment", md), "MD Ready", timeout=90)
        assert _exists(cluster, "-n", watched, "pdb", md)
        assert "success" in _reconciled(log, "ModelDeployment", md)
        cluster.kubectl("-n", watched, "delete", "modeldeployment", md, "--timeout=60s")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        scoped.uninstall()
        cluster.kubectl("delete", "namespace", watched, "--wait=false", check=False)
    _assert_no_forbidden(log)


def _peering_replica(as_sa: Cluster, release: Release, log: Path, pod: str) -> subprocess.Popen[str]:
    """The operator as the chart runs it with peering.enabled: its args and env (POD_ID as the fieldRef would set
    it), on a free metrics port, with the chart's ServiceAccount token."""
    from tests.conftest import free_port, http_get

    container = operator_container(release.objects)
    port = free_port()
    args = [f"--metrics-port={port}" if a.startswith("--metrics-port") else a for a in container["args"]]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "plinth"), *args],
            # Conversions are the session webhook's: the certificate a Pod mounts is not on this machine.
            env={**as_sa.env(), **env, "POD_ID": pod, "PLINTH_WEBHOOK_PORT": "0"},
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    wait_for(lambda: proc.poll() is not None or http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200)
    assert proc.poll() is None, log.read_text()[-3000:]
    return proc


@pytest.mark.cluster
def test_peering_runs_with_the_chart_rbac(cluster: Cluster, release: Release, helm: Path, tmp_path: Path) -> None:
    """peering.enabled grants exactly one rule more than the defaults, and it is enough: two replicas running with
    the chart's token peer (one works, the other stands by) and the standby takes over when the first is killed."""
    ha = Release(cluster, helm, tmp_path, {"peering": {"enabled": True}, "replicaCount": 2})
    ha.install()
    peering = {e["name"]: e.get("value") for e in operator_container(ha.objects)["env"]}["PLINTH_PEERING_NAME"]
    procs: list[subprocess.Popen[str]] = []
    logs = [tmp_path / "replica-0.log", tmp_path / "replica-1.log"]

    def working(log: Path) -> bool:
        _assert_no_forbidden(log)
        text = log.read_text()
        return "Resuming operations" in text and '"peering: working"' in text  # kopf's and the schedule's reading

    def peers() -> set[str]:
        found = cluster.kubectl("get", "clusterkopfpeering", peering, "-o", "json", check=False)
        return set(json.loads(found.stdout).get("status") or {}) if found.returncode == 0 else set()

    try:
        added = sorted(set(_can_i(cluster, ha.subject, "default")) - set(_can_i(cluster, release.subject, "default")))
        assert len(added) == 1 and added[0].startswith("clusterkopfpeerings.kopf.dev "), added
        assert added[0].endswith("[create get list patch watch]"), added
        assert not set(_can_i(cluster, release.subject, "default")) - set(_can_i(cluster, ha.subject, "default"))

        as_sa = Cluster(ha.kubeconfig(tmp_path / "sa.kubeconfig"))
        pods = [f"{ha.deployment}-0", f"{ha.deployment}-1"]
        procs.append(_peering_replica(as_sa, ha, logs[0], pods[0]))
        wait_for(lambda: working(logs[0]), what="first replica working")
        procs.append(_peering_replica(as_sa, ha, logs[1], pods[1]))
        wait_for(lambda: peers() == set(pods), what="both replicas' keep-alives, by pod name")
        assert not working(logs[1])
        procs[0].kill()
        procs[0].wait()
        wait_for(lambda: working(logs[1]), timeout=30, what="standby taking over")
        wait_for(lambda: peers() == {pods[1]}, what="the killed replica's keep-alive removed")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
        ha.uninstall()
        cluster.kubectl("delete", "clusterkopfpeering", peering, "--ignore-not-found", check=False)
        # Other tests assume no peering CRD (test_ha installs its own).
        cluster.kubectl("delete", "crd", "clusterkopfpeerings.kopf.dev", "--ignore-not-found", check=False)
    for log in logs:
        _assert_no_forbidden(log)


# -- RBAC snapshot ----------------------------------------------------------------------------------------------------


def _can_i(cluster: Cluster, subject: str, namespace: str) -> list[str]:
    """`kubectl auth can-i --list` as *subject* in *namespace*, one normalised line per rule, sorted."""
    table = cluster.kubectl("auth", "can-i", "--list", f"--as={subject}", "-n", namespace).stdout.splitlines()
    header = table[0]
    starts = [header.index(col) for col in ("Resources", "Non-Resource URLs", "Resource Names", "Verbs")]
    rows = []
    for line in table[1:]:
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        verbs = " ".join(sorted(cells[3].strip("[]").split()))
        rows.append(f"{cells[0] or '-':<50} {cells[1] or '-':<38} {cells[2] or '-':<6} [{verbs}]")
    return sorted(rows)


@pytest.mark.cluster
def test_rbac_snapshot(cluster: Cluster, release: Release, helm: Path, tmp_path: Path) -> None:
    """What the ServiceAccount may do, as the API server sees it: any change to it must be reviewed here."""
    watched = f"t-{uuid.uuid4().hex[:10]}"
    scoped = Release(cluster, helm, tmp_path, {"watchNamespaces": [watched]})
    cluster.kubectl("create", "namespace", watched)
    scoped.install()
    try:
        sections = {
            "all namespaces (default values), in any namespace": _can_i(cluster, release.subject, "default"),
            "watchNamespaces: [W], in W": _can_i(cluster, scoped.subject, watched),
            "watchNamespaces: [W], in any other namespace": _can_i(cluster, scoped.subject, "default"),
        }
    finally:
        scoped.uninstall()
        cluster.kubectl("delete", "namespace", watched, "--wait=false", check=False)
    text = "# `kubectl auth can-i --list --as=system:serviceaccount:<ns>:<sa>` for the chart's ServiceAccount.\n"
    text += "# Generated by tests/e2e/test_chart.py; review changes, regenerate with PLINTH_UPDATE_SNAPSHOTS=1.\n"
    for title, rows in sections.items():
        text += f"\n## {title}\n" + "\n".join(rows) + "\n"
    if UPDATE_SNAPSHOTS:
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(text)
    assert SNAPSHOT.exists(), f"no snapshot yet: run with PLINTH_UPDATE_SNAPSHOTS=1 to create {SNAPSHOT}"
    assert text == SNAPSHOT.read_text(), f"RBAC changed: review and regenerate {SNAPSHOT.relative_to(ROOT)}"
