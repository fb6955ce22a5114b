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
from typing import Any, Protocol, TypeVar, cast

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError, ResourceNotFoundError
from plinth.adapters.calls import CallRecorder, recorded

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


class Refused(Exception):  # noqa: N818 — mirrors the API's answer
    """The API server refused the object as written: 422 Invalid (a field it does not accept, an immutable field
    changed) or 403 from admission (a quota, policy or webhook). *reason* is the API's (``Invalid``, ``Forbidden``);
    *message* is the API server's, except for Secrets, where it could quote what was written."""

    def __init__(self, kind: str, namespace: str | None, name: str, reason: str, message: str) -> None:
        super().__init__(f"{kind} {namespace or ''}/{name}: {reason}: {message}")
        self.kind, self.namespace, self.name, self.reason, self.message = kind, namespace, name, reason, message


def _refusal(manifest: Manifest, err: ApiException) -> Refused | None:
    status = getattr(err, "status", None)
    if status not in (403, 422):
        return None
    try:
        body = json.loads(getattr(err, "body", None) or "{}")
    except (TypeError, ValueError):
        body = {}
    meta, kind = manifest["metadata"], manifest["kind"]
    reason = str(body.get("reason") or ("Invalid" if status == 422 else "Forbidden"))
    message = str(body.get("message") or "")
    if kind == "Secret":
        message = f"the API server refused the Secret ({reason}); its data is not repeated here"
    return Refused(kind, meta.get("namespace"), meta["name"], reason, message)


class KubernetesObjects(Protocol):
    """What reconcilers may do with Kubernetes objects."""

    def apply(self, manifest: Manifest, *, live: Manifest | None = None) -> Manifest:
        """Server-side apply. With ``metadata.resourceVersion`` set it is a compare-and-swap: raises Conflict.
        Raises NamespaceTerminating when the object's namespace is being deleted, Refused when the API server does not
        accept the object. With *live* (the object as just read), nothing is sent when it already holds exactly this
        manifest (see ``up_to_date``): *live* is returned."""
        ...

    def get(self, api_version: str, kind: str, name: str, *, namespace: str | None = None) -> Manifest | None:
        """The object, or None when it does not exist."""
        ...

    def list(
        self, api_version: str, kind: str, *, namespace: str | None = None, label_selector: str | None = None
    ) -> list[Manifest]:
        """Whole manifests, each with its apiVersion and kind (a LIST names them once, for all its items)."""
        ...

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
    """*manifest* stamped with its applied hash. Never a Secret: a digest of its values would let anyone who can read
    annotations test guesses of them (``secrets.KubernetesSecrets.write`` compares values directly instead)."""
    if manifest.get("kind") == "Secret":
        return manifest
    meta = manifest["metadata"]
    annotations = {**(meta.get("annotations") or {}), APPLIED_HASH_ANNOTATION: applied_hash(manifest)}
    return {**manifest, "metadata": {**meta, "annotations": annotations}}


def up_to_date(manifest: Manifest, live: Manifest | None, field_manager: str) -> bool:
    """Whether applying *manifest* could not change *live*: it carries the same applied hash and *field_manager*
    still owns every field the manifest sets. Drift moves ownership: ``kubectl scale``/``edit``/``patch`` of such a
    field makes the editor its owner, and removing one drops it from our set; then the apply takes it back. Fields
    others added beside ours (a user's label, the controllers' status) are no reason to apply."""
    if live is None or live.get("metadata", {}).get("deletionTimestamp"):
        return False
    meta = live.get("metadata") or {}
    if (meta.get("annotations") or {}).get(APPLIED_HASH_ANNOTATION) != applied_hash(manifest):
        return False
    ours = [
        e.get("fieldsV1") or {}
        for e in meta.get("managedFields") or []
        if e.get("manager") == field_manager and e.get("operation") == "Apply" and not e.get("subresource")
    ]
    if len(ours) != 1:
        return False
    desired = {k: v for k, v in with_applied_hash(manifest).items() if k not in ("apiVersion", "kind")}
    desired["metadata"] = {k: v for k, v in desired["metadata"].items() if k not in ("name", "namespace")}
    return _owns_all(ours[0], desired)


