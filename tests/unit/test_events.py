"""Plinth's Events: what kubectl describe lists under an object, posted off the reconcile path."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from plinth.operator.events import CLUSTER_EVENTS_NAMESPACE, MAX_MESSAGE_LENGTH, EventPoster, event_manifest

MODEL = {
    "apiVersion": "plinth.dev/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "fraud", "namespace": "ml", "uid": "u-1"},
}
QUOTA = {"apiVersion": "plinth.dev/v1alpha1", "kind": "NamespaceQuota", "metadata": {"name": "team-a", "uid": "u-2"}}
NOW = datetime(2026, 12, 4, 12, 0, 1, 500_000, tzinfo=UTC)


def test_an_event_names_its_object_and_its_reporter() -> None:
    event = event_manifest(MODEL, "Warning", "CrashLoopBackOff", "restarting", now=NOW, instance="plinth-0")
    assert event["metadata"] == {"generateName": "fraud.", "namespace": "ml"}
    assert event["involvedObject"] == {
        "apiVersion": "plinth.dev/v1alpha1",
        "kind": "ModelDeployment",
        "name": "fraud",
        "namespace": "ml",
        "uid": "u-1",
    }
    assert (event["type"], event["reason"], event["message"]) == ("Warning", "CrashLoopBackOff", "restarting")
    assert event["source"] == {"component": "plinth"} and event["reportingInstance"] == "plinth-0"
    assert event["firstTimestamp"] == event["lastTimestamp"] == "2026-12-04T12:00:01Z"


def test_a_cluster_scoped_objects_events_live_in_default_and_long_messages_are_cut() -> None:
    event = event_manifest(QUOTA, "Normal", "Ready", "x" * 5000, now=NOW, instance="i")
    assert event["metadata"]["namespace"] == CLUSTER_EVENTS_NAMESPACE
    assert "namespace" not in event["involvedObject"]
    assert len(event["message"]) == MAX_MESSAGE_LENGTH and event["message"].endswith("...")


class Recording:
    def __init__(self, fail: set[str]) -> None:
        self.fail, self.created = fail, []  # type: ignore[var-annotated]
        self.entered, self.release = threading.Event(), threading.Event()

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self.entered.set()
        self.release.wait(30)
        if manifest["reason"] in self.fail:
            raise RuntimeError("refused")
        self.created.append(manifest["reason"])
        return manifest


def test_events_are_posted_in_order_without_waiting_and_a_failure_stops_none() -> None:
    kube = Recording(fail={"B"})
    poster = EventPoster(kube, instance="i", capacity=3).start()
    poster.emit(MODEL, "Normal", "A", "m")
    assert kube.entered.wait(30)  # the poster is posting A and cannot finish yet
    for reason in "BCDE":  # B, C, D wait in the queue; E finds it full
        poster.emit(MODEL, "Normal", reason, "m")
    assert poster.dropped == 1, "emit returned at once, and dropped what did not fit"
    kube.release.set()
    assert poster.drain(30)
    assert kube.created == ["A", "C", "D"], "in order; B's failure stopped none of the others"
