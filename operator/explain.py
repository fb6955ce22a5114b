"""``plinth explain``: a Plinth object, its children and their Pods as a tree, with the blocker marked.

Reading is split from rendering: ``gather`` asks the API server (only get and list, what a team member may do in
their namespace), ``render`` and ``as_json`` are pure, so the output is golden-tested. Blockers are read by
``plinth.operator.blockers``. Secret values never reach the output: a Secret is shown by its name and number of
keys.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException
from plinth.adapters.kubernetes import KubernetesObjects, Manifest
from plinth.operator import blockers
from plinth.operator.api.served import STORED_API_VERSION
from plinth.operator.blockers import Blocker
from plinth.operator.builders import model as model_builder
from plinth.operator.builders import preview as preview_builder
from plinth.operator.builders import quota as quota_builder
from plinth.operator.reconcilers import modeldeployment, namespacequota, previewenvironment
from plinth.operator.reconcilers.workloads import ENDPOINT_SLICE

API = STORED_API_VERSION
KINDS = {
    "modeldeployment": "ModelDeployment",
    "modeldeployments": "ModelDeployment",
    "md": "ModelDeployment",
    "previewenvironment": "PreviewEnvironment",
    "previewenvironments": "PreviewEnvironment",
    "pe": "PreviewEnvironment",
    "namespacequota": "NamespaceQuota",
    "namespacequotas": "NamespaceQuota",
    "nsq": "NamespaceQuota",
}
#: What a kind's children are, in the order they are shown (optional APIs are skipped when not served): each kind's
#: reconciler says.
CHILD_KINDS: dict[str, tuple[tuple[str, str], ...]] = {
    "ModelDeployment": modeldeployment.KIND.owned(),
    "PreviewEnvironment": previewenvironment.KIND.owned(),
    "NamespaceQuota": namespacequota.KIND.owned(),
}
OWNER_LABELS = {
    "ModelDeployment": model_builder.OWNER_LABEL,
    "PreviewEnvironment": preview_builder.OWNER_LABEL,
    "NamespaceQuota": quota_builder.OWNER_LABEL,
}


@dataclass
class Node:
    """One object of the tree: its state in a few words, and the blocker it shows itself (if any)."""

    kind: str
    name: str
    namespace: str | None
    state: str
    detail: str = ""
    blocker: Blocker | None = None
    children: list[Node] = field(default_factory=list)

    def walk(self) -> Iterable[Node]:
        yield self
        for child in self.children:
            yield from child.walk()

    def blocking(self) -> Blocker | None:
        """The blocker of the whole subtree: one only a person can clear first."""
        return blockers.first(node.blocker for node in self.walk())


def parse_target(target: str) -> tuple[str, str]:
    """``md/iris`` -> (``ModelDeployment``, ``iris``)."""
    kind, _, name = target.partition("/")
    if kind.lower().removesuffix(".plinth.dev") not in KINDS or not name:
        raise ValueError(f"{target!r}: want KIND/NAME, KIND one of md, pe, nsq (or their full names)")
    return KINDS[kind.lower().removesuffix(".plinth.dev")], name


def _ready(obj: Manifest) -> tuple[str, str]:
    conditions = {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}
    ready = conditions.get("Ready")
    if ready is None:
        return "Unknown", "no status yet: is the operator running?"
    current = ready.get("observedGeneration") in (None, obj["metadata"].get("generation"))
    state = "Ready" if ready.get("status") == "True" and current else "NotReady"
    stalled = conditions.get("Stalled", {})
    shown = stalled if stalled.get("status") == "True" else ready
    return state, f"{shown.get('reason', '')}: {shown.get('message', '')}".strip(": ")


class Reader:
    """What ``gather`` reads, with the served-API and event lookups cached for one explain."""

    def __init__(self, kube: KubernetesObjects) -> None:
        self.kube = kube
        self._served: dict[tuple[str, str], bool] = {}
        self._events: dict[str, dict[str, list[Manifest]]] = {}
        self._slices: dict[str, list[Manifest] | None] = {}
        self._pods: dict[str | None, list[Manifest]] = {}

    def served(self, api_version: str, kind: str) -> bool:
        key = (api_version, kind)
        if key not in self._served:
            self._served[key] = self.kube.has_api(api_version, kind)
        return self._served[key]

    def pods(self, namespace: str | None) -> list[Manifest]:
        """The namespace's Pods, read once per explain."""
        if namespace not in self._pods:
            self._pods[namespace] = self.kube.list("v1", "Pod", namespace=namespace)
        return self._pods[namespace]

    def endpoint_slices(self, namespace: str) -> list[Manifest] | None:
        """The namespace's EndpointSlices; None when this user may not list them (then no Service is judged)."""
        if namespace not in self._slices:
            try:
                self._slices[namespace] = self.kube.list(*ENDPOINT_SLICE, namespace=namespace)
            except ApiException:
                self._slices[namespace] = None
        return self._slices[namespace]

    def events(self, namespace: str, name: str) -> list[Manifest]:
        if namespace not in self._events:
            by_name: dict[str, list[Manifest]] = defaultdict(list)
            for event in self.kube.list("v1", "Event", namespace=namespace):
                by_name[(event.get("involvedObject") or {}).get("name", "")].append(event)
            self._events[namespace] = by_name
        return self._events[namespace].get(name, [])


