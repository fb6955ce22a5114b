"""The kopf settings that bound the operator's memory and watch traffic (see docs/performance.md)."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import os
import signal
import types
from collections.abc import Iterator

import kopf
import pytest
from plinth.operator import runtime
from plinth.operator.builders import quota
from plinth.operator.handlers.lifecycle import KOPF_REQUEST_CONNECTIONS, kopf_connection_limit, stopping
from plinth.operator.kinds import ChildKind, Watch, label_selectors
from plinth.operator.settings import MANAGED_BY_SELECTOR, Settings


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
    assert selectors.collect(kopf.Resource("apps", "v1", "deployments")) == [MANAGED_BY_SELECTOR]
    for plural in ("resourcequotas", "limitranges"):
        assert selectors.collect(kopf.Resource("", "v1", plural)) == [quota.OWNER_LABEL]
    assert selectors.collect(kopf.Resource("networking.k8s.io", "v1", "networkpolicies")) == [quota.OWNER_LABEL]
    # A Plinth kind's own watch must see every object: no selector, although previews follow their models.
    assert selectors.collect(kopf.Resource("plinth.dev", "v1alpha1", "modeldeployments")) == []


def test_the_kinds_watching_one_resource_agree_on_its_selector() -> None:
    """kopf joins every selector of a resource with AND: two kinds with different ones would each see nothing."""
    assert label_selectors(runtime.KINDS)[("apps", "deployments")] == MANAGED_BY_SELECTOR
    child = ChildKind("apps/v1", "Deployment", "deployments", watch=Watch("other=1", "x", lambda body: ""))
    other = dataclasses.replace(runtime.KINDS[0], children=(child,))
    with pytest.raises(ValueError, match="disagree"):
        label_selectors((*runtime.KINDS, other))


def test_an_idle_worker_lets_its_objects_last_body_go_within_a_second() -> None:
    """At a restart every object's event arrives within seconds: kopf's 5 s idle workers held thousands of bodies."""
    assert runtime.kopf_settings(Settings()).queueing.idle_timeout <= 1


def test_initial_objects_are_streamed_from_kubernetes_1_34_unless_set_otherwise() -> None:
    """Streamed, a restart never holds a whole LIST response; API servers before 1.34 get the LISTs."""
    assert runtime.streams_initial_lists("auto", (1, 34))
    assert runtime.streams_initial_lists("auto", (1, 37))
    assert not runtime.streams_initial_lists("auto", (1, 33))
    assert not runtime.streams_initial_lists("auto", None)  # the version could not be read
    assert runtime.streams_initial_lists("stream", (1, 30))
    assert not runtime.streams_initial_lists("list", (1, 37))
    assert runtime.kopf_settings(Settings(), stream_lists=True).watching.initial_streaming
    assert not runtime.kopf_settings(Settings()).watching.initial_streaming
    with pytest.raises(ValueError, match="PLINTH_INITIAL_LISTING"):
        Settings(initial_listing="paged")


def test_the_api_servers_version_is_read_as_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Providers append to the minor (GKE: "34+"); an unreadable version means listing as before."""

    class Versions:
        minor = "34+"

        def __init__(self, api_client: object) -> None:
            pass

        def get_code(self) -> object:
            if self.minor == "gone":
                raise ConnectionError("refused")
            return types.SimpleNamespace(major="1", minor=self.minor)

    monkeypatch.setattr(runtime.client, "VersionApi", Versions)
    assert runtime.server_version(object()) == (1, 34)  # type: ignore[arg-type]
    Versions.minor = "gone"
    assert runtime.server_version(object()) is None  # type: ignore[arg-type]


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


@pytest.fixture
def sigterm_restored() -> Iterator[None]:
    before = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, before)


@pytest.mark.usefixtures("sigterm_restored")
def test_a_sigterm_before_kopf_runs_raises_its_stop_flag() -> None:
    """Between /healthz answering and kopf installing its own handler, a SIGTERM stops kopf instead of killing the
    process (exit -15)."""
    stop = runtime.stop_on_early_sigterm()
    assert not stop.is_set()
    os.kill(os.getpid(), signal.SIGTERM)  # Python runs the handler in the main thread before the next bytecodes
    assert stop.is_set()


@pytest.mark.usefixtures("sigterm_restored")
def test_a_sigterm_while_kopf_starts_wakes_its_stop_flag_waiter() -> None:
    """kopf waits on the flag in its running loop: the SIGTERM must wake that waiter."""
    stop = runtime.stop_on_early_sigterm()

    async def starting() -> bool:
        # The loop runs ready callbacks in order: the waiter starts waiting before the handler's set() runs.
        waiter = asyncio.create_task(stop.wait())
        os.kill(os.getpid(), signal.SIGTERM)
        return await asyncio.wait_for(waiter, timeout=10)

    assert asyncio.run(starting()) is True


def test_event_and_resume_handlers_never_wait_for_an_executor_thread() -> None:
    """kopf runs a sync handler in the executor, and the object's worker waits, with the object's whole body, behind
    every queued reconcile: at a restart over thousands of objects, every namespace, quota and resumed object did."""
    import plinth.operator.handlers  # noqa: F401 — registers the handlers

    registry = kopf.get_default_registry()
    handlers = [
        *registry._watching.get_all_handlers(),  # kopf has no public list
        *(h for h in registry._changing.get_all_handlers() if h.initial),
    ]
    assert len(handlers) > 10
    assert [h.id for h in handlers if not inspect.iscoroutinefunction(h.fn)] == []