def _owns_all(fields: dict[str, Any], value: Any) -> bool:
    """Whether a managedFields ``fieldsV1`` tree names every field *value* sets: ``f:`` map keys, list items by their
    ``k:`` key fields (keys the API server defaulted, such as a port's protocol, may be absent from *value*) or ``v:``
    set values. An empty tree is a field owned as a whole (an atomic struct or list). Null and empty values are
    skipped: managedFields need not record them."""
    if not fields:
        return True
    if isinstance(value, dict):
        return all(
            f"f:{key}" in fields and _owns_all(fields[f"f:{key}"], item)
            for key, item in value.items()
            if item not in (None, [], {})
        )
    if isinstance(value, list):
        return all((sub := _list_entry(fields, item)) is not None and _owns_all(sub, item) for item in value)
    return True


def _list_entry(fields: dict[str, Any], item: Any) -> dict[str, Any] | None:
    for key, sub in fields.items():
        if key.startswith("v:") and json.loads(key[2:]) == item:
            return dict(sub)
        if key.startswith("k:") and isinstance(item, dict):
            match = json.loads(key[2:])
            shared = [k for k in match if k in item]
            if shared and all(item[k] == match[k] for k in shared):
                return dict(sub)
    return None


def _decoded(_client: Any, data: Any) -> Any:
    """Responses as the decoded JSON. The dynamic client's default wraps every nested object in a ResourceField, and
    ``to_dict()`` copies that back: two extra copies of every response, made only to be thrown away."""
    return data


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


def watch_cluster_object(
    api_client: client.ApiClient, api_version: str, plural: str, name: str, *, timeout_seconds: int
) -> Iterator[Manifest | None]:
    """One watch of one cluster-scoped custom object: its body at each event, starting with the current one, None
    once it is deleted; ends when the API server ends the watch, raises when the request fails."""
    group, version = api_version.split("/")
    stream = watch.Watch().stream(
        client.CustomObjectsApi(api_client).list_cluster_custom_object,
        group,
        version,
        plural,
        field_selector=f"metadata.name={name}",
        timeout_seconds=timeout_seconds,
        _request_timeout=(REQUEST_TIMEOUT[0], timeout_seconds + 30),
    )
    for event in stream:
        yield None if event["type"] == "DELETED" else event["object"]


def set_conversion_ca_bundle(api_client: client.ApiClient, crd: str, bundle: str, *, attempts: int = 5) -> bool | None:
    """Set a CRD's conversion webhook ``caBundle`` (base64 PEM) unless it holds it already: True when changed,
    False when it already was, None when the CRD is not installed. Other API errors are retried, then raised."""
    api = client.ApiextensionsV1Api(api_client)
    patch = {"spec": {"conversion": {"webhook": {"clientConfig": {"caBundle": bundle}}}}}
    for attempt in range(attempts):
        try:
            current = api.read_custom_resource_definition(crd, _request_timeout=REQUEST_TIMEOUT)
            webhook = current.spec.conversion.webhook if current.spec.conversion else None
            if webhook is not None and webhook.client_config is not None and webhook.client_config.ca_bundle == bundle:
                return False
            api.patch_custom_resource_definition(crd, patch, _request_timeout=REQUEST_TIMEOUT)
            return True
        except ApiException as err:
            if err.status == 404:
                return None
            if attempt == attempts - 1:
                raise
            time.sleep(1)
    return None


def stored_versions(api_client: client.ApiClient, crd: str) -> list[str] | None:
    """A CRD's ``status.storedVersions`` (the versions etcd may still hold objects at); None when not installed."""
    try:
        found = client.ApiextensionsV1Api(api_client).read_custom_resource_definition(
            crd, _request_timeout=REQUEST_TIMEOUT
        )
    except ApiException as err:
        if err.status == 404:
            return None
        raise
    return list(found.status.stored_versions or []) if found.status else []


def set_stored_versions(api_client: client.ApiClient, crd: str, versions: list[str]) -> None:
    patch = {"status": {"storedVersions": versions}}
    client.ApiextensionsV1Api(api_client).patch_custom_resource_definition_status(
        crd, patch, _request_timeout=REQUEST_TIMEOUT
    )


