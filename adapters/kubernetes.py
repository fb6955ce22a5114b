"""Kubernetes objects behind a small interface: server-side apply under one field manager, list, delete, status.

Server-side apply makes every write idempotent and GitOps-friendly (fields Plinth does not manage are left to their
owners); 404 on delete and "already gone" are success. Every call is counted, timed and traced in one place.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError, ResourceNotFoundError
from plinth.operator.metrics import Metrics
from plinth.operator.tracing import tracer

Manifest = dict[str, Any]
_T = TypeVar("_T")
ADAPTER = "kubernetes"
_RECHECK_MISSING = 60.0
# (connect, read) seconds: a request to an API server that accepts and never answers must not hold a reconcile (and
# its object's lock) forever.
REQUEST_TIMEOUT = (10, 60)


class Conflict(Exception):  # noqa: N818 — mirrors the HTTP status
    """The object changed since it was read (a resourceVersion precondition failed): read again and retry."""


class NamespaceTerminating(Exception):  # noqa: N818 — mirrors the API's cause
    """The target namespace is being deleted: nothing new can be created in it."""


class KubernetesObjects(Protocol):
    """What reconcilers may do with Kubernetes objects."""

    def apply(self, manifest: Manifest) -> Manifest:
        """Server-side apply. With ``metadata.resourceVersion`` set it is a compare-and-swap: raises Conflict.
        Raises NamespaceTerminating when the object's namespace is being deleted."""
        ...

    def get(self, api_version: str, kind: str, name: str, *, namespace: str | None = None) -> Manifest | None:
        """The object, or None when it does not exist."""
        ...

    def list(
        self, api_version: str, kind: str, *, namespace: str | None = None, label_selector: str | None = None
    ) -> list[Manifest]: ...

    def has_api(self, api_version: str, kind: str) -> bool:
        """Whether the API server serves this kind (optional CRDs such as Gateway API or ServiceMonitor)."""
        ...

    def delete(self, api_version: str, kind: str, name: str, *, namespace: str | None = None) -> bool: ...

    def patch_status(
        self, api_version: str, kind: str, name: str, status: dict[str, Any], *, namespace: str | None = None
    ) -> bool:
        """Merge-patch the status subresource; False when the object is gone."""
        ...


