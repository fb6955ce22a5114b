"""Process start-up: logging, tracing, metrics/health server, kopf settings, then kopf's run loop."""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import kopf
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from plinth.adapters.kubernetes import DynamicKubernetes, load_config
from plinth.adapters.observability import PrometheusHTTP
from plinth.operator import heap, tracing, webhook
from plinth.operator import logging as plinth_logging
from plinth.operator import metrics as plinth_metrics
from plinth.operator.api import v1alpha1
from plinth.operator.events import EventPoster
from plinth.operator.kinds import POD_WARNINGS, POD_WARNINGS_SELECTOR, label_selectors
from plinth.operator.peering import (
    MIN_PEERING_LIFETIME_SECONDS,
    PeeringActivity,
    PeeringError,
    join_peering,
    peer_cluster_wide,
    peering_identity,
    peering_priority,
)
from plinth.operator.reconcile import Reconciler
from plinth.operator.reconcilers import modeldeployment, namespacequota, previewenvironment
from plinth.operator.schedule import Scheduler
from plinth.operator.services import Services
from plinth.operator.settings import DIFFBASE_ANNOTATION, FIELD_MANAGER, FINALIZER, Settings
from plinth.operator.telemetry import Telemetry
from plinth.operator.workqueue import WorkQueue

log = logging.getLogger("plinth")
# Deployments (and their Pods) of every Plinth kind carry this label (templates included).


# How long kopf keeps an object's worker after its last event (see kopf_settings).
KOPF_WORKER_IDLE_SECONDS = 0.5
# The first Kubernetes minor whose API server streams a watch's initial objects (sendInitialEvents) by default.
STREAMING_LISTS_SINCE = (1, 34)


def server_version(api_client: client.ApiClient) -> tuple[int, int] | None:
    """The API server's (major, minor), None when it cannot be read. Providers append to the minor ("34+")."""
    try:
        info = client.VersionApi(api_client).get_code()
        return int(info.major), int(re.match(r"\d+", info.minor).group())  # type: ignore[union-attr]
    except Exception as err:  # unreachable, refused, or an unexpected answer: decided without it
        log.warning(f"cannot read the API server's version ({type(err).__name__}); listing as before 1.34")
        return None


def streams_initial_lists(setting: str, version: tuple[int, int] | None) -> bool:
    """Whether kopf gets each watched kind's objects streamed on the watch (``Settings.initial_listing``)."""
    if setting == "auto":
        return version is not None and version >= STREAMING_LISTS_SINCE
    return setting == "stream"


