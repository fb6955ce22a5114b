"""A minimal asyncio Kubernetes client (aiohttp, already a kopf dependency): the benchmark's load generator, its
physical-limit baseline and its watcher. Deliberately thin, so the baseline measures the API server, not a client."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

Manifest = dict[str, Any]
FIELD_MANAGER = "plinth-bench"
# kind -> (api prefix, plural, namespaced)
_RESOURCES: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("api/v1", "namespaces", False),
    "Secret": ("api/v1", "secrets", True),
    "Service": ("api/v1", "services", True),
    "Pod": ("api/v1", "pods", True),
    "ResourceQuota": ("api/v1", "resourcequotas", True),
    "Deployment": ("apis/apps/v1", "deployments", True),
    "PreviewEnvironment": ("apis/plinth.dev/v1beta1", "previewenvironments", True),
    "ModelDeployment": ("apis/plinth.dev/v1beta1", "modeldeployments", True),
    "NamespaceQuota": ("apis/plinth.dev/v1beta1", "namespacequotas", False),
}


class ApiError(Exception):
    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        super().__init__(f"{method} {path}: {status} {body[:300]}")
        self.status = status


def collection_path(kind: str, namespace: str | None = None) -> str:
    prefix, plural, namespaced = _RESOURCES[kind]
    if namespaced and namespace:
        return f"/{prefix}/namespaces/{namespace}/{plural}"
    return f"/{prefix}/{plural}"


def object_path(kind: str, name: str, namespace: str | None = None) -> str:
    return f"{collection_path(kind, namespace)}/{name}"


def _ssl_context(kubeconfig: dict[str, Any], scratch: Path) -> tuple[str, ssl.SSLContext]:
    context_name = kubeconfig["current-context"]
    ctx = next(c["context"] for c in kubeconfig["contexts"] if c["name"] == context_name)
    cluster = next(c["cluster"] for c in kubeconfig["clusters"] if c["name"] == ctx["cluster"])
    user = next(u["user"] for u in kubeconfig["users"] if u["name"] == ctx["user"])
    context = ssl.create_default_context()
    if "certificate-authority-data" in cluster:
        context.load_verify_locations(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    elif "certificate-authority" in cluster:
        context.load_verify_locations(cafile=cluster["certificate-authority"])
    cert, key = user.get("client-certificate"), user.get("client-key")
    if "client-certificate-data" in user:
        cert, key = str(scratch / "client.crt"), str(scratch / "client.key")
        Path(cert).write_bytes(base64.b64decode(user["client-certificate-data"]))
        Path(key).write_bytes(base64.b64decode(user["client-key-data"]))
        Path(key).chmod(0o600)
    if cert and key:
        context.load_cert_chain(cert, key)
    return cluster["server"].rstrip("/"), context


class Kube:
    """One aiohttp session (a pooled connection per concurrent request) against the kubeconfig's cluster."""

    def __init__(self, kubeconfig: Path, *, connections: int = 256, user_agent: str = "plinth-bench") -> None:
        self._scratch = tempfile.TemporaryDirectory(prefix="plinth-bench-")
        self.server, self._ssl = _ssl_context(yaml.safe_load(kubeconfig.read_text()), Path(self._scratch.name))
        self._connections = connections
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Kube:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self._ssl, limit=self._connections),
            headers={"User-Agent": self._user_agent, "Accept": "application/json"},
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30),
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()
        self._scratch.cleanup()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use `async with Kube(...)`"
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
        ok_missing: bool = False,
    ) -> Manifest | None:
        data = json.dumps(body) if body is not None else None
        headers = {"Content-Type": content_type} if data is not None else {}
        for attempt in range(8):
            async with self.session.request(
                method, self.server + path, data=data, headers=headers, params=params
            ) as resp:
                text = await resp.text()
                if resp.status == 404 and ok_missing:
                    return None
                if resp.status == 429 or resp.status >= 500:  # API priority and fairness pushing back: retry
                    await asyncio.sleep(min(0.1 * 2**attempt, 5))
                    continue
                if resp.status >= 400:
                    raise ApiError(resp.status, method, path, text)
                return json.loads(text) if text else {}
        raise ApiError(429, method, path, "gave up after retries")

    async def apply(self, manifest: Manifest, field_manager: str = FIELD_MANAGER) -> Manifest | None:
        """Server-side apply, exactly as the operator writes its children."""
        meta = manifest["metadata"]
        return await self.request(
            "PATCH",
            object_path(manifest["kind"], meta["name"], meta.get("namespace")),
            body=manifest,
            content_type="application/apply-patch+yaml",
            params={"fieldManager": field_manager, "force": "true"},
        )

    async def create(self, manifest: Manifest) -> Manifest | None:
        meta = manifest["metadata"]
        return await self.request("POST", collection_path(manifest["kind"], meta.get("namespace")), body=manifest)

    async def merge_patch(self, kind: str, name: str, namespace: str | None, body: Manifest) -> Manifest | None:
        return await self.request(
            "PATCH", object_path(kind, name, namespace), body=body, content_type="application/merge-patch+json"
        )

    async def delete(self, kind: str, name: str, namespace: str | None = None) -> None:
        await self.request("DELETE", object_path(kind, name, namespace), ok_missing=True)

    async def list(self, path: str, selector: str | None = None) -> Manifest:
        params = {"labelSelector": selector} if selector else None
        found = await self.request("GET", path, params=params)
        assert found is not None
        return found

    async def metrics(self) -> str:
        async with self.session.get(self.server + "/metrics") as resp:
            resp.raise_for_status()
            return await resp.text()

    async def watch(self, path: str, resource_version: str, selector: str | None = None) -> AsyncIterator[Manifest]:
        """Watch events from *resource_version* until the server closes the stream (about every 5 minutes)."""
        params = {"watch": "1", "resourceVersion": resource_version, "allowWatchBookmarks": "true"}
        params["timeoutSeconds"] = "300"
        if selector:
            params["labelSelector"] = selector
        async with self.session.get(self.server + path, params=params) as resp:
            if resp.status >= 400:
                raise ApiError(resp.status, "WATCH", path, await resp.text())
            async for line in resp.content:
                if line.strip():
                    yield json.loads(line)


