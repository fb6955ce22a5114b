"""``plinth convert``: rewrite the Plinth objects in YAML manifests (a GitOps repository) to another API version.

Offline and exact (``api.conversion``). The YAML is edited in place, node by node, so comments, key order and
formatting of everything that did not move are kept; a moved field keeps its value, not the comments around it.
Documents that are not Plinth objects, or already at the version asked for, are left byte for byte as they were.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from plinth.operator.api.conversion import BETA, MOVES, VERSIONS, anchors, at_path, convert
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap


@dataclass
class Converted:
    text: str
    objects: int  # how many objects changed version


def _carry_comments(before: CommentedMap, after: Any, api_version: str) -> None:
    """A moved field keeps the comment at the end of its line."""
    up = api_version == BETA
    for pattern, moves in MOVES[before["kind"]]:
        for at, source in anchors(before, pattern):
            target = at_path(after, at)
            for move in moves:
                src, dst = (move.alpha, move.beta) if up else (move.beta, move.alpha)
                src_parent, dst_parent = at_path(source, src[:-1]), at_path(target, dst[:-1])
                if isinstance(src_parent, CommentedMap) and isinstance(dst_parent, CommentedMap):
                    comment = src_parent.ca.items.get(src[-1])
                    if comment is not None and dst[-1] in dst_parent:
                        dst_parent.ca.items[dst[-1]] = comment


def _convert_node(doc: Any, api_version: str) -> tuple[Any, int]:
    """*doc* at *api_version* if it is a Plinth object (or a List of them), and how many objects changed."""
    if not isinstance(doc, CommentedMap):
        return doc, 0
    if str(doc.get("kind", "")).endswith("List") and isinstance(doc.get("items"), list):
        changed = 0
        for i, item in enumerate(doc["items"]):
            doc["items"][i], n = _convert_node(item, api_version)
            changed += n
        return doc, changed
    if doc.get("kind") not in MOVES or doc.get("apiVersion") not in VERSIONS or doc.get("apiVersion") == api_version:
        return doc, 0
    # The moved values are YAML nodes as they were, with their flow style and the comments inside them.
    converted = convert(doc, api_version)
    _carry_comments(doc, converted, api_version)
    return converted, 1


def convert_text(text: str, api_version: str) -> Converted:
    """Every Plinth object in the YAML stream *text* at *api_version*."""
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long line the user wrote
    yaml.indent(mapping=2, sequence=4, offset=2)  # "  - item" under its key, as Kubernetes manifests are written
    docs, changed = [], 0
    for doc in yaml.load_all(text):
        converted, n = _convert_node(doc, api_version)
        docs.append(converted)
        changed += n
    if not changed:
        return Converted(text, 0)
    out = io.StringIO()
    yaml.dump_all(docs, out)
    return Converted(out.getvalue(), changed)
