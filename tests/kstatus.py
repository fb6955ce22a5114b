"""kstatus conformance for Plinth objects: the rules Flux (through kstatus), Argo CD and ``kubectl wait`` rely on.

``violations(obj)`` checks one object and returns what is wrong with it (empty when it conforms);
``cluster_violations(cluster)`` lists every Plinth object in the cluster (``kubectl get plinth -A``, the category)
and checks them all; ``assert_cluster_conforms(cluster)`` fails with every violation at once. ``compute(obj)``
is kstatus's own verdict for a custom resource (InProgress / Failed / Current / Terminating), used to show where
a Plinth status could mislead a kstatus consumer.

The rules hold at every instant, not only once an object has settled, so they can be checked after any test step:
an object whose spec just changed (``observedGeneration < generation``) is stale, not wrong; kstatus and the
Argo CD health scripts read it as in progress.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from plinth.operator.conditions import NEGATIVE_POLARITY, READY, RECONCILING, STALLED

from tests.conftest import wait_for

# metav1.Condition's own validation of reason; Plinth's reasons are CamelCase constants.
REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
STATUSES = frozenset({"True", "False", "Unknown"})


class SupportsGet(Protocol):
    """Anything that runs ``kubectl get ... -o json`` and returns the parsed output (``tests.conftest.Cluster``)."""

    def get(self, *args: str) -> Any: ...


def _ref(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('kind', '?')} {where}{meta.get('name', '?')}"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def violations(obj: Mapping[str, Any], *, kstatus_truthful: bool = True) -> list[str]:
    """Every way *obj* breaks the kstatus contract Plinth promises (docs/operator.md#conditions); [] if none.

    With *kstatus_truthful* (the default), a Ready that is not True must come with Reconciling or Stalled: kstatus
    reads only those two (and the generation), so without them Flux would report a not-Ready object Current.
    """
    status = obj.get("status") or {}
    if not status:
        return []  # not reconciled yet: kstatus consumers wait (the Argo CD scripts say Progressing)
    ref = _ref(obj)
    found: list[str] = []
    generation = _int((obj.get("metadata") or {}).get("generation"))
    observed = _int(status.get("observedGeneration"))
    if observed is None:
        found.append(f"{ref}: status without observedGeneration (kstatus cannot tell whether it is stale)")
    elif generation is not None and observed > generation:
        found.append(f"{ref}: status.observedGeneration {observed} > metadata.generation {generation}")
    conditions: Sequence[Mapping[str, Any]] = status.get("conditions") or []
    by_type: dict[str, Mapping[str, Any]] = {}
    for cond in conditions:
        kind = cond.get("type", "?")
        if kind in by_type:
            found.append(f"{ref}: condition {kind} appears twice")
        by_type[kind] = cond
        if cond.get("status") not in STATUSES:
            found.append(f"{ref}: condition {kind} has status {cond.get('status')!r}, not True/False/Unknown")
        if not REASON.match(str(cond.get("reason") or "")):
            found.append(f"{ref}: condition {kind} has reason {cond.get('reason')!r}, not a CamelCase constant")
        cond_generation = _int(cond.get("observedGeneration"))
        if cond_generation is not None and generation is not None and cond_generation > generation:
            found.append(f"{ref}: condition {kind} observedGeneration {cond_generation} > generation {generation}")

    def holds(kind: str) -> bool:
        return (by_type.get(kind) or {}).get("status") == "True"

    ready = by_type.get(READY)
    if ready is None:
        found.append(f"{ref}: status without a Ready condition")
    if holds(RECONCILING) and holds(STALLED):
        found.append(f"{ref}: Reconciling and Stalled are both True")
    if ready is not None and ready.get("status") == "True":
        blockers = sorted(k for k in (RECONCILING, STALLED, *NEGATIVE_POLARITY) if holds(k))
        if blockers:
            found.append(
                f"{ref}: Ready is True while {', '.join(blockers)} {'is' if len(blockers) == 1 else 'are'} True"
            )
        ready_generation = _int(ready.get("observedGeneration"))
        if ready_generation is not None and observed is not None and ready_generation != observed:
            # A Ready=True carried over from an older generation would read as current to anyone who checks
            # status.observedGeneration == metadata.generation (kstatus, Argo CD, kubectl wait users).
            found.append(
                f"{ref}: Ready is True for generation {ready_generation} but the status describes generation {observed}"
            )
    if kstatus_truthful and ready is not None and ready.get("status") != "True" and compute(obj) == "Current":
        # kstatus reads only Reconciling/Stalled (and the generation): without one of them it reports Current, so a
        # Flux `wait: true` would pass while the object is not Ready.
        found.append(
            f"{ref}: Ready is {ready.get('status')} ({ready.get('reason')}) but neither Reconciling nor Stalled is "
            "True, so kstatus reports it Current"
        )
    return found


def compute(obj: Mapping[str, Any]) -> str:
    """kstatus's status for a custom resource (cli-utils pkg/kstatus/status, generic rules): what Flux's health
    check sees. Note it never reads Ready."""
    meta = obj.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return "Terminating"
    status = obj.get("status") or {}
    generation, observed = _int(meta.get("generation")), _int(status.get("observedGeneration"))
    if generation is not None and observed is not None and observed != generation:
        return "InProgress"
    for cond in status.get("conditions") or []:
        if cond.get("type") == RECONCILING and cond.get("status") == "True":
            return "InProgress"
        if cond.get("type") == STALLED and cond.get("status") == "True":
            return "Failed"
    return "Current"


def plinth_objects(cluster: SupportsGet) -> list[dict[str, Any]]:
    """Every object of every Plinth kind in every namespace, through the `plinth` category.

    Right after a test re-applies the CRDs (the chart tests do), the API server republishes discovery and kubectl can
    briefly not resolve the category; that is asked again for up to 15 s rather than reported as a violation."""

    def attempt() -> tuple[list[dict[str, Any]]] | None:
        try:
            return (cluster.get("plinth", "--all-namespaces")["items"],)  # a tuple: an empty list is an answer too
        except AssertionError as err:
            if "doesn't have a resource type" not in str(err):
                raise
            return None

    found: tuple[list[dict[str, Any]]] = wait_for(attempt, timeout=15, interval=0.5, what="the plinth category")
    return found[0]


def cluster_violations(cluster: SupportsGet, *, kstatus_truthful: bool = True) -> list[str]:
    """The kstatus violations of every Plinth object in *cluster*."""
    return [v for obj in plinth_objects(cluster) for v in violations(obj, kstatus_truthful=kstatus_truthful)]


def assert_cluster_conforms(cluster: SupportsGet, *, kstatus_truthful: bool = True) -> None:
    """Fail with every violation at once: the check to run after each cluster test."""
    found = cluster_violations(cluster, kstatus_truthful=kstatus_truthful)
    assert not found, "kstatus violations:\n" + "\n".join(f"  - {v}" for v in found)
