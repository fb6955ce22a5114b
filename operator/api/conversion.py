"""One object, either version: v1alpha1 <-> v1beta1, exact both ways.

v1beta1 differs from v1alpha1 only by where some fields live (``MOVES``, listed for users in docs/api-versions.md).
Converting moves them; nothing else changes (metadata, status, every other field are copied as they are). The one
thing v1alpha1 cannot express is an empty group that v1beta1 added (``scaling: {}``): it is kept in the annotation
``STASH_ANNOTATION`` and put back when the object is converted to v1beta1 again, so every round trip is exact.

Pure functions on manifests: the conversion webhook, ``plinth convert`` and the operator (which works on the
v1alpha1 models) all use these.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from plinth.operator.api import v1alpha1, v1beta1

Manifest = dict[str, Any]
Path = tuple[str | int, ...]

ALPHA, BETA = v1alpha1.API_VERSION, v1beta1.API_VERSION
VERSIONS = (ALPHA, BETA)
# On a v1alpha1 object: what of its v1beta1 form v1alpha1 has no field for (JSON), so that converting back is exact.
STASH_ANNOTATION = "plinth.dev/v1beta1-fields"


@dataclass(frozen=True)
class Move:
    """A field at *alpha* in v1alpha1 lives at *beta* in v1beta1 (paths relative to where the moves apply)."""

    alpha: tuple[str, ...]
    beta: tuple[str, ...]
    why: str


MODEL_SPEC = (
    Move(("replicas",), ("scaling", "replicas"), "a fixed count or autoscaling: one field says how many replicas"),
    Move(("autoscaling",), ("scaling", "autoscaling"), "a fixed count or autoscaling: one field says how many"),
    Move(("auth",), ("access", "auth"), "who may call the model and how fast, in one place"),
    Move(("rateLimit",), ("access", "rateLimit"), "who may call the model and how fast, in one place"),
    Move(("canary", "version"), ("canary", "model", "version"), "a canary names its model as spec.model does"),
    Move(("canary", "uri"), ("canary", "model", "uri"), "a canary names its model as spec.model does"),
)
PREVIEW_SPEC = (
    Move(("ttl",), ("lifecycle", "ttl"), "when a preview stops costing, in one place"),
    Move(("sleepAfter",), ("lifecycle", "sleepAfter"), "when a preview stops costing, in one place"),
)
QUOTA_SPEC = (
    Move(("namespaceSelector",), ("namespaces", "selector"), "which namespaces a quota governs, in one field"),
    Move(("namespaces",), ("namespaces", "names"), "which namespaces a quota governs, in one field"),
)
# Per kind: where in the object (``*``: every item of a list) which moves apply.
MOVES: dict[str, tuple[tuple[tuple[str, ...], tuple[Move, ...]], ...]] = {
    "ModelDeployment": ((("spec",), MODEL_SPEC),),
    "PreviewEnvironment": ((("spec",), PREVIEW_SPEC), (("spec", "models", "*", "spec"), MODEL_SPEC)),
    "NamespaceQuota": ((("spec",), QUOTA_SPEC),),
}


class ConversionError(ValueError):
    """The object cannot be converted: not a Plinth kind, or an apiVersion neither version has."""


def anchors(node: Any, pattern: tuple[str, ...], at: Path = ()) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every dict in *node* at *pattern*, with its path."""
    if not pattern:
        if isinstance(node, dict):
            yield at, node
        return
    head, rest = pattern[0], pattern[1:]
    if head == "*":
        if isinstance(node, list):
            for i, item in enumerate(node):
                yield from anchors(item, rest, (*at, i))
    elif isinstance(node, dict) and head in node:
        yield from anchors(node[head], rest, (*at, head))


_MISSING = object()


