"""Kubernetes objects behind a small interface: server-side apply under one field manager, list, delete, status.

Server-side apply makes every write idempotent and GitOps-friendly (fields Plinth does not manage are left to their
owners); 404 on delete and "already gone" are success. Every call is counted, timed and traced in one place.
"""

from __future__ import annotations

import hashlib
import json
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
# At least the operator's executor threads (settings.max_workers defaults to 20), so none waits for a connection.
CONNECTION_POOL_SIZE = 32
# On every applied object: a digest of the manifest as applied, so an unchanged one need not be sent again.
APPLIED_HASH_ANNOTATION = "plinth.dev/applied-hash"


class Conflict(Exception):  # noqa: N818 — mirrors the HTTP status
    """The object changed since it was read (a resourceVersion precondition failed): read again and retry."""


class NamespaceTerminating(Exception):  # noqa: N818 — mirrors the API's cause
    """The target namespace is being deleted: nothing new can be created in it."""


class KubernetesObjects(Protocol):
    """What reconcilers may do with Kubernetes objects."""

    def apply(self, manifest: Manifest, *, live: Manifest | None = None) -> Manifest:
        """Server-side apply. With ``metadata.resourceVersion`` set it is a compare-and-swap: raises Conflict.
        Raises NamespaceTerminating when the object's namespace is being deleted. With *live* (the object as just
        read), nothing is sent when it already holds exactly this manifest (see ``up_to_date``): *live* is returned."""
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


def applied_hash(manifest: Manifest) -> str:
    """A digest of *manifest* (without its own hash annotation): equal digests, equal intent."""
    meta = manifest.get("metadata") or {}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != APPLIED_HASH_ANNOTATION}
    body = {**manifest, "metadata": {**meta, "annotations": annotations}}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:20]


def with_applied_hash(manifest: Manifest) -> Manifest:
    meta = manifest["metadata"]
    annotations = {**(meta.get("annotations") or {}), APPLIED_HASH_ANNOTATION: applied_hash(manifest)}
    return {**manifest, "metadata": {**meta, "annotations": annotations}}


def up_to_date(manifest: Manifest, live: Manifest | None, field_manager: str) -> bool:
    """Whether applying *manifest* could not change *live*: it carries the same applied hash, and no other field
    manager has since taken a field the manifest sets (``kubectl scale``/``edit``/``patch`` of a field Plinth owns
    moves that field to the editor in managedFields: that is drift, and the apply takes it back). Fields others added
    beside ours (a user's label, the controllers' status) are no reason to apply."""
    if live is None or live.get("metadata", {}).get("deletionTimestamp"):
        return False
    meta = live.get("metadata") or {}
    if (meta.get("annotations") or {}).get(APPLIED_HASH_ANNOTATION) != applied_hash(manifest):
        return False
    for entry in meta.get("managedFields") or []:
        if entry.get("manager") == field_manager or entry.get("subresource") == "status":
            continue
        if _sets_any(entry.get("fieldsV1") or {}, manifest):
            return False
    return True


def _sets_any(fields: dict[str, Any], value: Any) -> bool:
    """Whether a managedFields ``fieldsV1`` tree names any leaf that *value* also sets (``f:`` map keys, ``k:`` list
    items by key fields, ``v:`` set values). ``.`` (the map or item itself) does not count: a user's label owns
    ``f:labels/.`` too."""
    for key, sub in fields.items():
        if key.startswith("f:"):
            if isinstance(value, dict) and key[2:] in value and (not sub or _sets_any(sub, value[key[2:]])):
                return True
        elif key.startswith("k:"):
            if not isinstance(value, list):
                continue
            match = json.loads(key[2:])
            item = next((i for i in value if isinstance(i, dict) and match.items() <= i.items()), None)
            if item is not None and (not sub or _sets_any(sub, item)):
                return True
        elif key.startswith("v:"):
            if isinstance(value, list) and json.loads(key[2:]) in value:
                return True
        elif key.startswith("i:") and isinstance(value, list):
            return True  # an index into an atomic list: any shared ownership of it is a conflict
    return False


def load_config() -> client.ApiClient:
    """Credentials from in-cluster service account, else the current kubeconfig."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    configuration = client.Configuration.get_default_copy()
    # One pooled connection per executor thread: urllib3's default (5 per CPU) makes busy threads close and re-open
    # connections, each a new TLS handshake (docs/performance.md).
    configuration.connection_pool_maxsize = CONNECTION_POOL_SIZE
    return client.ApiClient(configuration)


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
        # Kinds resolved once: read without the lock, so lookups of known kinds never queue behind a discovery.
        self._resolved: dict[tuple[str, str], Any] = {}
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
        key = (api_version, kind)
        found = self._resolved.get(key)
        if found is None:
            with self._discovering():
                found = self._resolved[key] = self._client.resources.get(api_version=api_version, kind=kind)
        return found

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

    def apply(self, manifest: Manifest, *, live: Manifest | None = None) -> Manifest:
        if up_to_date(manifest, live, self._field_manager) and live is not None:
            return live
        manifest = with_applied_hash(manifest)
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
        key = (api_version, kind)
        if key in self._resolved:
            return True
        # Not served when last looked at: look again at most once a minute. A CRD may have been installed since, but
        # the client answers a miss by rediscovering every API group, under the lock every other lookup needs.
        now = time.monotonic()
        if now - self._missing.get(key, -_RECHECK_MISSING) < _RECHECK_MISSING:
            return False
        with self._discovering():
            self._missing[key] = now
            try:
                self._resolved[key] = self._client.resources.get(api_version=api_version, kind=kind)
            except ResourceNotFoundError:
                self._client.resources.invalidate_cache()
                try:
                    self._resolved[key] = self._client.resources.get(api_version=api_version, kind=kind)
                except ResourceNotFoundError:
                    return False
        self._missing.pop(key, None)
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