def kopf_settings(settings: Settings, *, standalone: bool = True, stream_lists: bool = False) -> kopf.OperatorSettings:
    """kopf, tuned on purpose (each choice explained where it is made)."""
    s = kopf.OperatorSettings()
    # Peering (several replicas, one active): forced on or off, never kopf's auto-detection of a "default" object,
    # so a peering CRD installed in the cluster cannot change how a standalone operator behaves. When on, it is
    # mandatory: without the CRD kopf would pause every watch; run_operator() checks it up front and fails clearly.
    s.peering.standalone = standalone
    s.peering.mandatory = not standalone
    s.peering.clusterwide = True
    s.peering.name = settings.peering_name
    s.peering.lifetime = settings.peering_lifetime_seconds
    s.peering.stealth = True  # no debug line per keep-alive (one every few seconds)
    # Our own finalizer name, so `kubectl get -o yaml` tells users who holds an object.
    s.persistence.finalizer = FINALIZER
    # Progress and diff-base in annotations under our domain: status stays ours (kstatus conditions only).
    s.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="plinth.dev")
    prefix, key = DIFFBASE_ANNOTATION.split("/")
    s.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=prefix, key=key)
    # Bound concurrency through the executor's threads only; kopf's per-object workers are asyncio tasks. (While
    # Plinth used kopf indexes, kopf's worker_limit deadlocked a restart over more objects than slots: each worker
    # waited for every indexed object while holding its slot.)
    s.execution.max_workers = settings.max_workers
    # An object's worker outlives its last event by this long, holding that event's whole body. kopf's 5 s kept
    # thousands of bodies at a restart, when the events of every object arrive within seconds; a new event after it
    # merely starts a new worker (one asyncio task).
    s.queueing.idle_timeout = KOPF_WORKER_IDLE_SECONDS
    # A LIST response is decoded whole (every Deployment with its managedFields, at once): the operator's memory peak
    # at a restart. Streamed (sendInitialEvents), the API server sends the objects one at a time on the watch, from
    # its cache, and the peak at a restart is lower. Older API servers get the LISTs.
    s.watching.initial_streaming = stream_lists
    # Server-side watch timeouts: watches are re-opened regularly, so a silently dead connection cannot stall us.
    s.watching.server_timeout = settings.watch_timeout_seconds
    s.watching.client_timeout = settings.watch_timeout_seconds + 30
    s.watching.connect_timeout = 30
    # The initial LIST of each watched kind in one request, never in pages: kopf fetches the next page only as fast
    # as its busy event loop gets to it, and a continue token expires with the API server's compaction (5 minutes):
    # kopf's watcher fails on that 410 and takes the operator down, which a restart over thousands of objects hits.
    s.watching.chunk_size = None
    # Events are posted by Plinth on change/failure/recovery only; kopf's own per-handler chatter stays in logs.
    s.posting.level = logging.WARNING
    s.networking.error_backoffs = [1, 2, 5, 10, 30]
    # Children are watched to repair drift and follow rollouts. Handler label filters are applied client-side, so
    # without these server-side selectors the operator would stream every Deployment in the cluster. (Pods are not
    # watched at all, only the Warning Events about them: see kinds.POD_WARNINGS.)
    for (group, plural), selector in label_selectors(KINDS).items():
        s.watching.label_selectors[group, plural] = selector
    s.watching.field_selectors[POD_WARNINGS] = POD_WARNINGS_SELECTOR
    return s


# The kinds the operator serves, as their reconcilers describe them.
KINDS = (modeldeployment.KIND, previewenvironment.KIND, namespacequota.KIND)


def stop_on_early_sigterm() -> asyncio.Event:
    """kopf's stop flag, raised by a SIGTERM that arrives before kopf handles the signal itself.

    kopf installs its signal handler only after its startup handlers had their first turn, and /healthz already
    answers by then: a SIGTERM in between (a quick rollout, a test) would kill the process mid-start. kopf's handler
    replaces this one once installed. An asyncio.Event, because kopf waits for any other flag type in an executor
    thread that never returns and holds up the interpreter's exit.
    """
    stop = asyncio.Event()

    def handle(signum: int, frame: object) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # kopf's loop has not started: nothing waits on the event yet
            stop.set()
        else:  # a signal handler interrupts the loop between bytecodes: hand the event to the loop itself
            loop.call_soon_threadsafe(stop.set)

    signal.signal(signal.SIGTERM, handle)
    return stop


def start_conversion_webhook(
    api_client: client.ApiClient,
    settings: Settings,
    metrics: webhook.Recorder,
    ready: Callable[[], bool] = lambda: True,
) -> None:
    """Serve the conversion webhook (unless PLINTH_WEBHOOK_PORT=0) and write its CA into the Plinth CRDs, before
    anything reads Plinth objects: the API server converts every object read or written at another version than
    the one it stores, through this webhook."""
    if not settings.webhook_port:
        log.info("webhook: not served (PLINTH_WEBHOOK_PORT=0)")
        return
    directory = Path(settings.webhook_cert_dir) if settings.webhook_cert_dir else webhook.default_cert_dir()
    hosts = webhook.hosts_from(settings.webhook_dns_names)
    certificates = webhook.ensure_certificates(directory, hosts, generate=settings.webhook_generate)
    server = webhook.serve(
        certificates, host=settings.webhook_host, port=settings.webhook_port, recorder=metrics, ready=ready
    )
    log.info(f"webhook: serving conversions on https://{settings.webhook_host}:{server.server_port}/convert")
    if settings.webhook_ca_bundle:
        changed = webhook.set_ca_bundle(api_client, certificates.ca_pem, [info.crd_name for info in v1alpha1.KINDS])
        if changed:
            log.info(f"webhook: wrote its CA into the caBundle of {', '.join(changed)}")