def gather(kube: KubernetesObjects, kind: str, name: str, namespace: str | None) -> Node:
    """The tree of *kind*/*name*, read from the API server. Raises LookupError when the object does not exist."""
    reader = Reader(kube)
    obj = kube.get(API, kind, name, namespace=None if kind == "NamespaceQuota" else namespace)
    if obj is None:
        where = f" in namespace {namespace}" if namespace and kind != "NamespaceQuota" else ""
        raise LookupError(f"{kind} {name} not found{where}")
    return _owner(reader, obj)


def _owner(reader: Reader, obj: Manifest) -> Node:
    kind, meta = obj["kind"], obj["metadata"]
    state, detail = _ready(obj)
    node = Node(kind, meta["name"], meta.get("namespace"), state, detail)
    selector = f"{OWNER_LABELS[kind]}={meta['name']}"
    if kind == "PreviewEnvironment":
        target = (obj.get("status") or {}).get("namespace") or preview_builder.namespace_name(dict(obj))
        namespace = reader.kube.get("v1", "Namespace", target)
        phase = ((namespace or {}).get("status") or {}).get("phase", "")
        holder = Node("Namespace", target, None, phase or "Missing", "" if namespace else "not created yet")
        node.children.append(holder)
        holder.children = _children(reader, kind, target, selector)
    elif kind == "NamespaceQuota":
        node.children = _children(reader, kind, None, selector)
    else:
        node.children = _children(reader, kind, meta["namespace"], selector)
    return node


def _children(reader: Reader, owner_kind: str, namespace: str | None, selector: str) -> list[Node]:
    nodes: list[Node] = []
    for api_version, kind in CHILD_KINDS[owner_kind]:
        if api_version not in ("v1", "apps/v1") and not reader.served(api_version, kind):
            continue
        for child in sorted(
            reader.kube.list(api_version, kind, namespace=namespace, label_selector=selector),
            key=lambda c: (c["metadata"].get("namespace", ""), c["metadata"]["name"]),
        ):
            if kind == "ModelDeployment":
                nodes.append(_owner(reader, child))
            elif kind == "Deployment":
                nodes.append(_deployment(reader, child, reader.pods(namespace)))
            elif kind == "Service" and namespace is not None:
                nodes.append(_service(reader, child, reader.pods(namespace)))
            else:
                nodes.append(_plain(child))
    return nodes


def _deployment(reader: Reader, obj: Manifest, pods: list[Manifest]) -> Node:
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    want = spec.get("replicas", 1)
    available = status.get("availableReplicas") or 0
    state = "Ready" if available >= want else "NotReady"
    node = Node("Deployment", meta["name"], meta.get("namespace"), state, f"{available}/{want} available")
    node.blocker = blockers.deployment(obj)
    match = (spec.get("selector") or {}).get("matchLabels") or {}
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        labels = pod["metadata"].get("labels") or {}
        if not match or any(labels.get(k) != v for k, v in match.items()):
            continue
        pod_name, pod_namespace = pod["metadata"]["name"], pod["metadata"].get("namespace", "")
        blocker = blockers.pod(pod, reader.events(pod_namespace, pod_name))
        phase = (pod.get("status") or {}).get("phase", "")
        restarts = sum(c.get("restartCount") or 0 for c in (pod.get("status") or {}).get("containerStatuses") or [])
        detail = phase + (f", {restarts} restarts" if restarts else "")
        state = "Ready" if blocker is None else "NotReady"
        node.children.append(Node("Pod", pod_name, pod_namespace, state, detail, blocker))
    return node


