"""The generated CRDs on a real API server: samples accepted, invalid manifests rejected with a useful message,
immutable fields enforced, defaults applied, and the descriptions served to ``kubectl explain``.

Fixtures (tests/conftest.py): ``cluster`` (session; CRDs from crds/ installed and Established; ``cluster.kubectl``
runs kubectl against it) and ``namespace`` (a fresh namespace per test).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
import yaml
from plinth.operator.api.conversion import internal
from plinth.operator.api.v1alpha1 import KINDS, ModelSource

from tests.conftest import at_version, wait_for

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "crds" / "samples").glob("*.yaml"))
INVALID = sorted((ROOT / "tests" / "data" / "invalid").glob("*.yaml"))


class Cluster(Protocol):
    """What these tests use of the ``cluster`` fixture."""

    kubeconfig: Path

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]: ...


@dataclass(frozen=True)
class InvalidCase:
    """One file of tests/data/invalid: what the API server must say, and the documents to send.

    Header lines ``# expect: <text>`` (one or more, at the top) are substrings kubectl's stderr must contain: each
    names the field and what is wrong with it. A file with one document must be refused at creation; a file with two
    is an update step: the first document is created, and the second, the same object changed, must be refused.
    """

    expects: list[str]
    setup: list[str]
    refused: str


def _invalid_case(path: Path) -> InvalidCase:
    text = path.read_text()
    expects = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        if line.startswith("# expect: "):
            expects.append(line.removeprefix("# expect: ").strip())
    assert expects, f"{path.name}: the header must have at least one '# expect: <substring>' line"
    *setup, refused = [doc for doc in re.split(r"^---[ \t]*$", text, flags=re.MULTILINE) if doc.strip()]
    assert len(setup) <= 1, f"{path.name}: at most two documents (the object, then the refused update)"
    return InvalidCase(expects, setup, refused)


def _stored(cluster: Cluster, kind: str, namespace: str) -> list[dict[str, Any]]:
    """Every object of *kind* in *namespace* (NamespaceQuota: in the cluster), whatever its name."""
    scope = ["-n", namespace] if kind != "NamespaceQuota" else []
    result = cluster.kubectl("get", f"{kind.lower()}s.plinth.dev", *scope, "-o", "json")
    items: list[dict[str, Any]] = json.loads(result.stdout)["items"]
    return items


def _get(cluster: Cluster, resource: str, name: str, namespace: str) -> dict[str, Any]:
    result = cluster.kubectl("get", at_version(resource), name, "-n", namespace, "-o", "json")
    obj: dict[str, Any] = json.loads(result.stdout)
    return obj


def _apply(cluster: Cluster, namespace: str, manifest: dict[str, Any], *, check: bool = True) -> Any:
    return cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest), check=check)


def _sample(name: str) -> dict[str, Any]:
    """A sample as v1alpha1 has it: these tests are about the fields of the manifests written for it."""
    doc: dict[str, Any] = internal(yaml.safe_load((ROOT / "crds" / "samples" / name).read_text()))
    return doc


def _retry(action: Any, *, timeout: float = 30.0) -> Any:
    """Retry while the API server catches up (e.g. the aggregated OpenAPI lags behind a new CRD by seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return action()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_crds_are_established(cluster: Cluster) -> None:
    for info in KINDS:
        result = cluster.kubectl("get", "crd", info.crd_name, "-o", "json")
        conditions = {c["type"]: c["status"] for c in json.loads(result.stdout)["status"]["conditions"]}
        assert conditions.get("Established") == "True", info.crd_name
        assert conditions.get("NamesAccepted") == "True", info.crd_name


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_sample_is_accepted(cluster: Cluster, namespace: str, sample: Path) -> None:
    result = cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(sample), check=False)
    assert result.returncode == 0, f"{sample.name} was rejected:\n{result.stderr}"


@pytest.mark.parametrize("manifest", INVALID, ids=lambda p: p.name)
def test_invalid_manifest_is_rejected(cluster: Cluster, namespace: str, manifest: Path) -> None:
    """Refused at admission by the real API server with a field-level message, and never stored: the operator,
    which only sees stored objects through its watches, cannot receive it."""
    case = _invalid_case(manifest)
    kind = yaml.safe_load(case.refused)["kind"]
    name = yaml.safe_load(case.refused)["metadata"]["name"]
    before = {o["metadata"]["name"] for o in _stored(cluster, kind, namespace)}
    created: list[dict[str, Any]] = []
    try:
        for doc in case.setup:
            cluster.kubectl("create", "-n", namespace, "-f", "-", input=doc)
            created = [o for o in _stored(cluster, kind, namespace) if o["metadata"]["name"] == name]
        verb = "replace" if case.setup else "create"

        def answer() -> Any:
            # The operator may write the stored object (finalizer, annotations) meanwhile: an update race is no answer.
            reply = cluster.kubectl(verb, "-n", namespace, "-f", "-", input=case.refused, check=False)
            return None if "the object has been modified" in reply.stderr else reply

        result = wait_for(answer, timeout=30, interval=0.5, what=f"an answer to {manifest.name}")
        after = [o for o in _stored(cluster, kind, namespace) if o["metadata"]["name"] not in before]
        assert result.returncode != 0, f"{manifest.name} was accepted"
        for expect in case.expects:
            assert expect in result.stderr, f"{manifest.name}: expected {expect!r} in:\n{result.stderr}"
        if case.setup:
            # The refused update left the stored object exactly as created.
            assert [(o["metadata"]["generation"], o["spec"]) for o in after] == [
                (o["metadata"]["generation"], o["spec"]) for o in created
            ]
        else:
            assert after == [], f"{manifest.name}: stored although refused"
    finally:
        if kind == "NamespaceQuota":  # cluster-scoped: never leave one behind, even when a check failed
            cluster.kubectl("delete", "namespacequota", name, "--ignore-not-found", "--wait=false", check=False)