def load_config() -> client.ApiClient:
    """Credentials from in-cluster service account, else the current kubeconfig."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


class DynamicKubernetes:
    """``KubernetesObjects`` on the Kubernetes dynamic client (discovery is cached per process)."""

    def __init__(self, api_client: client.ApiClient, metrics: Metrics, field_manager: str) -> None:
        # A discovery cache of this process only: the client's default file in the temp dir is shared by every
        # process on the host and would hide CRDs installed or removed since another process wrote it.
        self._api_client = api_client
        self._client = self._new_client()
        self._metrics = metrics
        self._field_manager = field_manager
        self._missing: dict[tuple[str, str], float] = {}  # optional kinds not served, and when that was checked
        self._discovery = threading.RLock()

    def _new_client(self) -> DynamicClient:
        cache = Path(tempfile.mkdtemp(prefix="plinth-discovery-")) / "discovery.json"
        return DynamicClient(self._api_client, cache_file=str(cache))

    @contextmanager
    def _discovering(self) -> Iterator[None]:
        """Discovery under one lock (the client's lazy cache is not thread-safe; reconciles run on executor
        threads). A discovery that fails midway (e.g. the API server is down) can leave that cache broken for good,
        so any failure other than "no such kind" starts over with a fresh client."""
        with self._discovery:
            try:
                yield
            except ResourceNotFoundError:
                raise
            except Exception:
                self._client = self._new_client()
                raise

    def _resource(self, api_version: str, kind: str) -> Any:
        with self._discovering():
            return self._client.resources.get(api_version=api_version, kind=kind)

    @contextmanager
    def _call(self, operation: str) -> Iterator[None]:
        started = time.perf_counter()
        result = "ok"
        with tracer().start_as_current_span(f"{ADAPTER}.{operation}"):
            try:
                yield
            except Exception:
                result = "error"
                raise
            finally:
                self._metrics.adapter_requests.labels(ADAPTER, operation, result).inc()
                self._metrics.adapter_duration.labels(ADAPTER, operation).observe(time.perf_counter() - started)

    def _run(self, operation: str, action: Callable[[], _T]) -> _T:
        with self._call(operation):
            return action()

    def apply(self, manifest: Manifest) -> Manifest:
        resource = self._resource(manifest["apiVersion"], manifest["kind"])
        meta = manifest["metadata"]
        try:
            result = self._run(
                "apply",
                lambda: resource.server_side_apply(
                    body=manifest,
                    name=meta["name"],
                    namespace=meta.get("namespace"),
                    field_manager=self._field_manager,
                    force_conflicts=True,
                    _request_timeout=REQUEST_TIMEOUT,
                ),
            )
        except (DynamicApiError, ApiException) as err:
            if getattr(err, "status", None) == 409:
                raise Conflict(f"{manifest['kind']} {meta.get('namespace', '')}/{meta['name']} changed") from err
            if getattr(err, "status", None) == 403 and "NamespaceTerminating" in str(getattr(err, "body", "")):
                raise NamespaceTerminating(f"namespace {meta.get('namespace')} is being deleted") from err
            raise
        applied: Manifest = result.to_dict()
        return applied

    def get(self, api_version: str, kind: str, name: str, *, namespace: str | None = None) -> Manifest | None:
        resource = self._resource(api_version, kind)
        try:
            result = self._run(
                "get", lambda: resource.get(name=name, namespace=namespace, _request_timeout=REQUEST_TIMEOUT)
            )
        except (NotFoundError, ApiException) as err:
            if getattr(err, "status", None) == 404:
                return None
            raise
        found: Manifest = result.to_dict()
        return found

    def has_api(self, api_version: str, kind: str) -> bool:
        with self._discovering():
            try:
                self._client.resources.get(api_version=api_version, kind=kind)
                return True
            except ResourceNotFoundError:
                pass
            # Not served when discovery was cached. Look again at most once a minute: a CRD may have been installed
            # since, but rediscovery costs a request per API group.
            now = time.monotonic()
            if now - self._missing.get((api_version, kind), -_RECHECK_MISSING) < _RECHECK_MISSING:
                return False
            self._missing[(api_version, kind)] = now
            self._client.resources.invalidate_cache()
            try:
                self._client.resources.get(api_version=api_version, kind=kind)
            except ResourceNotFoundError:
                return False
            self._missing.pop((api_version, kind), None)
            return True

    def list(
        self, api_version: str, kind: str, *, namespace: str | None = None, label_selector: str | None = None
    ) -> list[Manifest]:
        resource = self._resource(api_version, kind)
        result = self._run(
            "list",
            lambda: resource.get(namespace=namespace, label_selector=label_selector, _request_timeout=REQUEST_TIMEOUT),
        )
        items: list[Manifest] = result.to_dict()["items"]
        return items

    def delete(self, api_version: str, kind: str, name: str, *, namespace: str | None = None) -> bool:
        resource = self._resource(api_version, kind)
        try:
            self._run(
                "delete", lambda: resource.delete(name=name, namespace=namespace, _request_timeout=REQUEST_TIMEOUT)
            )
        except (NotFoundError, ApiException) as err:
            if getattr(err, "status", None) == 404:
                return False
            raise
        return True

    def patch_status(
        self, api_version: str, kind: str, name: str, status: dict[str, Any], *, namespace: str | None = None
    ) -> bool:
        resource = self._resource(api_version, kind)
        body = {"status": status}
        try:
            self._run(
                "patch_status",
                lambda: resource.status.patch(
                    body=body,
                    name=name,
                    namespace=namespace,
                    content_type="application/merge-patch+json",
                    field_manager=self._field_manager,
                    _request_timeout=REQUEST_TIMEOUT,
                ),
            )
        except (NotFoundError, ApiException) as err:
            if getattr(err, "status", None) == 404:
                return False
            raise
        return True