def run_operator(*, namespaces: list[str], metrics_port: int, standalone: bool) -> int:
    arenas_capped = heap.limit_arenas()  # first: before any thread starts (tracing, metrics, kopf's executor)
    stop = stop_on_early_sigterm()
    settings = Settings.from_env()
    plinth_logging.configure(settings.log_level)
    if not arenas_capped:
        log.info("malloc arenas not capped: the C library has no mallopt (not glibc)")
    if tracing.configure():
        log.info("tracing enabled (OTLP)")
    api_client = load_config()
    identity, priority = peering_identity(), peering_priority(settings)
    peering = PeeringActivity(identity=identity, priority=priority, standalone=standalone)
    if not standalone:
        if settings.peering_lifetime_seconds < MIN_PEERING_LIFETIME_SECONDS:
            log.error(f"PLINTH_PEERING_LIFETIME_SECONDS must be at least {MIN_PEERING_LIFETIME_SECONDS}")
            return 2
        try:
            joined = join_peering(api_client, settings, identity=identity, priority=priority)
        except PeeringError as err:
            log.error(f"peering: {err}")
            return 2
        peering.expect(joined)
        peering.follow(api_client, settings)
        log.info(
            f"peering: joined ClusterKopfPeering {settings.peering_name!r}"
            f" ({', '.join(f'{g}/{v}' for g, v in joined)}) as {identity!r},"
            f" priority {priority}, lifetime {settings.peering_lifetime_seconds}s; standing by while an older"
            " replica is alive"
        )
        kopf.on.startup(id="plinth-cluster-wide-peering")(peer_cluster_wide)
    metrics = plinth_metrics.Metrics()
    healthy = threading.Event()
    try:
        start_conversion_webhook(api_client, settings, metrics, ready=healthy.is_set)
    except (OSError, ValueError, ApiException) as err:
        log.error(f"webhook: cannot serve conversions: {err}")
        return 2
    plinth_metrics.serve(metrics, healthy, metrics_port)
    kube = DynamicKubernetes(api_client, metrics, FIELD_MANAGER)

    import plinth.operator.handlers  # noqa: F401 — registers the handlers
    from plinth.operator.handlers.common import ChildDigests
    from plinth.operator.handlers.lifecycle import kopf_connection_limit

    telemetry = Telemetry(
        otlp_endpoint=settings.workload_otlp_endpoint,
        resource_attributes=settings.workload_resource_attributes,
        prometheus=PrometheusHTTP(settings.prometheus_url, metrics) if settings.prometheus_url else None,
    )
    stream_lists = streams_initial_lists(settings.initial_listing, server_version(api_client))
    log.info(f"initial listing: {'streamed on the watch' if stream_lists else 'one LIST per kind'}")
    operator_settings = kopf_settings(settings, standalone=standalone, stream_lists=stream_lists)
    reconciler = Reconciler(kube, metrics, EventPoster(kube, instance=identity).start().emit)
    queue = WorkQueue(reconciler)
    services = Services(
        reconciler=reconciler,
        queue=queue,
        scheduler=Scheduler(
            queue, resync_seconds=settings.resync_seconds, resync_per_second=settings.resync_per_second
        ),
        peering=peering,
        # Child events queue reconciles on kopf's own executor for sync handlers: one bound on threads.
        executor=operator_settings.execution.executor,
        children=ChildDigests(),
        healthy=healthy,
        kopf_connections=kopf_connection_limit(len(namespaces)),
        settings=settings,
        telemetry=telemetry,
    )
    kopf.run(
        settings=operator_settings,
        standalone=standalone,
        clusterwide=not namespaces,
        namespaces=namespaces,
        identity=cast(Any, identity),  # kopf's Identity is a NewType of str it does not export
        priority=priority,
        memo=services,
        stop_flag=stop,
    )
    return 0