def rewrite_all(api_client: client.ApiClient, group: str, version: str, plural: str) -> int:
    """Write every object of a custom resource back as it is (an update that changes nothing), so etcd stores each
    at the CRD's storage version. One that changed or went meanwhile needs nothing: whoever changed it wrote it at
    the storage version. Returns how many were written."""
    api = client.CustomObjectsApi(api_client)
    listed = cast(Manifest, api.list_cluster_custom_object(group, version, plural, _request_timeout=REQUEST_TIMEOUT))
    written = 0
    for obj in listed.get("items") or []:
        meta = obj["metadata"]
        try:
            if meta.get("namespace"):
                api.replace_namespaced_custom_object(
                    group, version, meta["namespace"], plural, meta["name"], obj, _request_timeout=REQUEST_TIMEOUT
                )
            else:
                api.replace_cluster_custom_object(
                    group, version, plural, meta["name"], obj, _request_timeout=REQUEST_TIMEOUT
                )
            written += 1
        except ApiException as err:
            if err.status not in (404, 409):
                raise
    return written


class DynamicKubernetes:
    """``KubernetesObjects`` on the Kubernetes dynamic client (discovery is cached per process)."""

    def __init__(self, api_client: client.ApiClient, recorder: CallRecorder, field_manager: str) -> None:
        # A discovery cache of this process only: the client's default file in the temp dir is shared by every
        # process on the host and would hide CRDs installed or removed since another process wrote it.
        self._api_client = api_client
        self._client = self._new_client()
        self._recorder = recorder
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

    def _run(self, operation: str, action: Callable[[], _T]) -> _T:
        with recorded(self._recorder, ADAPTER, operation):
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
                    serializer=_decoded,
                    _request_timeout=REQUEST_TIMEOUT,
                ),
            )
        except (DynamicApiError, ApiException) as err:
            if getattr(err, "status", None) == 409:
                raise Conflict(f"{manifest['kind']} {meta.get('namespace', '')}/{meta['name']} changed") from err
            if getattr(err, "status", None) == 403 and "NamespaceTerminating" in str(getattr(err, "body", "")):
                raise NamespaceTerminating(f"namespace {meta.get('namespace')} is being deleted") from err
            if (refused := _refusal(manifest, err)) is not None:
                raise refused from None  # the original's body could quote a Secret's data
            raise
        applied: Manifest = result
        return applied

    def get(self, api_version: str, kind: str, name: str, *, namespace: str | None = None) -> Manifest | None:
        resource = self._resource(api_version, kind)
        try:
            result = self._run(
                "get",
                lambda: resource.get(
                    name=name, namespace=namespace, serializer=_decoded, _request_timeout=REQUEST_TIMEOUT
                ),
            )
        except (NotFoundError, ApiException) as err:
            if getattr(err, "status", None) == 404:
                return None
            raise
        found: Manifest = result
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
            lambda: resource.get(
                namespace=namespace,
                label_selector=label_selector,
                serializer=_decoded,
                _request_timeout=REQUEST_TIMEOUT,
            ),
        )
        items: list[Manifest] = result["items"]
        for item in items:
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    def create(self, manifest: Manifest) -> Manifest:
        """Create a new object (e.g. an Event, named by ``metadata.generateName``); raises when the API refuses."""
        resource = self._resource(manifest["apiVersion"], manifest["kind"])
        created: Manifest = self._run(
            "create",
            lambda: resource.create(
                body=manifest,
                namespace=manifest["metadata"].get("namespace"),
                field_manager=self._field_manager,
                serializer=_decoded,
                _request_timeout=REQUEST_TIMEOUT,
            ),
        )
        return created

    def delete(self, api_version: str, kind: str, name: str, *, namespace: str | None = None) -> bool:
        resource = self._resource(api_version, kind)
        try:
            self._run(
                "delete",
                lambda: resource.delete(
                    name=name, namespace=namespace, serializer=_decoded, _request_timeout=REQUEST_TIMEOUT
                ),
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
                    serializer=_decoded,
                    _request_timeout=REQUEST_TIMEOUT,
                ),
            )
        except (NotFoundError, ApiException) as err:
            if getattr(err, "status", None) == 404:
                return False
            raise
        return True