def _service(reader: Reader, obj: Manifest, pods: list[Manifest]) -> Node:
    """A Service, judged only while a Pod it selects is Ready (a sleeping preview's Services rightly list nobody):
    then it must list an endpoint."""
    node = _plain(obj)
    meta, selector = obj["metadata"], (obj.get("spec") or {}).get("selector") or {}
    ready = [
        p
        for p in pods
        if selector
        and all((p["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
        and blockers.pod(p) is None
    ]
    slices = reader.endpoint_slices(meta.get("namespace", "")) if ready else None
    if slices is not None:
        node.blocker = blockers.service(meta["name"], slices)
        node.state = "NotReady" if node.blocker is not None else "Ready"
    return node


def _plain(obj: Manifest) -> Node:
    """A child whose readiness Plinth does not judge; shown with a word on what it is."""
    kind, meta, spec = obj["kind"], obj["metadata"], obj.get("spec") or {}
    detail = ""
    if kind == "Service":
        ports = ", ".join(str(p.get("port")) for p in spec.get("ports") or [])
        detail = f"{spec.get('clusterIP', '')}:{ports}"
    elif kind == "Ingress":
        hosts = [r.get("host", "*") for r in spec.get("rules") or []]
        detail = f"class {spec.get('ingressClassName', '(default)')}, hosts {', '.join(hosts)}"
    elif kind == "Secret":
        detail = f"{len(obj.get('data') or {})} keys"  # the count only; values are never shown
    elif kind == "HorizontalPodAutoscaler":
        status = obj.get("status") or {}
        detail = f"{status.get('currentReplicas', 0)} replicas ({spec.get('minReplicas', 1)}-{spec.get('maxReplicas')})"
    elif kind == "ResourceQuota":
        used = (obj.get("status") or {}).get("used") or {}
        hard = spec.get("hard") or {}
        detail = ", ".join(f"{key} {used.get(key, '0')}/{limit}" for key, limit in list(hard.items())[:3])
        status = obj.get("status") or {}
        if (uncounted := blockers.resource_quota(meta["name"], meta.get("namespace"), hard, status)) is not None:
            return Node(kind, meta["name"], meta.get("namespace"), "NotReady", detail, uncounted)
        return Node(kind, meta["name"], meta.get("namespace"), "Ready", detail)
    return Node(kind, meta["name"], meta.get("namespace"), "-", detail)


def not_ready(kube: KubernetesObjects, namespace: str | None) -> list[Node]:
    """Every Plinth object that is not Ready, in *namespace* (None: all namespaces), each with its tree."""
    found: list[Node] = []
    for kind in ("NamespaceQuota", "PreviewEnvironment", "ModelDeployment"):
        scope = None if kind == "NamespaceQuota" else namespace
        for obj in kube.list(API, kind, namespace=scope):
            if _ready(obj)[0] != "Ready":
                found.append(_owner(Reader(kube), obj))
    return found


def render(node: Node) -> str:
    """The tree as text, the blocker marked with ✗ and explained at the end."""
    blocker = node.blocking()
    lines = [_line(node, blocker)]

    def walk(children: list[Node], prefix: str) -> None:
        for index, child in enumerate(children):
            last = index == len(children) - 1
            lines.append(prefix + ("└─ " if last else "├─ ") + _line(child, blocker))
            walk(child.children, prefix + ("   " if last else "│  "))

    walk(node.children, "")
    if blocker is not None:
        verdict = "only a change can fix it (Stalled)" if blocker.stalled else "it may pass by itself (Reconciling)"
        lines += ["", f"Blocked by {blocker.describe()}", f"  {verdict}; {blocker.hint or 'read the message'}"]
    return "\n".join(lines) + "\n"


def _line(node: Node, blocker: Blocker | None) -> str:
    where = f"{node.namespace}/" if node.namespace and node.kind in OWNER_LABELS else ""
    mark = (
        "✗ "
        if blocker is not None and node.blocker == blocker
        else ("✓ " if node.state == "Ready" else ("• " if node.state == "NotReady" else "  "))
    )
    text = f"{mark}{node.kind} {where}{node.name}"
    if node.state not in ("-", ""):
        text += f"  {node.state}"
    if node.detail:
        text += f"  {node.detail}"
    if node.blocker is not None:
        text += f"  [{node.blocker.reason}: {node.blocker.message}]"
    return text


def as_json(node: Node) -> dict[str, Any]:
    blocker = node.blocking()
    return {
        "kind": node.kind,
        "name": node.name,
        "namespace": node.namespace,
        "state": node.state,
        "detail": node.detail,
        "blocker": node.blocker.as_json() if node.blocker else None,
        "blockedBy": blocker.as_json() if blocker and node.kind in OWNER_LABELS else None,
        "children": [as_json(child) for child in node.children],
    }
