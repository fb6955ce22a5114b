"""Several replicas, one working: kopf's peering, joined before kopf starts and followed through its object.

kopf pauses a replica's watches and handlers while another replica works, but has no public signal of it. What it
decides from is public: the ClusterKopfPeering object, whose ``status`` holds each replica's keep-alive record
(priority, lifetime, last seen), and kopf's documented rule over it. ``PeeringActivity`` watches that object and
applies the same rule, so Plinth's own loop (schedule.py) stands by exactly when kopf does, whatever kopf logs.
"""

from __future__ import annotations

import enum
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from plinth.adapters.kubernetes import watch_cluster_object
from plinth.operator.settings import MANAGED_BY, Settings

log = logging.getLogger("plinth")

# kopf peers through every served API of these (zalando.org is kopf's legacy group): the object must exist in each.
PEERING_APIS = (("kopf.dev", "v1"), ("zalando.org", "v1"))
PEERING_PLURAL = "clusterkopfpeerings"
# kopf refreshes a keep-alive 5-10 s before it expires (at least every second): shorter lifetimes leave no margin.
MIN_PEERING_LIFETIME_SECONDS = 5
# After a failed watch of the peering object, wait this long before watching it again.
WATCH_RETRY_SECONDS = 1.0


class PeeringError(Exception):
    """Peering was asked for (--no-standalone) but cannot work. Start-up fails instead of kopf pausing silently."""


def peering_identity() -> str:
    """This replica's key in the peering object: the pod name when the chart sets POD_ID (kopf's own convention)."""
    return os.environ.get("POD_ID") or f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"