def key_of(obj: Manifest) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


@dataclass
class Informer:
    """List+watch of one collection with a per-object predicate: ``matching`` holds the keys for which it holds, so
    waiting for "all N Ready" costs O(1) per event. ``on_event(obj, when)`` sees every object change as it arrives."""

    kube: Kube
    path: str
    selector: str | None = None
    predicate: Callable[[Manifest], bool] = lambda _: False
    on_event: Callable[[str, Manifest, float], None] | None = None
    objects: dict[str, Manifest] = field(default_factory=dict)
    matching: set[str] = field(default_factory=set)
    events: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _synced: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> Informer:
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _see(self, type_: str, obj: Manifest, when: float) -> None:
        key = key_of(obj)
        self.events += 1
        if type_ == "DELETED":
            self.objects.pop(key, None)
            self.matching.discard(key)
        else:
            self.objects[key] = obj
            if self.predicate(obj):
                self.matching.add(key)
            else:
                self.matching.discard(key)
        if self.on_event is not None:
            self.on_event(type_, obj, when)
        self._changed.set()

    async def _run(self) -> None:
        while True:
            listing = await self.kube.list(self.path, self.selector)
            now = time.monotonic()
            seen = {key_of(o) for o in listing["items"]}
            for key in list(self.objects):
                if key not in seen:
                    self._see("DELETED", self.objects[key], now)
            for obj in listing["items"]:
                self._see("ADDED", obj, now)
            self._synced.set()
            version = listing["metadata"]["resourceVersion"]
            while True:
                try:
                    async for event in self.kube.watch(self.path, version, self.selector):
                        obj = event["object"]
                        if event["type"] == "ERROR":
                            raise ApiError(int(obj.get("code") or 410), "WATCH", self.path, str(obj.get("message")))
                        version = obj["metadata"]["resourceVersion"]
                        if event["type"] != "BOOKMARK":
                            self._see(event["type"], obj, time.monotonic())
                except ApiError as err:
                    if err.status == 410:
                        break  # too old: list again
                    raise
                except (TimeoutError, aiohttp.ClientError):
                    await asyncio.sleep(0.5)

    async def synced(self) -> None:
        await self._synced.wait()

    async def wait(self, condition: Callable[[], bool], limit: float, what: str) -> float:
        """Wait until *condition* holds (re-checked on every event); returns the monotonic time it first held."""
        await self.synced()
        deadline = time.monotonic() + limit
        while not condition():
            if self._task is not None and self._task.done():
                self._task.result()  # the watch died: raise its error
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {limit:.0f}s waiting for {what}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 5))
        return time.monotonic()
