"""Per kind: ordered steps that turn a parsed spec into desired children and a status."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from plinth.operator.conditions import Observation


@dataclass
class Outcome:
    """What one reconcile found: status fields (camelCase, besides conditions) and observed conditions."""

    status: dict[str, Any] = field(default_factory=dict)
    observations: list[Observation] = field(default_factory=list)
    # Check again after this many seconds even if nothing changes (e.g. waiting for quota or a Secret to appear);
    # the status is written first.
    requeue_after: float | None = None
