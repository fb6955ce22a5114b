"""The Open Inference Protocol v2 REST API over the hosted model, as a Starlette (ASGI) application.

Routes are declared once, in `OPERATIONS`, with their models and error statuses; the router and the OpenAPI document
are both built from that table. Every response carries the model's name and version (`X-Model-Name`,
`X-Model-Version`) and a request id, so a client measuring a canary split can tell which version answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import anyio.to_thread
import orjson
from opentelemetry import trace
from plinth.serving import tensors, tracing
from plinth.serving.auth import RateLimiter, TokenFile
from plinth.serving.errors import APIError
from plinth.serving.host import ModelHost, State
from plinth.serving.metrics import Metrics
from plinth.serving.openapi import Operation, document
from plinth.serving.protocol import (
    ErrorResponse,
    InferenceRequest,
    InferenceResponse,
    MetadataTensor,
    ModelMetadataResponse,
    ServerMetadataResponse,
)
from plinth.serving.runtimes.base import InvalidInputError, Model
from plinth.serving.settings import Settings
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("plinth.serving.access")
log = logging.getLogger("plinth.serving")

SERVER_NAME = "plinth"
EXTENSIONS = ["binary_tensor_data"]
_MODEL = "/v2/models/{name}"
_VERSION = "/v2/models/{name}/versions/{version}"


def _version() -> str:
    try:
        return importlib.metadata.version("plinth")
    except importlib.metadata.PackageNotFoundError:
        return "0"


def _operations() -> list[Operation]:
    model_errors = (404, 503)
    ops = [
        Operation("GET", "/v2/health/live", "server_live", "200 while the server runs (liveness probe)."),
        Operation(
            "GET",
            "/v2/health/ready",
            "server_ready",
            "200 once the model is ready (readiness probe), else 503.",
            errors=(503,),
        ),
        Operation(
            "GET",
            "/v2",
            "server_metadata",
            "The server's name, version and extensions.",
            response=ServerMetadataResponse,
            protected=True,
        ),
    ]
    for base, suffix in ((_MODEL, ""), (_VERSION, "_version")):
        ops += [
            Operation(
                "GET",
                base,
                f"model_metadata{suffix}",
                "The model's platform, versions and signature.",
                response=ModelMetadataResponse,
                errors=model_errors,
                protected=True,
            ),
            Operation(
                "GET",
                f"{base}/ready",
                f"model_ready{suffix}",
                "200 once the model is ready, else 503.",
                errors=model_errors,
                protected=True,
            ),
            Operation(
                "POST",
                f"{base}/infer",
                f"model_infer{suffix}",
                "Run an inference.",
                request=InferenceRequest,
                response=InferenceResponse,
                errors=(400, *model_errors, 413, 500),
                protected=True,
            ),
        ]
    ops += [
        Operation("GET", "/v2/docs/openapi.json", "openapi", "This OpenAPI document."),
        Operation("GET", "/metrics", "metrics", "Prometheus metrics.", content_type="text/plain"),
    ]
    return ops


OPERATIONS = _operations()


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")


def _error(error: APIError) -> Response:
    return _json(error.body().model_dump(), error.status, error.headers)


Handler = Callable[[Request], Awaitable[Response]]


class Server:
    """The handlers, with the host, limits and metrics they share."""

    def __init__(self, settings: Settings, host: ModelHost, metrics: Metrics) -> None:
        self.settings = settings
        self.host = host
        self.metrics = metrics
        self.tokens = TokenFile(settings.auth_tokens_file) if settings.auth_tokens_file else None
        rate = settings.rate_limit_rps
        self.limiter = RateLimiter(rate, settings.rate_limit_burst or max(1, int(-(-rate // 1)))) if rate else None
        self.openapi = orjson.dumps(document(OPERATIONS, title="Plinth model server", version=_version()))

    # -- shared steps ---------------------------------------------------------------------------------------------

    def guard(self, request: Request) -> None:
        """Authentication (when tokens are configured), then the caller's rate limit."""
        client = "anonymous"
        if self.tokens is not None:
            client = self.tokens.authenticate(request.headers.get("authorization"))
            request.scope["plinth.client"] = client
        if self.limiter is not None:
            self.limiter.take(client)

    def resolve(self, request: Request, *, ready: bool = True) -> Model | None:
        """The model the URL names, or 404; when *ready*, also 503 until it is loaded."""
        name = request.path_params["name"]
        version = request.path_params.get("version")
        if name != self.settings.model_name:
            raise APIError(404, f"unknown model {name!r}: this server serves {self.settings.model_name!r}")
        if version is not None and version != self.settings.model_version:
            served = self.settings.model_version or "no versions"
            raise APIError(404, f"model {name!r} has no version {version!r}: this server serves {served!r}")
        if ready and self.host.state is not State.READY:
            raise APIError(503, f"model {name!r} is {self.host.state.value}", headers={"Retry-After": "1"})
        return self.host.model

    async def body(self, request: Request) -> bytes:
        limit = self.settings.max_request_bytes
        declared = request.headers.get("content-length", "")
        too_large = APIError(413, f"the request body is larger than {limit} bytes (MAX_REQUEST_BYTES)")
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        encoding = request.headers.get("content-encoding", "identity").lower()
        if encoding != "identity":
            raise APIError(415, f"Content-Encoding {encoding!r} is not supported; send the body uncompressed")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    # -- handlers -------------------------------------------------------------------------------------------------

    async def server_live(self, request: Request) -> Response:
        return Response(status_code=200)

    async def server_ready(self, request: Request) -> Response:
        return Response(status_code=200 if self.host.state is State.READY else 503)

    async def server_metadata(self, request: Request) -> Response:
        self.guard(request)
        return _json(ServerMetadataResponse(name=SERVER_NAME, version=_version(), extensions=EXTENSIONS).model_dump())

    async def model_metadata(self, request: Request) -> Response:
        self.guard(request)
        model = self.resolve(request)
        assert model is not None
        version = self.settings.model_version
        metadata = ModelMetadataResponse(
            name=self.settings.model_name,
            versions=[version] if version else None,
            platform=self.host.platform,
            inputs=[
                MetadataTensor(name=s.name, datatype=s.datatype, shape=list(s.shape)) for s in model.signature.inputs
            ],
            outputs=[
                MetadataTensor(name=s.name, datatype=s.datatype, shape=list(s.shape)) for s in model.signature.outputs
            ],
        )
        return _json(metadata.model_dump(exclude_none=True))

    async def model_ready(self, request: Request) -> Response:
        self.guard(request)
        self.resolve(request, ready=False)
        return Response(status_code=200 if self.host.state is State.READY else 503)

    async def model_infer(self, request: Request) -> Response:
        self.guard(request)
        model = self.resolve(request)
        assert model is not None
        body = await self.body(request)
        header_length = request.headers.get(tensors.BINARY_HEADER)
        content, json_length = await anyio.to_thread.run_sync(self._infer, model, body, header_length)
        if json_length is None:
            return Response(content, media_type="application/json")
        return Response(
            content,
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(json_length)},
        )

    def _infer(self, model: Model, body: bytes, header_length: str | None) -> tuple[bytes, int | None]:
        """Parse, check, predict and encode: CPU work, run off the event loop so probes stay answered."""
        parsed, binary = tensors.parse_request(body, header_length)
        inputs = tensors.decode_inputs(parsed, binary, model.signature)
        outputs = tensors.requested_outputs(parsed, model.signature)
        try:
            results = model.predict(inputs, [output.name for output in outputs])
        except InvalidInputError as error:
            raise APIError(400, f"the model rejected the input: {error}") from None
        head: dict[str, Any] = {"model_name": self.settings.model_name}
        if self.settings.model_version:
            head["model_version"] = self.settings.model_version
        if parsed.id is not None:
            head["id"] = parsed.id
        return tensors.encode_response(head, outputs, results)

    async def openapi_document(self, request: Request) -> Response:
        return Response(self.openapi, media_type="application/json")

    async def prometheus(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _handled(handler: Handler) -> Handler:
    """APIError becomes its response; anything else is a 500 with the cause logged, never a traceback to clients."""

    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except APIError as error:
            return _error(error)
        except Exception as error:
            log.exception("request failed", extra={"path": request.url.path})
            return _error(APIError(500, f"internal error ({type(error).__name__}); see the server log"))

    return run


class Observe:
    """One log line and the request metrics per request; the model's name, version and a request id on every
    response. Pure ASGI (no BaseHTTPMiddleware): it adds no task or body copy to the hot path."""

    def __init__(self, app: ASGIApp, settings: Settings, metrics: Metrics, tracer: trace.Tracer | None) -> None:
        self.app = app
        self.tracer = tracer
        self.model = settings.model_name
        self.version = settings.model_version
        self.metrics = metrics
        self.headers = [(b"x-model-name", self.model.encode())]
        if self.version:
            self.headers.append((b"x-model-version", self.version.encode()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")[:128]
        request_id = given.decode("latin-1") if given else uuid.uuid4().hex
        status = 500

        async def respond(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    *self.headers,
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        span = None
        if self.tracer is not None:
            span = self.tracer.start_span(
                scope["method"], context=tracing.incoming_context(scope["headers"]), kind=trace.SpanKind.SERVER
            )
        in_flight = self.metrics.in_flight.labels(self.model, self.version)
        in_flight.inc()
        try:
            await self.app(scope, receive, respond)
        finally:
            in_flight.dec()
            seconds = time.perf_counter() - started
            route = scope.get("route")
            endpoint = getattr(route, "name", None) or "unmatched"
            self.metrics.requests.labels(self.model, self.version, endpoint, f"{status // 100}xx").inc()
            self.metrics.duration.labels(self.model, self.version, endpoint).observe(seconds)
            extra = {
                "request_id": request_id,
                "method": scope["method"],
                "path": scope["path"],
                "endpoint": endpoint,
                "model": self.model,
                "version": self.version,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
            }
            if "plinth.client" in scope:
                extra["client"] = scope["plinth.client"]
            if span is not None:
                self._end(span, scope, route, status, request_id)
                extra["trace_id"] = tracing.trace_id(span)
            access_log.info("request", extra=extra)

    def _end(self, span: trace.Span, scope: Scope, route: Any, status: int, request_id: str) -> None:
        template = getattr(route, "path", None)
        if template:
            span.update_name(f"{scope['method']} {template}")
            span.set_attribute("http.route", template)
        span.set_attributes(
            {
                "http.request.method": scope["method"],
                "url.path": scope["path"],
                "http.response.status_code": status,
                "plinth.model.name": self.model,
                "plinth.model.version": self.version,
                "plinth.request_id": request_id,
            }
        )
        if status >= 500:
            span.set_status(trace.StatusCode.ERROR)
        span.end()


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    message = {404: f"no route {request.url.path}", 405: f"{request.method} is not allowed on {request.url.path}"}
    body = ErrorResponse(error=message.get(error.status_code, error.detail))
    return _json(body.model_dump(), error.status_code, error.headers)


def create_app(
    settings: Settings,
    *,
    metrics: Metrics | None = None,
    tracer: trace.Tracer | None = None,
    on_load_failure: Callable[[], None] | None = None,
) -> Starlette:
    """The application; loading the model starts with it. *on_load_failure* is called when loading fails (the
    command line stops the server: a Pod that cannot load its model should restart, visibly)."""
    metrics = metrics or Metrics()
    host = ModelHost(settings, metrics)
    server = Server(settings, host, metrics)
    handlers: dict[str, Handler] = {
        "server_live": server.server_live,
        "server_ready": server.server_ready,
        "server_metadata": server.server_metadata,
        "model_metadata": server.model_metadata,
        "model_ready": server.model_ready,
        "model_infer": server.model_infer,
        "openapi": server.openapi_document,
        "metrics": server.prometheus,
    }
    routes = [
        Route(op.path, _handled(handlers[op.name.removesuffix("_version")]), methods=[op.method], name=op.name)
        for op in OPERATIONS
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(host.load())
        if on_load_failure is not None:
            task.add_done_callback(lambda _: on_load_failure() if host.state is State.FAILED else None)
        yield
        task.cancel()

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _http_error})
    app.state.host = host
    app.state.metrics = metrics
    app.add_middleware(Observe, settings=settings, metrics=metrics, tracer=tracer)
    return app
