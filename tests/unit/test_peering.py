"""Peering: Plinth reads kopf's peering object with kopf's rule, and agrees with kopf's own code about it."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kopf._cogs.aiokits.aiotoggles import Toggle
from kopf._core.engines import peering as kopf_peering
from plinth.operator.peering import Peering, PeeringActivity, peers_in_favour_of

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
ME, OWN_PRIORITY = "plinth-0", -100


def record(priority: int, *, seen_ago: float, lifetime: int = 10) -> dict[str, Any]:
    return {"priority": priority, "lifetime": lifetime, "lastseen": (NOW - timedelta(seconds=seen_ago)).isoformat()}


def test_live_peers_of_higher_or_equal_priority_are_favoured() -> None:
    status = {
        ME: record(OWN_PRIORITY, seen_ago=0),  # this replica itself never counts
        "older": record(OWN_PRIORITY + 1, seen_ago=1),
        "twin": record(OWN_PRIORITY, seen_ago=9),  # kopf pauses every replica of equal priorities
        "younger": record(OWN_PRIORITY - 1, seen_ago=0),
        "crashed": record(0, seen_ago=11),  # its keep-alive expired
        "laptop": record(0, seen_ago=50, lifetime=60),
        "garbled": {"priority": "high", "lastseen": "yesterday"},
        "withdrawn": None,
    }
    found = peers_in_favour_of(status, identity=ME, priority=OWN_PRIORITY, now=NOW)
    assert found == ["laptop", "older", "twin"]
    assert peers_in_favour_of({"younger": status["younger"]}, identity=ME, priority=OWN_PRIORITY, now=NOW) == []


def test_a_keep_alive_without_a_time_zone_is_utc() -> None:
    naive = {"older": {"priority": 0, "lifetime": 10, "lastseen": NOW.replace(tzinfo=None).isoformat()}}
    assert peers_in_favour_of(naive, identity=ME, priority=OWN_PRIORITY, now=NOW) == ["older"]


def _kopf_pauses(status: dict[str, Any], *, paused_before: bool) -> bool:
    """kopf's own decision over one event of the peering object (the code that turns its operator's pause on)."""
    settings = kopf.OperatorSettings()
    settings.peering.name, settings.peering.priority = "plinth", OWN_PRIORITY
    conflicts = Toggle(paused_before)
    woken = asyncio.Event()
    woken.set()  # kopf then re-reads at once instead of sleeping until the next peer expires

    async def decide() -> bool:
        await kopf_peering.process_peering_event(
            raw_event={"type": "MODIFIED", "object": {"metadata": {"name": "plinth"}, "status": status}},  # type: ignore[typeddict-item]
            namespace=None,
            resource=None,  # type: ignore[arg-type]
            identity=kopf_peering.Identity(ME),
            settings=settings,
            autoclean=False,
            stream_pressure=woken,
            conflicts_found=conflicts,
        )
        return conflicts.is_on()

    return asyncio.run(decide())


peer_records = st.fixed_dictionaries(
    {
        "priority": st.integers(OWN_PRIORITY - 2, OWN_PRIORITY + 2) | st.sampled_from([0, 5]),
        "lifetime": st.integers(1, 60),
        # whole seconds off now, never within a second of it: kopf reads the clock itself
        "seen_ago": st.integers(-5, 90),
    }
).filter(lambda r: abs(r["lifetime"] - r["seen_ago"]) >= 2)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "c", "d", ME]), peer_records, max_size=5), st.booleans())
def test_plinth_and_kopf_agree_on_every_peering_object(peers: dict[str, dict[str, int]], paused_before: bool) -> None:
    now = datetime.now(UTC)
    status = {
        peer: {
            "priority": r["priority"],
            "lifetime": r["lifetime"],
            "lastseen": (now - timedelta(seconds=r["seen_ago"])).isoformat(),
        }
        for peer, r in peers.items()
    }
    ours = bool(peers_in_favour_of(status, identity=ME, priority=OWN_PRIORITY, now=now))
    assert ours == _kopf_pauses(status, paused_before=paused_before)


def test_activity_is_unknown_until_every_peering_api_was_read(caplog: pytest.LogCaptureFixture) -> None:
    assert PeeringActivity(identity=ME, priority=OWN_PRIORITY, standalone=True).state() is Peering.WORKING
    activity = PeeringActivity(identity=ME, priority=OWN_PRIORITY, standalone=False)
    assert activity.state(NOW) is Peering.UNKNOWN
    activity.expect([("kopf.dev", "v1"), ("zalando.org", "v1")])
    activity.observe("kopf.dev/v1", {ME: record(OWN_PRIORITY, seen_ago=0)})
    assert activity.state(NOW) is Peering.UNKNOWN, "kopf pauses when any of its peering objects says so"
    caplog.set_level(logging.INFO, logger="plinth")
    activity.observe("zalando.org/v1", {})
    assert activity.state(NOW) is Peering.WORKING
    activity.observe("zalando.org/v1", {"laptop": record(0, seen_ago=0)})
    assert activity.state(NOW) is Peering.STANDING_BY
    # The debugging operator's keep-alive expires without another event: working again at its deadline.
    assert activity.state(NOW + timedelta(seconds=9)) is Peering.STANDING_BY
    assert activity.state(NOW + timedelta(seconds=10)) is Peering.WORKING
    activity.observe("kopf.dev/v1", None)  # its watch failed
    assert activity.state(NOW) is Peering.UNKNOWN
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("peering: ")]
    assert lines == [
        "peering: working",
        "peering: standing by in favour of laptop",
        "peering: working",
        "peering: unknown",
    ]
