"""Conditions in one place: the kstatus contract every Plinth kind follows.

- ``Ready`` is always present and derived here, never set by a reconciler.
- ``Reconciling=True`` while work is in progress; ``Stalled=True`` when a user must fix something; never both.
- ``Ready=False`` whenever either is True or a domain condition with negative polarity holds; such a condition
  alone also sets ``Stalled=True`` (kstatus readers such as Flux look at Reconciling/Stalled only).
- Failure conditions are present while the failure lasts and removed when it recovers (as Flux does).
Reasons are CamelCase constants; messages say what blocks and on which child.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from plinth.operator import reasons
from plinth.operator.api.v1alpha1 import Condition, format_time

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"

# Domain conditions whose True status means something is wrong (they make Ready False).
NEGATIVE_POLARITY = frozenset({"QuotaExceeded", "TotalExceeded", "Conflict"})


@dataclass(frozen=True)
class Observation:
    """One condition a reconcile observed this time; lastTransitionTime is filled in by ``summarize``."""

    type: str
    status: bool
    reason: str
    message: str = ""


def summarize(
    previous: Sequence[Condition], observed: Iterable[Observation], generation: int | None
) -> list[Condition]:
    """The full, ordered condition list: observed domain conditions, Reconciling/Stalled and a derived Ready.

    A condition keeps its ``lastTransitionTime`` while its status does not change, so re-running a reconcile with the
    same outcome produces an identical list (no status churn, no event noise).
    """
    observed = list(observed)
    by_type = {o.type: o for o in observed}
    stalled = by_type.get(STALLED)
    reconciling = by_type.get(RECONCILING)
    if stalled and stalled.status and reconciling and reconciling.status:
        raise ValueError("Reconciling and Stalled cannot both be True")
    blockers = [o for o in observed if o.status and (o.type in (STALLED, RECONCILING) or o.type in NEGATIVE_POLARITY)]
    if blockers and not any(o.status and o.type in (STALLED, RECONCILING) for o in observed):
        # kstatus (Flux, kubectl wait tooling) never reads Ready: a negative condition alone would look healthy.
        observed.append(Observation(STALLED, True, blockers[0].reason, blockers[0].message))
    if blockers:
        first = blockers[0]
        ready = Observation(READY, False, first.reason, first.message)
    else:
        healthy = [o for o in observed if o.type not in (STALLED, RECONCILING, READY) and not o.status]
        stated = by_type.get(READY, Observation(READY, True, ""))
        ready = (
            Observation(READY, False, healthy[0].reason, healthy[0].message)
            if healthy
            else Observation(
                READY, True, stated.reason or reasons.RECONCILED, stated.message or "all children are up to date"
            )
        )
    # Failure conditions disappear when they recover; Reconciling/Stalled are only shown while True.
    kept = [o for o in observed if o.type != READY and (o.status or o.type not in (STALLED, RECONCILING))]
    old = {c.type: c for c in previous}
    now = format_time()
    result = []
    for o in [ready, *kept]:
        status = "True" if o.status else "False"
        before = old.get(o.type)
        since = before.last_transition_time if before is not None and before.status == status else now
        result.append(
            Condition(
                type=o.type,
                status=status,
                reason=o.reason,
                message=o.message[:1024],
                last_transition_time=since,
                observed_generation=generation,
            )
        )
    return result


def is_ready(conditions: Sequence[Condition], generation: int | None) -> bool:
    ready = next((c for c in conditions if c.type == READY), None)
    return ready is not None and ready.status == "True" and ready.observed_generation == generation


def not_ready(body: Mapping[str, Any]) -> bool:
    """Not Ready for its current generation (read from a whole body, as the index and kopf hold it)."""
    status = body.get("status") or {}
    generation = body.get("metadata", {}).get("generation")
    ready: Mapping[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == READY), {})
    return not (ready.get("status") == "True" and ready.get("observedGeneration") == generation)
