"""Process start-up: logging, tracing, metrics/health server, kopf settings, then kopf's run loop."""

from __future__ import annotations

import logging
import threading

import kopf
from plinth.adapters.kubernetes import DynamicKubernetes, load_config
from plinth.adapters.observability import PrometheusHTTP, Telemetry
from plinth.operator import logging as plinth_logging
from plinth.operator import metrics as plinth_metrics
from plinth.operator import tracing
from plinth.operator.builders import quota
from plinth.operator.reconcile import Reconciler
from plinth.operator.settings import FIELD_MANAGER, FINALIZER, MANAGED_BY, Settings

log = logging.getLogger("plinth")
# Pods and Deployments of every Plinth kind carry this label (templates included).
MANAGED_BY_SELECTOR = ",".join(f"{k}={v}" for k, v in MANAGED_BY.items())


def kopf_settings(settings: Settings) -> kopf.OperatorSettings:
    """kopf, tuned on purpose (each choice explained where it is made)."""
    s = kopf.OperatorSettings()
    # Our own finalizer name, so `kubectl get -o yaml` tells users who holds an object.
    s.persistence.finalizer = FINALIZER
    # Progress and diff-base in annotations under our domain: status stays ours (kstatus conditions only).
    s.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="plinth.dev")
    s.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="plinth.dev", key="last-handled-spec")
    # Bound concurrency: each worker may hold a thread in the sync handlers' executor.
    s.batching.worker_limit = settings.max_workers
    s.execution.max_workers = settings.max_workers
    # Server-side watch timeouts: watches are re-opened regularly, so a silently dead connection cannot stall us.
    s.watching.server_timeout = settings.watch_timeout_seconds
    s.watching.client_timeout = settings.watch_timeout_seconds + 30
    s.watching.connect_timeout = 30
    # Events are posted by Plinth on change/failure/recovery only; kopf's own per-handler chatter stays in logs.
    s.posting.level = logging.WARNING
    s.networking.error_backoffs = [1, 2, 5, 10, 30]
    # Children are watched to repair drift and follow rollouts. Handler label filters are applied client-side, so
    # without these server-side selectors the operator would stream every Pod and Deployment in the cluster.
    for resource, owner_label in (
        ("pods", MANAGED_BY_SELECTOR),
        (("apps", "deployments"), MANAGED_BY_SELECTOR),
        ("resourcequotas", quota.OWNER_LABEL),
        ("limitranges", quota.OWNER_LABEL),
        (("networking.k8s.io", "networkpolicies"), quota.OWNER_LABEL),
    ):
        s.watching.label_selectors[resource] = owner_label
    return s


def run_operator(*, namespaces: list[str], metrics_port: int, standalone: bool) -> int:
    settings = Settings.from_env()
    plinth_logging.configure(settings.log_level)
    if tracing.configure():
        log.info("tracing enabled (OTLP)")
    metrics = plinth_metrics.Metrics()
    healthy = threading.Event()
    plinth_metrics.serve(metrics, healthy, metrics_port)
    kube = DynamicKubernetes(load_config(), metrics, FIELD_MANAGER)

    import plinth.operator.handlers  # noqa: F401 — registers the handlers

    def emit(obj: dict[str, object], type_: str, reason: str, message: str) -> None:
        kopf.event(obj, type=type_, reason=reason, message=message)  # type: ignore[arg-type]

    telemetry = Telemetry(
        otlp_endpoint=settings.workload_otlp_endpoint,
        resource_attributes=settings.workload_resource_attributes,
        prometheus=PrometheusHTTP(settings.prometheus_url, metrics) if settings.prometheus_url else None,
    )
    memo = kopf.Memo(
        reconciler=Reconciler(kube, metrics, emit), healthy=healthy, settings=settings, telemetry=telemetry
    )
    kopf.run(
        settings=kopf_settings(settings),
        standalone=standalone,
        clusterwide=not namespaces,
        namespaces=namespaces,
        memo=memo,
    )
    return 0