def test_corpus_covers_every_kind_and_update_steps() -> None:
    """The corpus stays broad: at least 120 manifests, every kind, and immutable fields exercised by update steps."""
    cases = {path.name: _invalid_case(path) for path in INVALID}
    assert len(cases) >= 120
    kinds = {yaml.safe_load(case.refused)["kind"] for case in cases.values()}
    assert kinds == {info.kind for info in KINDS}
    assert sum(1 for case in cases.values() if case.setup) >= 3


def test_pull_request_and_repository_are_immutable(cluster: Cluster, namespace: str) -> None:
    preview = _sample("previewenvironment-minimal.yaml")
    _apply(cluster, namespace, preview)
    name = preview["metadata"]["name"]

    for field, value in (("pullRequest", 43), ("repository", "github.com/acme/other")):
        patch = json.dumps({"spec": {"source": {field: value}}})
        result = cluster.kubectl(
            "patch", "previewenvironment", name, "-n", namespace, "--type=merge", "-p", patch, check=False
        )
        assert result.returncode != 0, f"changing spec.source.{field} was accepted"
        assert f"spec.source.{field}" in result.stderr, result.stderr
        assert "immutable" in result.stderr, result.stderr

    # Re-applying with a changed (mutable) field works: CI does this on every push.
    preview["spec"]["source"]["commit"] = "4a5b6c7"
    preview["spec"]["ttl"] = "96h"
    _apply(cluster, namespace, preview)
    stored = _get(cluster, "previewenvironment", name, namespace)
    assert stored["spec"]["source"] == {"repository": "github.com/acme/blog", "pullRequest": 42, "commit": "4a5b6c7"}
    assert stored["metadata"]["generation"] == 2


def test_model_name_is_immutable(cluster: Cluster, namespace: str) -> None:
    deployment = _sample("modeldeployment-minimal.yaml")
    _apply(cluster, namespace, deployment)
    deployment["spec"]["model"]["name"] = "another-model"
    result = _apply(cluster, namespace, deployment, check=False)
    assert result.returncode != 0
    assert "spec.model.name" in result.stderr and "immutable" in result.stderr, result.stderr


def test_server_side_defaults(cluster: Cluster, namespace: str) -> None:
    _apply(cluster, namespace, _sample("modeldeployment-minimal.yaml"))
    _apply(cluster, namespace, _sample("previewenvironment-minimal.yaml"))
    md = _get(cluster, "modeldeployment", "iris", namespace)["spec"]
    assert "runtime" not in md, "an omitted runtime stays omitted (Plinth's server): nothing to default"
    assert "replicas" not in md, "replicas must not be defaulted: it would conflict with autoscaling"
    pe = _get(cluster, "previewenvironment", "blog", namespace)["spec"]
    assert pe["ttl"] == "72h"
    assert pe["services"][0] | {"port": 8080, "replicas": 1, "expose": True} == pe["services"][0]


def test_autoscaling_without_replicas_is_accepted(cluster: Cluster, namespace: str) -> None:
    deployment = _sample("modeldeployment-minimal.yaml")
    deployment["spec"]["autoscaling"] = {"maxReplicas": 3}
    result = _apply(cluster, namespace, deployment, check=False)
    assert result.returncode == 0, result.stderr
    stored = _get(cluster, "modeldeployment", "iris", namespace)["spec"]
    assert stored["autoscaling"] == {"minReplicas": 1, "maxReplicas": 3}


def test_status_is_a_subresource(cluster: Cluster, namespace: str) -> None:
    deployment = _sample("modeldeployment-minimal.yaml")
    deployment["status"] = {"activeVersion": "9.9.9"}
    _apply(cluster, namespace, deployment)
    stored = _get(cluster, "modeldeployment", "iris", namespace)
    # The operator may have written a status meanwhile (through /status); the one in the apply must be dropped.
    assert stored.get("status", {}).get("activeVersion") != "9.9.9", "status must be written through /status only"
    assert stored["metadata"]["generation"] == 1


def test_printer_columns_and_short_names(cluster: Cluster, namespace: str) -> None:
    _apply(cluster, namespace, _sample("modeldeployment-minimal.yaml"))
    header = cluster.kubectl("get", "md", "-n", namespace).stdout.splitlines()[0].split()
    assert header == ["NAME", "MODEL", "VERSION", "CANARY", "CANARY%", "AVAILABLE", "READY", "URL", "AGE"]
    wide = cluster.kubectl("get", "md", "-n", namespace, "-o", "wide").stdout.splitlines()[0].split()
    assert "STATUS" in wide
    listed = cluster.kubectl("get", "plinth", "-n", namespace, "-o", "name").stdout.split()
    assert "modeldeployment.plinth.dev/iris" in listed
    for short in ("pe", "nsq"):
        cluster.kubectl("get", short, *(["-n", namespace] if short == "pe" else []))


def test_explain_prints_field_descriptions(cluster: Cluster) -> None:
    description = ModelSource.model_fields["version"].description
    assert description is not None

    def explained() -> None:
        result = cluster.kubectl("explain", "modeldeployment.spec.model.version", check=False)
        assert result.returncode == 0, result.stderr
        assert " ".join(description.split()) in " ".join(result.stdout.split()), result.stdout

    _retry(explained)
    result = cluster.kubectl("explain", "previewenvironment.spec.source")
    assert "pullRequest" in result.stdout and "Immutable" in result.stdout
