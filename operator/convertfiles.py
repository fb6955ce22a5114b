"""``plinth convert``: rewrite the Plinth objects in YAML manifests (a GitOps repository) to another API version.

Offline and exact (``api.conversion``). The YAML is edited in place, node by node, so comments, key order and
formatting of everything that did not move are kept; a moved field keeps its value, not the comments around it.
Documents that are not Plinth objects, or already at the version asked for, are left byte for byte as they were.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from plinth.operator.api.conversion import MOVES, VERSIONS, convert
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq


@dataclass
class Converted:
    text: str
    objects: int  # how many objects changed version


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _sync(node: Any, target: Any) -> Any:
    """*node* (ruamel's, with its comments) made equal to *target*, keeping what already is."""
    if isinstance(node, CommentedMap) and isinstance(target, dict):
        for key in [k for k in node if k not in target]:
            del node[key]
        for key, value in target.items():
            node[key] = _sync(node[key], value) if key in node else _fresh(value)
        return node
    if isinstance(node, CommentedSeq) and isinstance(target, list) and len(node) == len(target):
        for i, value in enumerate(target):
            node[i] = _sync(node[i], value)
        return node
    return node if node == target else _fresh(target)


def _fresh(value: Any) -> Any:
    if isinstance(value, dict):
        out = CommentedMap()
        for key, item in value.items():
            out[key] = _fresh(item)
        return out
    if isinstance(value, list):
        return CommentedSeq([_fresh(v) for v in value])
    return value


def _convert_node(doc: Any, api_version: str) -> int:
    """Convert *doc* in place if it is a Plinth object (or a List of them); how many objects changed."""
    if not isinstance(doc, CommentedMap):
        return 0
    if doc.get("kind") == "List" or (str(doc.get("kind", "")).endswith("List") and "items" in doc):
        return sum(_convert_node(item, api_version) for item in doc.get("items") or [])
    if doc.get("kind") not in MOVES or doc.get("apiVersion") not in VERSIONS or doc.get("apiVersion") == api_version:
        return 0
    _sync(doc, convert(_plain(doc), api_version))
    return 1


def convert_text(text: str, api_version: str) -> Converted:
    """Every Plinth object in the YAML stream *text* at *api_version*."""
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long line the user wrote
    docs = list(yaml.load_all(text))
    changed = sum(_convert_node(doc, api_version) for doc in docs)
    if not changed:
        return Converted(text, 0)
    out = io.StringIO()
    yaml.dump_all(docs, out)
    return Converted(out.getvalue(), changed)