def _pop(node: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            return _MISSING
        node = child
    return node.pop(path[-1], _MISSING)


def _put(node: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = type(node)()  # a new group is the same kind of mapping (a YAML library's keeps order)
        node = child
    node[path[-1]] = value


def at_path(node: Any, path: Path) -> Any:
    for key in path:
        if isinstance(node, dict):
            if key not in node:
                return _MISSING
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            node = node[key]
        else:
            return _MISSING
    return node


def _groups(moves: tuple[Move, ...]) -> list[tuple[str, ...]]:
    """The containers v1beta1 added: prefixes of a beta path that hold no v1alpha1 field (``namespaces``, a list in
    v1alpha1, is one: an object in v1beta1)."""
    alpha_prefixes = {m.alpha[:n] for m in moves for n in range(1, len(m.alpha))}
    found: list[tuple[str, ...]] = []
    for move in moves:
        for n in range(1, len(move.beta)):
            prefix = move.beta[:n]
            if prefix not in alpha_prefixes and prefix not in found:
                found.append(prefix)
    return sorted(found, key=len, reverse=True)  # innermost first


def _moved(obj: Manifest, moves_of_kind: Any, *, up: bool) -> list[tuple[Path, Any]]:
    """Apply the kind's moves in place (v1alpha1 to v1beta1 when *up*); going down, returns what v1alpha1 cannot
    hold (the v1beta1 groups that moving emptied nothing out of), removed from the object."""
    stash: list[tuple[Path, Any]] = []
    for pattern, moves in moves_of_kind:
        for at, node in list(anchors(obj, pattern)):
            sources = [(m, _pop(node, m.alpha if up else m.beta)) for m in moves]
            if not up:
                emptied = {m.beta[:n] for m, value in sources if value is not _MISSING for n in range(1, len(m.beta))}
                for group in _groups(moves):
                    value = at_path(node, group)
                    if value is not _MISSING and (value or group not in emptied):
                        stash.append(((*at, *group), value))
                    if value is not _MISSING:
                        _pop(node, group)
            for move, value in sources:
                if value is not _MISSING:
                    _put(node, move.alpha if not up else move.beta, value)
    return stash


def convert(obj: Manifest, api_version: str) -> Manifest:
    """*obj* (a Plinth object at either version) at *api_version*, as a new manifest; *obj* is left as it is."""
    kind, source = obj.get("kind"), obj.get("apiVersion")
    if kind not in MOVES:
        raise ConversionError(f"not a Plinth kind: {kind!r}")
    if source not in VERSIONS or api_version not in VERSIONS:
        raise ConversionError(f"cannot convert {kind} from {source!r} to {api_version!r}: Plinth serves {VERSIONS}")
    out = copy.deepcopy(obj)
    out["apiVersion"] = api_version
    if source == api_version:
        return out
    if api_version == BETA:
        annotations = out.get("metadata", {}).get("annotations") or {}
        stashed = annotations.pop(STASH_ANNOTATION, None)
        if not annotations and "annotations" in out.get("metadata", {}):
            del out["metadata"]["annotations"]
        _moved(out, MOVES[kind], up=True)
        for path, value in _parse_stash(stashed):
            _restore(out, path, value)
        return out
    stash = _moved(out, MOVES[kind], up=False)
    if stash:
        meta = out.setdefault("metadata", {})
        meta.setdefault("annotations", {})[STASH_ANNOTATION] = json.dumps(
            [{"path": list(path), "value": value} for path, value in stash], separators=(",", ":"), sort_keys=True
        )
    return out


INTERNAL = ALPHA


def internal(obj: Manifest) -> Manifest:
    """A Plinth object as the operator works on it (the v1alpha1 models), whichever version it was read at; the
    object itself when it is one already."""
    if obj.get("apiVersion") not in VERSIONS or obj["apiVersion"] == INTERNAL or obj.get("kind") not in MOVES:
        return obj
    return convert(obj, INTERNAL)


def _parse_stash(text: str | None) -> list[tuple[Path, Any]]:
    """The stash annotation's entries; one a user broke by hand is ignored (it holds empty groups only)."""
    if not text:
        return []
    try:
        entries = json.loads(text)
        return [(tuple(e["path"]), e["value"]) for e in entries if isinstance(e.get("path"), list)]
    except (ValueError, TypeError, AttributeError, KeyError):
        return []


def _restore(obj: Manifest, path: Path, value: Any) -> None:
    """Put a stashed group back where it was, unless its parent no longer exists (the user removed it meanwhile)."""
    parent = at_path(obj, path[:-1])
    if isinstance(parent, dict) and isinstance(path[-1], str):
        existing = parent.get(path[-1])
        if isinstance(existing, dict) and isinstance(value, dict):
            parent[path[-1]] = {**value, **existing}
        elif existing is None:
            parent[path[-1]] = value
