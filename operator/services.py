"""What every kopf handler gets as ``memo``: the operator's services, built once by ``runtime.run``.

kopf hands each object's handlers a shallow copy of its memo, so every handler and the schedule share these same
objects; typed here, so a reader and mypy know what a handler can use (kopf's own ``Memo`` is an untyped dict)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from plinth.operator.peering import Peering

if TYPE_CHECKING:  # the handlers' package registers them on import; these are only names for mypy
    from plinth.operator.handlers.common import ChildDigests
    from plinth.operator.reconcile import Reconciler
    from plinth.operator.schedule import Scheduler
    from plinth.operator.settings import Settings
    from plinth.operator.telemetry import Telemetry
    from plinth.operator.workqueue import WorkQueue


class Activity(Protocol):
    """Whether this replica may work now (``peering.PeeringActivity``; always, without peering)."""

    def state(self) -> Peering: ...


@dataclass
class Services:
    reconciler: Reconciler
    """The reconcile wrapper; holds the Kubernetes adapter as ``kube``."""
    queue: WorkQueue
    """Where every trigger queues a reconcile (``WorkQueue.run_soon``): at most one per object."""
    scheduler: Scheduler
    """Queues the reconciles no event asks for (resyncs, retries, canary checks, expiry)."""
    peering: Activity
    executor: Executor
    """Where queued reconciles run: kopf's executor for sync handlers, so one bound on threads."""
    children: ChildDigests
    """Which child events change something an owner reports."""
    healthy: threading.Event
    """Set while the operator serves (``/healthz``)."""
    kopf_connections: int
    """The size of kopf's HTTP connection pool (``handlers.lifecycle.kopf_connection_limit``)."""
    settings: Settings
    telemetry: Telemetry
    """What workloads get from the operator's configuration (OTLP endpoint, Prometheus for canary gates)."""
    background: list[asyncio.Task[None]] = field(default_factory=list)
    """Tasks started at start-up (the schedule's loop, the heap trim), cancelled at cleanup."""
