"""The record of which kinds of children an owner has, so a reconcile lists only those kinds."""

from __future__ import annotations

from typing import Any

from plinth.operator.builders.common import CHILD_KINDS_ANNOTATION
from plinth.operator.reconcilers import listed_kinds, recording

CANDIDATES = [
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("networking.k8s.io/v1", "Ingress"),
    ("plinth.dev/v1alpha1", "ModelDeployment"),
]


def recorder(**annotations: str) -> dict[str, Any]:
    return {"metadata": {"name": "preview-x", "annotations": annotations}}


def kinds(listed: list[tuple[str, str]]) -> list[str]:
    return [kind for _, kind in listed]


def test_a_reconcile_reads_the_kinds_it_wants_and_those_recorded() -> None:
    wanted = {"Deployment", "Service"}
    recorded = recorder(**{CHILD_KINDS_ANNOTATION: "Deployment,ModelDeployment,Service"})
    # A ModelDeployment the spec no longer names is still read, so it can be pruned.
    assert kinds(listed_kinds(CANDIDATES, wanted, recorded)) == ["Deployment", "Service", "ModelDeployment"]
    # Nothing recorded beyond what is wanted: no Ingress or ModelDeployment LIST.
    assert kinds(listed_kinds(CANDIDATES, wanted, recorder(**{CHILD_KINDS_ANNOTATION: ""}))) == [
        "Deployment",
        "Service",
    ]
    assert kinds(listed_kinds(CANDIDATES, set(), recorder(**{CHILD_KINDS_ANNOTATION: ""}))) == []


def test_without_a_record_every_kind_is_read() -> None:
    """A recorder made by an older Plinth, one whose annotation was removed, or none at all (a Deployment deleted by
    hand may have left an autoscaler behind)."""
    assert kinds(listed_kinds(CANDIDATES, {"Deployment"}, recorder())) == kinds(CANDIDATES)
    assert kinds(listed_kinds(CANDIDATES, {"Deployment"}, None)) == kinds(CANDIDATES)


def test_the_record_is_always_written_sorted_and_keeps_other_annotations() -> None:
    manifest = {"kind": "Namespace", "metadata": {"name": "n", "annotations": {"plinth.dev/commit": "abc"}}}
    recorded = recording(manifest, {"Service", "Deployment"})
    assert recorded["metadata"]["annotations"] == {
        "plinth.dev/commit": "abc",
        CHILD_KINDS_ANNOTATION: "Deployment,Service",
    }
    # Empty too: no record at all means "read every kind".
    assert recording(manifest, set())["metadata"]["annotations"][CHILD_KINDS_ANNOTATION] == ""
    assert "plinth.dev/child-kinds" not in manifest["metadata"]["annotations"]  # the builder's output is not changed
