"""Plinth's own indexes (index.py): what an entry keeps of a body, and following the watch by uid under a key that
can change."""

from __future__ import annotations

import copy
from typing import Any

from plinth.operator.builders import preview as builders
from plinth.operator.handlers import modeldeployment, namespacequota, previewenvironment
from plinth.operator.index import Index, Timing, slim


def _obj(uid: str, key: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"uid": uid, "name": uid, "managedFields": [{"manager": "kubectl"}]},
        "spec": {"key": key, **spec},
    }


def _index() -> Index:
    return Index(key=lambda obj: obj["spec"]["key"], timing=lambda obj: Timing(every=obj["spec"].get("every")))


def test_an_object_is_indexed_under_its_latest_key_only() -> None:
    index = _index()
    index.put(_obj("a", "ns-1"))
    index.put(_obj("b", "ns-1"))
    assert [e.uid for e in index.under("ns-1")] == ["a", "b"]
    index.put(_obj("a", "ns-2", every=15))  # its key changed with its spec
    assert [e.uid for e in index.under("ns-1")] == ["b"]
    assert [e.uid for e in index.under("ns-2")] == ["a"]
    assert sorted((e.uid, e.timing) for e in index) == [("a", Timing(every=15)), ("b", Timing())]
    latest = index.latest("a")
    assert latest is not None and latest["spec"] == {"key": "ns-2", "every": 15}
    assert len(index) == 2


def test_deleted_objects_and_their_keys_are_forgotten() -> None:
    index = _index()
    index.put(_obj("a", "ns-1"))
    index.drop("a")
    index.drop("never-seen")
    assert "ns-1" not in index
    assert index.under("ns-1") == []
    assert index.latest("a") is None
    assert list(index) == []
    index.put(_obj("b", "ns-2"))
    index.clear()
    assert "ns-2" not in index and len(index) == 0


def test_entries_are_slim_and_readers_get_snapshots_and_copies() -> None:
    index = _index()
    body = _obj("a", "ns-1")
    body["metadata"]["deletionTimestamp"] = "2026-11-30T00:00:00Z"
    index.put(body)
    body["spec"]["key"] = "changed by kopf"  # the event's body is not the index's
    under, entries, latest = index.under("ns-1"), list(index), index.latest("a")
    assert latest is not None and "managedFields" not in latest["metadata"]
    assert latest["spec"]["key"] == "ns-1" and under[0].deleting
    latest["spec"]["key"] = "changed by a reconcile"  # each reader decodes its own copy
    again = index.latest("a")
    assert again is not None and again["spec"]["key"] == "ns-1"
    index.drop("a")  # an event while a reader still holds what it got
    assert len(under) == 1 and len(entries) == 1


def test_each_kind_is_indexed_by_what_its_childrens_events_carry() -> None:
    preview = {
        "metadata": {"uid": "p", "name": "pr-7", "namespace": "team-a", "generation": 1},
        "spec": {"source": {"repository": "github.com/a/b", "pullRequest": 7, "commit": "a" * 40}, "team": "t"},
    }
    previewenvironment.INDEX.put(preview)
    model = {"metadata": {"uid": "m", "name": "fraud", "namespace": "ml", "generation": 1}, "spec": {}}
    modeldeployment.INDEX.put(model)
    quota = {"metadata": {"uid": "q", "name": "team-a", "generation": 1}, "spec": {}}
    namespacequota.INDEX.put(quota)
    try:
        assert [e.uid for e in previewenvironment.INDEX.under(builders.namespace_name(preview))] == ["p"]
        assert [e.uid for e in modeldeployment.INDEX.under("ml/fraud")] == ["m"]
        assert [e.uid for e in namespacequota.INDEX.under("team-a")] == ["q"]
    finally:
        previewenvironment.INDEX.drop("p")
        modeldeployment.INDEX.drop("m")
        namespacequota.INDEX.drop("q")


def test_slim_drops_managed_fields_and_spec_copies_and_leaves_the_body_alone() -> None:
    body = {
        "apiVersion": "plinth.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {
            "name": "m",
            "uid": "u",
            "generation": 3,
            "managedFields": [{"manager": "kubectl"}],
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{...}",
                "plinth.dev/last-handled-spec": "{...}",
                "team.example/owner": "ml",
            },
            "labels": {"app": "m"},
        },
        "spec": {"replicas": 2},
        "status": {"observedGeneration": 3},
    }
    before = copy.deepcopy(body)
    slimmed = slim(body)
    assert body == before
    assert slimmed["metadata"] == {
        "name": "m",
        "uid": "u",
        "generation": 3,
        "annotations": {"team.example/owner": "ml"},
        "labels": {"app": "m"},
    }
    assert slimmed["metadata"] is not body["metadata"]
    assert {k: v for k, v in slimmed.items() if k != "metadata"} == {k: v for k, v in body.items() if k != "metadata"}
    del body["metadata"]["annotations"]["team.example/owner"]
    assert "annotations" not in slim(body)["metadata"]
