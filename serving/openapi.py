"""The OpenAPI document, generated from the route table and the protocol's pydantic models: the server validates with
the same models the document shows, so the two cannot disagree."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from plinth.serving.protocol import ErrorResponse
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

_REASONS = {
    200: "OK",
    400: "The request is malformed or does not match the model's signature; `details` names each field.",
    401: "No bearer token (authentication is enabled).",
    403: "The bearer token is not accepted.",
    404: "No such model or version.",
    413: "The request body is larger than MAX_REQUEST_BYTES.",
    429: "The token's rate limit is exceeded; retry after `Retry-After` seconds.",
    500: "The model failed on valid input.",
    503: "The model is not ready yet (loading).",
}


@dataclass(frozen=True)
class Operation:
    """One route: what it does, what it takes and what it answers."""

    method: str
    path: str
    name: str
    summary: str
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    content_type: str = "application/json"
    errors: tuple[int, ...] = ()
    protected: bool = False


def document(operations: Sequence[Operation], *, title: str, version: str) -> dict[str, Any]:
    models = {m for op in operations for m in (op.request, op.response) if m is not None} | {ErrorResponse}
    ordered = sorted(models, key=lambda m: m.__name__)
    _, schemas = models_json_schema(
        [
            (model, "validation" if any(op.request is model for op in operations) else "serialization")
            for model in ordered
        ],
        ref_template="#/components/schemas/{model}",
    )

    def ref(model: type[BaseModel]) -> dict[str, str]:
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        ok: dict[str, Any] = {"description": _REASONS[200]}
        if op.response is not None:
            ok["content"] = {op.content_type: {"schema": ref(op.response)}}
        elif op.content_type != "application/json":
            ok["content"] = {op.content_type: {"schema": {"type": "string"}}}
        responses: dict[str, Any] = {"200": ok}
        for status in sorted({*op.errors, *((401, 403, 429) if op.protected else ())}):
            responses[str(status)] = {
                "description": _REASONS[status],
                "content": {"application/json": {"schema": ref(ErrorResponse)}},
            }
        entry: dict[str, Any] = {"operationId": op.name, "summary": op.summary, "responses": responses}
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{(\w+)}", op.path)
        ]
        if parameters:
            entry["parameters"] = parameters
        if op.request is not None:
            entry["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref(op.request)}}}
        if op.protected:
            entry["security"] = [{"bearer": []}]
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
