"""The kopf settings that bound the operator's memory and watch traffic (see docs/performance.md)."""

from __future__ import annotations

import inspect

import kopf
from plinth.operator import runtime
from plinth.operator.handlers.lifecycle import KOPF_REQUEST_CONNECTIONS, kopf_connection_limit, stopping
from plinth.operator.settings import Settings


def _watched_kinds() -> set[str]:
    import plinth.operator.handlers  # noqa: F401 — registers the handlers

    registry = kopf.get_default_registry()
    handlers = [
        *registry._watching.get_all_handlers(),
        *registry._indexing.get_all_handlers(),
    ]  # kopf has no public list
    return {str(h.selector.plural or h.selector.any_name) for h in handlers if h.selector is not None}


def test_initial_lists_are_not_paged_and_children_are_filtered_server_side() -> None:
    """A page's continue token expires with the API server's compaction; kopf fails on that 410 instead of listing
    again, and a restart over thousands of objects pages slower than that."""
    settings = runtime.kopf_settings(Settings())
    assert settings.watching.chunk_size is None
    selectors = settings.watching.label_selectors
    assert selectors.collect(kopf.Resource("apps", "v1", "deployments")) == [runtime.MANAGED_BY_SELECTOR]


def test_pods_are_not_watched() -> None:
    """Pods are listed by a reconcile (crash loops) but never watched: their bodies were most of the memory."""
    kinds = _watched_kinds()
    assert "deployments" in kinds
    assert "pods" not in kinds


def test_kopf_connection_pool_always_has_room_beyond_its_watch_streams() -> None:
    """Every watch stream holds a connection while it runs (one per watched kind and namespace, plus peering); a pool
    they could fill would leave kopf's patches waiting forever."""
    streams_per_namespace = len(_watched_kinds()) + 1
    for namespaces in (0, 1, 3, 20):
        streams = streams_per_namespace * max(1, namespaces)
        assert kopf_connection_limit(namespaces) - streams >= KOPF_REQUEST_CONNECTIONS


def test_the_cleanup_handler_runs_on_the_event_loop() -> None:
    """It cancels the reconciles queued in the executor; as a sync handler it would itself queue behind them."""
    assert inspect.iscoroutinefunction(stopping)
