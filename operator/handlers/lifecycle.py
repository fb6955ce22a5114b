"""Operator start-up and shutdown."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import kopf
from plinth.operator import heap
from plinth.operator.handlers import modeldeployment, namespacequota, previewenvironment
from plinth.operator.services import Services

log = logging.getLogger("plinth")
# kopf talks to the API server over its own HTTP session (watch streams, finalizer and annotation patches, Events;
# Plinth's reconciles use the kubernetes client and its own pool). kopf's default pool has no limit: a burst of new
# objects opens hundreds of TLS connections at once, each with a 256 KiB read buffer and a handshake the API server
# pays for. This many connections serve its requests...
KOPF_REQUEST_CONNECTIONS = 32
# ...beside the watch streams, which hold a connection each for as long as they run: one per watched kind per namespace
# served (10 kinds including kopf's peering; rounded up). The pool must always have room beyond them, or requests
# would wait forever.
KOPF_STREAMS_PER_NAMESPACE = 16


def kopf_connection_limit(namespaces: int) -> int:
    """The size of kopf's connection pool for an operator serving *namespaces* namespaces (0: cluster-wide)."""
    return KOPF_REQUEST_CONNECTIONS + KOPF_STREAMS_PER_NAMESPACE * max(1, namespaces)


@kopf.on.login()
async def login(memo: Services, **kwargs: Any) -> kopf.AiohttpSession | None:
    """kopf's own login (in-cluster service account, else the kubeconfig), on an HTTP session whose connection pool
    is bounded (see KOPF_REQUEST_CONNECTIONS). kopf closes the session when it logs in again (e.g. after a 401)."""
    info = kopf.login_via_client(**kwargs)
    if info is None:
        return None
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=memo.kopf_connections, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        proxy=info.proxy_url,
        trust_env=info.trust_env,
    )
    return kopf.AiohttpSession(
        aiohttp_session=session,
        server=info.server,
        default_namespace=info.default_namespace,
        priority=info.priority,
        expiration=info.expiration,
    )


# The kinds whose time-based reconciles the operator-wide schedule queues.
SCHEDULED = (previewenvironment.SCHEDULED, modeldeployment.SCHEDULED, namespacequota.SCHEDULED)


@kopf.on.startup()
async def started(memo: Services, **_: Any) -> None:
    """Starts the schedule's loop and the heap trim on kopf's event loop."""
    memo.background.append(
        asyncio.create_task(memo.scheduler.run(SCHEDULED, memo, memo.peering.state), name="plinth schedule")
    )
    if (trim := heap.malloc_trim()) is not None:
        memo.background.append(asyncio.create_task(heap.trim_periodically(trim), name="plinth heap trim"))
    memo.healthy.set()
    log.info("plinth operator started")


@kopf.on.cleanup()
async def stopping(memo: Services, **_: Any) -> None:
    """Async, so it runs on kopf's event loop at once: a sync handler would wait in the executor's queue behind the
    very reconciles it cancels."""
    memo.healthy.clear()
    for task in memo.background:
        task.cancel()
    cancelled = memo.queue.cancel_queued()
    log.info(f"plinth operator stopping; {cancelled} queued reconciles cancelled (resumed on the next start)")
