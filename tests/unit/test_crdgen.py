"""The generated CRDs: up to date, structural, faithful to the models, and the samples/invalid manifests agree."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from plinth.operator.api import crdgen
from plinth.operator.api.conversion import internal
from plinth.operator.api.v1alpha1 import (
    KINDS,
    ApiModel,
    KindInfo,
    StatusBase,
    kind_info,
)
from pydantic import Field, ValidationError

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
REFERENCE = ROOT / "docs" / "reference.md"
SAMPLES = sorted((CRDS / "samples").glob("*.yaml"))
INVALID = sorted((ROOT / "tests" / "data" / "invalid").glob("*.yaml"))

# Keywords a structural schema node may carry (apiextensions.k8s.io/v1 JSONSchemaProps that we use).
FORBIDDEN_KEYS = {"$ref", "$defs", "title", "allOf", "oneOf", "not", "nullable", "const", "uniqueItems", "definitions"}


def _schema(info: KindInfo) -> dict[str, Any]:
    crd = yaml.safe_load((CRDS / crdgen.crd_filename(info)).read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def _walk(node: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _walk(child, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), Mapping):
        yield from _walk(node["additionalProperties"], f"{path}.*")
    if "items" in node:
        yield from _walk(node["items"], f"{path}[]")


def _find(schema: Mapping[str, Any], path: str) -> Mapping[str, Any]:
    node = schema
    for part in path.split("."):
        node = node["items"] if part == "[]" else node["properties"][part]
    return node


def _load(path: Path) -> dict[str, Any]:
    """The manifest (for an update step, two documents: the stored object, then the refused update — the last)."""
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    doc: dict[str, Any] = docs[-1]
    return doc


def _is_update_step(path: Path) -> bool:
    return len([d for d in yaml.safe_load_all(path.read_text()) if d]) > 1


def _expectation(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name}: first line must be '# expect: <substring>'"
    return first.removeprefix("# expect: ").strip()


# --------------------------------------------------------------------------------------------------------------------
# Generated files are current
# --------------------------------------------------------------------------------------------------------------------


def test_generated_files_are_up_to_date() -> None:
    stale = crdgen.stale_crds(CRDS, reference=REFERENCE)
    assert not stale, f"generated files are out of date: {', '.join(stale)}. Run `make crds` and commit the result."


def test_the_charts_copies_are_up_to_date() -> None:
    """The chart ships its own copy (Helm reads nothing outside its folder); the e2e chart test renders it, this one
    catches a stale copy without a cluster."""
    sync = ROOT / "hack" / "helm" / "sync-crds.sh"
    check = subprocess.run([sync, "--check"], check=False, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_kustomization_lists_every_crd() -> None:
    kustomization = _load(CRDS / "kustomization.yaml")
    assert kustomization["resources"] == sorted(crdgen.crd_filename(info) for info in KINDS)
    for name in kustomization["resources"]:
        assert (CRDS / name).is_file()


def test_rendering_is_deterministic() -> None:
    assert crdgen.render_crds() == crdgen.render_crds()
    assert crdgen.render_reference() == crdgen.render_reference()


def test_yaml_has_header_and_no_aliases() -> None:
    for name, text in crdgen.render_crds().items():
        assert text.startswith(crdgen.GENERATED_HEADER), name
        assert "&id" not in text and "*id" not in text, f"{name}: YAML anchors/aliases leaked into the output"


def test_write_and_stale_round_trip(tmp_path: Path) -> None:
    crds, reference = tmp_path / "crds", tmp_path / "docs" / "reference.md"
    assert set(crdgen.stale_crds(crds, reference=reference)) == {
        *(str(crds / name) for name in crdgen.render_crds()),
        str(reference),
    }
    written = crdgen.write_crds(crds, reference=reference)
    assert len(written) == len(crdgen.render_crds()) + 1
    assert crdgen.stale_crds(crds, reference=reference) == []
    assert crdgen.write_crds(crds, reference=reference) == []  # nothing rewritten when current

    target = crds / crdgen.crd_filename(KINDS[0])
    target.write_text(target.read_text() + "# edited by hand\n")
    obsolete = crds / "plinth.dev_obsoletes.yaml"
    obsolete.write_text(crdgen.GENERATED_HEADER + "kind: CustomResourceDefinition\n")
    handwritten = crds / "extra-notes.yaml"
    handwritten.write_text("kind: ConfigMap\n")
    assert sorted(crdgen.stale_crds(crds, reference=reference)) == sorted([str(target), str(obsolete)])
    crdgen.write_crds(crds)
    assert not obsolete.exists() and handwritten.exists()
    assert crdgen.stale_crds(crds, reference=reference) == []


def test_main_check_reports_stale_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--crds-dir", str(tmp_path / "crds"), "--reference", str(tmp_path / "reference.md")]
    assert crdgen.main([*args, "--check"]) == 1
    assert crdgen.REGENERATE_COMMAND in capsys.readouterr().err
    assert crdgen.main(args) == 0
    assert crdgen.main([*args, "--check"]) == 0


# --------------------------------------------------------------------------------------------------------------------
# Structural schema
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("info", KINDS, ids=lambda i: i.kind)
def test_schema_is_structural(info: KindInfo) -> None:
    schema = _schema(info)
    for path, node in _walk(schema):
        where = f"{info.kind}{path or ' (root)'}"
        assert not FORBIDDEN_KEYS & node.keys(), f"{where}: {FORBIDDEN_KEYS & node.keys()}"
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], where
            assert "type" not in node, where
        else:
            assert "anyOf" not in node, f"{where}: anyOf is only for int-or-string"
            assert node.get("type") in {"object", "array", "string", "integer", "number", "boolean"}, where
        assert not ("properties" in node and "additionalProperties" in node), where
        if node.get("type") == "array":
            assert "maxItems" in node, f"{where}: lists need maxItems (CEL cost)"
        if node.get("type") == "object" and "additionalProperties" in node:
            assert "maxProperties" in node, f"{where}: maps need maxProperties (CEL cost)"
        if (
            path.startswith((".spec", ".status"))
            and node.get("type") == "string"
            and not {"enum", "format"} & node.keys()
        ):
            assert "maxLength" in node, f"{where}: strings need maxLength (CEL cost)"
        for name, child in node.get("properties", {}).items():
            if path == "" and name == "metadata":
                assert child == {"type": "object"}, "the API server allows nothing else on metadata"
                continue
            assert child.get("description", "").strip(), f"{where}.{name}: missing description"
        if path.startswith(".status"):
            assert "default" not in node, f"{where}: status fields have no server-side defaults"


@pytest.mark.parametrize("info", KINDS, ids=lambda i: i.kind)
def test_lists_of_named_things_merge_by_key(info: KindInfo) -> None:
    for path, node in _walk(_schema(info)):
        items = node.get("items", {})
        if node.get("type") == "array" and "name" in items.get("required", []):
            assert node.get("x-kubernetes-list-type") == "map", f"{info.kind}{path}"
            assert node.get("x-kubernetes-list-map-keys") == ["name"], f"{info.kind}{path}"
        if node.get("type") == "array" and items.get("type") == "string":
            assert node.get("x-kubernetes-list-type", "atomic") in {"atomic", "set"}, f"{info.kind}{path}"


def test_defaults_are_only_user_visible_scalars() -> None:
    for info in KINDS:
        for path, node in _walk(_schema(info)):
            if "default" in node:
                assert isinstance(node["default"], (str, int, bool)), f"{info.kind}{path}"


def test_replicas_has_no_default_because_autoscaling_excludes_it() -> None:
    # A server-side default for replicas would make every object with autoscaling fail the XOR rule.
    md = _schema(kind_info("ModelDeployment"))
    assert "default" not in _find(md, "spec.replicas")
    pe = _schema(kind_info("PreviewEnvironment"))
    assert "default" not in _find(pe, "spec.models.[].spec.replicas")


def test_unsupported_schema_is_an_error() -> None:
    class Union(ApiModel):
        """A field that can be two types cannot be structural."""

        value: int | list[str] = Field(description="Either an integer or strings.")

    class Info(StatusBase):
        """Status."""

    info = KindInfo("Bad", "bads", "bad", (), "Namespaced", Union, Info, (), "Bad.")
    with pytest.raises(crdgen.SchemaError, match="union"):
        crdgen.build_crd(info)


def test_undocumented_fields_are_refused() -> None:
    with pytest.raises(TypeError, match="without a description"):

        class Undocumented(ApiModel):
            """Has a field without description."""

            value: int = 0


# --------------------------------------------------------------------------------------------------------------------
# Golden details
# --------------------------------------------------------------------------------------------------------------------


EXPECTED_NAMES = {
    "ModelDeployment": ("modeldeployments", ["md"], "Namespaced"),
    "PreviewEnvironment": ("previewenvironments", ["pe"], "Namespaced"),
    "NamespaceQuota": ("namespacequotas", ["nsq"], "Cluster"),
}
EXPECTED_COLUMNS = {
    "ModelDeployment": ["Model", "Version", "Canary", "Canary%", "Available", "Ready", "Status", "URL", "Age"],
    "PreviewEnvironment": ["PR", "Team", "URL", "Ready", "Expires", "Status", "Age"],
    "NamespaceQuota": ["Namespaces", "Used/Total", "Ready", "Status", "Age"],
}
READY_PATH = '.status.conditions[?(@.type=="Ready")].status'


@pytest.mark.parametrize("info", KINDS, ids=lambda i: i.kind)
def test_crd_golden_details(info: KindInfo) -> None:
    crd = _load(CRDS / crdgen.crd_filename(info))
    plural, short_names, scope = EXPECTED_NAMES[info.kind]
    assert crd["metadata"]["name"] == f"{plural}.plinth.dev"
    assert crd["spec"]["group"] == "plinth.dev"
    assert crd["spec"]["scope"] == scope
    names = crd["spec"]["names"]
    assert names["plural"] == plural
    assert names["shortNames"] == short_names
    assert names["categories"] == ["plinth"]
    assert names["listKind"] == f"{info.kind}List"
    beta, version = crd["spec"]["versions"]  # newest first
    assert (beta["name"], beta["served"], beta["storage"]) == ("v1beta1", True, True)
    assert "deprecated" not in beta
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, False)
    assert version["deprecated"] is True
    assert version["deprecationWarning"] == (
        f"plinth.dev/v1alpha1 {info.kind} is deprecated; use plinth.dev/v1beta1 (`plinth convert` rewrites manifests)"
    )
    assert beta["additionalPrinterColumns"] == version["additionalPrinterColumns"]
    assert (
        beta["schema"]["openAPIV3Schema"]["properties"]["status"]
        == version["schema"]["openAPIV3Schema"]["properties"]["status"]
    )
    assert crd["spec"]["conversion"] == {
        "strategy": "Webhook",
        "webhook": {"conversionReviewVersions": ["v1"], "clientConfig": {"url": "https://127.0.0.1:9443/convert"}},
    }
    assert version["subresources"] == {"status": {}}
    columns = version["additionalPrinterColumns"]
    assert [c["name"] for c in columns] == EXPECTED_COLUMNS[info.kind]
    by_name = {c["name"]: c for c in columns}
    assert by_name["Ready"]["jsonPath"] == READY_PATH
    assert by_name["Age"] == {
        "name": "Age",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
        "description": "Time since the object was created.",
    }
    assert by_name["Status"]["priority"] == 1
    schema = version["schema"]["openAPIV3Schema"]
    assert schema["required"] == ["spec"]
    status = schema["properties"]["status"]["properties"]
    assert status["observedGeneration"]["type"] == "integer"
    conditions = status["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert conditions["items"]["required"] == ["type", "status", "lastTransitionTime", "reason"]
    assert conditions["items"]["properties"]["status"]["enum"] == ["True", "False", "Unknown"]


def _transition_rules(node: Mapping[str, Any]) -> list[str]:
    return [r["rule"] for r in node.get("x-kubernetes-validations", []) if "oldSelf" in r["rule"]]


def test_immutable_fields() -> None:
    pe = _schema(kind_info("PreviewEnvironment"))
    assert _transition_rules(_find(pe, "spec.source.repository")) == ["self == oldSelf"]
    assert _transition_rules(_find(pe, "spec.source.pullRequest")) == ["self == oldSelf"]
    assert _find(pe, "spec.source")["required"] == ["repository", "pullRequest"]
    assert "source" in _find(pe, "spec")["required"]
    md = _schema(kind_info("ModelDeployment"))
    assert _transition_rules(_find(md, "spec.model.name")) == ["self == oldSelf"]
    # Nothing else is immutable by accident.
    count = sum(len(_transition_rules(n)) for info in KINDS for _, n in _walk(_schema(info)))
    assert count == 4  # repository, pullRequest, model.name, and model.name inside PreviewEnvironment models


def test_quantities_match_resourcequota_schema_without_negatives() -> None:
    """ResourceQuota's own quantity schema, less the minus sign: an amount of a resource is never negative."""
    nsq = _schema(kind_info("NamespaceQuota"))
    quantity = _find(nsq, "spec.perNamespace.hard")["additionalProperties"]
    assert quantity["x-kubernetes-int-or-string"] is True
    assert quantity["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert quantity["minimum"] == 0
    assert quantity["pattern"] == (
        r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
    )


def test_cel_rules_use_the_quantity_library() -> None:
    nsq = _schema(kind_info("NamespaceQuota"))
    rules = [r["rule"] for r in _find(nsq, "spec")["x-kubernetes-validations"]]
    assert any("quantity(" in r and "compareTo" in r for r in rules)
    for info in KINDS:
        for path, node in _walk(_schema(info)):
            for rule in node.get("x-kubernetes-validations", []):
                assert rule["message"].strip(), f"{info.kind}{path}: CEL rule without a message"
                assert set(rule) <= {"rule", "message", "fieldPath", "reason"}, f"{info.kind}{path}"


def test_reference_documents_every_field() -> None:
    reference = REFERENCE.read_text()
    for info in KINDS:
        assert f"## {info.kind}" in reference
        for path, _ in _walk(_schema(info)):
            if path.startswith((".spec", ".status")) and not path.endswith(("[]", ".*")):
                documented = path.removeprefix(".").replace("[].", "[].")
                assert f"`{documented}`" in reference, f"{info.kind}: {documented} missing from docs/reference.md"


# --------------------------------------------------------------------------------------------------------------------
# Samples and invalid manifests
# --------------------------------------------------------------------------------------------------------------------


def test_samples_cover_every_kind_twice() -> None:
    kinds = [_load(p)["kind"] for p in SAMPLES]
    for info in KINDS:
        assert kinds.count(info.kind) >= 2, f"crds/samples needs a minimal and a full {info.kind}"


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sample_parses_into_its_model(path: Path) -> None:
    doc = _load(path)
    assert doc["apiVersion"] == "plinth.dev/v1beta1", "samples show the newest version"
    info = kind_info(doc["kind"])
    assert "namespace" not in doc["metadata"], "samples are applied with -n; they must not pin a namespace"
    assert "status" not in doc
    spec = info.spec_model.model_validate(internal(doc)["spec"])  # the model the operator works on
    assert spec.to_dict()  # serialises back


def test_invalid_manifests_cover_the_contract() -> None:
    assert len(INVALID) >= 10
    expectations = {p.name: _expectation(p) for p in INVALID}
    assert all(expectations.values())
    kinds = {_load(p)["kind"] for p in INVALID}
    assert kinds == {info.kind for info in KINDS}


@pytest.mark.parametrize("path", [p for p in INVALID if _is_update_step(p)], ids=lambda p: p.name)
def test_each_update_step_is_valid_on_its_own(path: Path) -> None:
    """Only the change from the first document to the second is refused (an immutable field): each document alone
    is valid, or the step would be refused for another reason."""
    for doc in yaml.safe_load_all(path.read_text()):
        kind_info(doc["kind"]).spec_model.model_validate(doc["spec"])


# Update steps are refused by transition rules (oldSelf), which only the API server can judge.
@pytest.mark.parametrize("path", [p for p in INVALID if not _is_update_step(p)], ids=lambda p: p.name)
def test_invalid_manifest_is_rejected_by_the_model(path: Path) -> None:
    """The pydantic models mirror the schema: whatever the API server rejects in spec, the operator rejects too."""
    doc = _load(path)
    model = kind_info(doc["kind"]).spec_model
    if _expectation(path).startswith("metadata."):
        # Rules on metadata.name are checked by the API server only (the spec models never see metadata), so the
        # manifest must be invalid because of its name alone.
        model.model_validate(doc["spec"])
        return
    with pytest.raises(ValidationError):
        model.model_validate(doc["spec"])