def peering_priority(settings: Settings) -> int:
    """kopf pauses a replica while a live peer has a higher *or equal* priority, so priorities must differ. Derived
    from the start time (microseconds, negated), the oldest live replica is the active one: a replica that starts
    (rolling update, scale-up, restart) never pre-empts a working one, and any priority >= 0 (PLINTH_PEERING_PRIORITY,
    e.g. a debugging operator on a laptop) pauses all deployed replicas."""
    if settings.peering_priority is not None:
        return settings.peering_priority
    return -(time.time_ns() // 1000)


def _serves_cluster_peerings(api: Any, group: str, version: str) -> bool:
    try:
        resources = api.get_api_resources(group, version)
    except ApiException as err:
        if err.status == 404:
            return False
        raise
    return any(r.name == PEERING_PLURAL for r in resources.resources or [])


def join_peering(api_client: Any, settings: Settings, *, identity: str, priority: int) -> list[tuple[str, str]]:
    """Before kopf starts: check the ClusterKopfPeering CRD, create the peering object if absent (kopf never creates
    it, and would stay paused forever without it), and write this replica's keep-alive record, so peers starting at
    the same moment see each other from their very first look. Returns the (group, version) APIs joined."""
    api = client.CustomObjectsApi(api_client)
    name = settings.peering_name
    try:
        served = [(g, v) for g, v in PEERING_APIS if _serves_cluster_peerings(api, g, v)]
        if not served:
            raise PeeringError(
                f"the ClusterKopfPeering CRD ({PEERING_PLURAL}.kopf.dev) is not installed: install it with the chart "
                "(peering.enabled=true) or `kubectl apply -f charts/plinth/files/peering/`, or run --standalone"
            )
        record = {
            "priority": priority,
            "lifetime": settings.peering_lifetime_seconds,
            "lastseen": datetime.now(UTC).isoformat(),
        }
        for group, version in served:
            body = {
                "apiVersion": f"{group}/{version}",
                "kind": "ClusterKopfPeering",
                "metadata": {"name": name, "labels": dict(MANAGED_BY)},
            }
            try:
                api.create_cluster_custom_object(group, version, PEERING_PLURAL, body)
                log.info(f"peering: created ClusterKopfPeering {name!r} ({group}/{version})")
            except ApiException as err:
                if err.status != 409:  # 409: it exists, the normal case
                    raise
            api.patch_cluster_custom_object(
                group,
                version,
                PEERING_PLURAL,
                name,
                {"status": {identity: record}},
                _content_type="application/merge-patch+json",
            )
    except ApiException as err:
        raise PeeringError(
            f"cannot join ClusterKopfPeering {name!r}: HTTP {err.status} {err.reason}"
            " (the operator needs get, list, watch, patch and create on clusterkopfpeerings.kopf.dev)"
        ) from err
    return served


def peers_in_favour_of(status: Mapping[str, Any], *, identity: str, priority: int, now: datetime) -> list[str]:
    """The live peers kopf pauses this replica in favour of: any other replica whose keep-alive has not expired
    (last seen + lifetime is in the future) with a priority higher than or equal to this one's (kopf pauses every
    replica of equal priorities). Records kopf cannot read either are ignored, as kopf ignores them."""
    found = []
    for peer, record in status.items():
        if peer == identity or not isinstance(record, Mapping):
            continue
        try:
            lastseen = datetime.fromisoformat(str(record["lastseen"]))
            deadline = lastseen + timedelta(seconds=int(record.get("lifetime", 60)))
            peer_priority = int(record.get("priority", 0))
        except (KeyError, TypeError, ValueError):
            continue
        if deadline.tzinfo is None:
            deadline = deadline.replace(tzinfo=UTC)
        if deadline > now and peer_priority >= priority:
            found.append(peer)
    return sorted(found)


class Peering(enum.Enum):
    WORKING = "working"
    STANDING_BY = "standing by"  # another replica works
    UNKNOWN = "unknown"  # the peering object has not been read since start-up or since its watch failed


class PeeringActivity:
    """Whether kopf lets this replica work, read from the peering object as kopf reads it. The schedule asks before
    queuing anything: standing by, kopf's watches stop, so the indexes no longer follow the cluster and must not be
    written from; unknown, nothing is queued and nothing is forgotten. A standalone operator always works."""

    def __init__(self, *, identity: str, priority: int, standalone: bool) -> None:
        self.identity, self.priority, self.standalone = identity, priority, standalone
        self._lock = threading.Lock()
        self._statuses: dict[str, Mapping[str, Any] | None] = {}  # by peering API, None until read
        self._reported = Peering.UNKNOWN  # how it starts: not worth a line

    def expect(self, apis: list[tuple[str, str]]) -> None:
        """The peering APIs joined: kopf pauses when any of them says so, so each must have been read."""
        with self._lock:
            self._statuses = {f"{g}/{v}": None for g, v in apis}

    def observe(self, api: str, status: Mapping[str, Any] | None) -> None:
        """The peering object's status as just read through *api*; None when it can no longer be followed."""
        with self._lock:
            self._statuses[api] = dict(status or {}) if status is not None else None

    def state(self, now: datetime | None = None) -> Peering:
        if self.standalone:
            return Peering.WORKING
        now = now or datetime.now(UTC)
        with self._lock:
            statuses = list(self._statuses.values())
        if not statuses or any(status is None for status in statuses):
            return self._report(Peering.UNKNOWN, [])
        favoured = sorted(
            {
                peer
                for status in statuses
                if status is not None
                for peer in peers_in_favour_of(status, identity=self.identity, priority=self.priority, now=now)
            }
        )
        return self._report(Peering.STANDING_BY if favoured else Peering.WORKING, favoured)

    def _report(self, state: Peering, favoured: list[str]) -> Peering:
        """Logs each change of state: the line that tells which replica works."""
        if state is not self._reported:
            self._reported = state
            detail = f" in favour of {', '.join(favoured)}" if favoured else ""
            log.info(f"peering: {state.value}{detail}")
        return state

    def follow(self, api_client: Any, settings: Settings) -> None:
        """Watch the peering object of every API expected, each in a daemon thread, for the life of the process."""
        for api in list(self._statuses):
            threading.Thread(
                target=self._watch,
                args=(api_client, settings, api),
                name=f"plinth peering {api}",
                daemon=True,
            ).start()

    def _watch(self, api_client: Any, settings: Settings, api: str) -> None:
        name, timeout = settings.peering_name, settings.watch_timeout_seconds
        while True:
            try:
                for obj in watch_cluster_object(api_client, api, PEERING_PLURAL, name, timeout_seconds=timeout):
                    self.observe(api, None if obj is None else obj.get("status") or {})
            except Exception as err:  # unreachable, refused, expired: unknown until read again
                self.observe(api, None)
                log.warning(f"peering: cannot watch ClusterKopfPeering {name!r} ({api}): {err}")
                time.sleep(WATCH_RETRY_SECONDS)


def peer_cluster_wide(settings: Any, **_: Any) -> None:
    """kopf.run() makes a namespaced operator peer per namespace (KopfPeering objects in each); Plinth always peers
    cluster-wide, as NamespaceQuota is cluster-scoped anyway: one object and one RBAC rule for every scope. Settings
    changed by a startup handler apply, as peering starts only after the startup handlers."""
    settings.peering.clusterwide = True
