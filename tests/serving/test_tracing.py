"""Traces from a real server process over OTLP/HTTP: one server span per request that continues the caller's W3C
`traceparent`, named by its route, with the trace id in the request's log line."""

from __future__ import annotations

from typing import Any

from tests.conftest import wait_for
from tests.otlp import Collector
from tests.serving.conftest import Iris, ServerFactory

INFER = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}


def test_request_spans_continue_the_callers_trace(server_factory: ServerFactory, iris: Iris) -> None:
    collector = Collector()
    server = server_factory(
        MODEL_URI=str(iris.joblib_path),
        MODEL_VERSION="3",
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="100",
    ).wait_ready()
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    reply = server.infer(INFER, traceparent=f"00-{trace_id}-{parent}-01")
    assert reply.status == 200
    bad = server.infer({"inputs": []}, traceparent=f"00-{trace_id}-{parent}-01")
    assert bad.status == 400

    def spans() -> list[dict[str, Any]]:
        return [s for s in collector.spans if s["trace_id"] == trace_id]

    found = wait_for(lambda: len(spans()) == 2 and spans(), timeout=30, what="two request spans in the caller's trace")
    assert {s["name"] for s in found} == {"POST /v2/models/{name}/infer"}
    assert all(s["parent"] == parent for s in found)
    statuses = sorted(s["attributes"]["http.response.status_code"] for s in found)
    assert statuses == [200, 400]
    assert all(s["attributes"]["plinth.model.version"] == "3" for s in found)
    request_ids = {reply.headers["x-request-id"], bad.headers["x-request-id"]}
    assert {s["attributes"]["plinth.request_id"] for s in found} == request_ids
    logged = [line for line in server.log_lines() if line.get("request_id") in request_ids]
    assert {line["trace_id"] for line in logged} == {trace_id}
    # a request without traceparent starts a trace of its own
    server.request("GET", "/v2/models/iris")
    wait_for(
        lambda: any(s["name"] == "GET /v2/models/{name}" and s["parent"] == "" for s in collector.spans),
        timeout=30,
        what="a root span for the metadata request",
    )
