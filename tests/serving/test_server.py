"""The server as a real process over real HTTP: the protocol's routes, predictions equal to the estimator's own,
every bad request a 4xx naming its field, and the response headers that let a client measure a canary split."""

from __future__ import annotations

import http.client
import json
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.serving.conftest import Iris, Server, ServerFactory


def _body(features: np.ndarray[Any, Any], datatype: str = "FP64", **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "input", "shape": list(features.shape), "datatype": datatype, "data": features.ravel().tolist()}
        ],
        **extra,
    }


def test_health_and_metadata(sklearn_server: Server) -> None:
    assert sklearn_server.request("GET", "/v2/health/live").status == 200
    assert sklearn_server.request("GET", "/v2/health/ready").status == 200
    assert sklearn_server.request("GET", "/v2/models/iris/ready").status == 200
    assert sklearn_server.request("GET", "/v2/models/iris/versions/1.0.0/ready").status == 200
    server = sklearn_server.request("GET", "/v2").json()
    assert server["name"] == "plinth" and "binary_tensor_data" in server["extensions"]
    for path in ("/v2/models/iris", "/v2/models/iris/versions/1.0.0"):
        metadata = sklearn_server.request("GET", path).json()
        assert metadata == {
            "name": "iris",
            "versions": ["1.0.0"],
            "platform": "sklearn_joblib",
            "inputs": [{"name": "input", "datatype": "FP64", "shape": [-1, 4]}],
            "outputs": [
                {"name": "predict", "datatype": "INT64", "shape": [-1]},
                {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
            ],
        }


def test_sklearn_predictions_are_the_estimators(sklearn_server: Server, iris: Iris) -> None:
    rows = iris.features[::10]
    reply = sklearn_server.infer(_body(rows, id="req-1"))
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["model_name"] == "iris" and body["model_version"] == "1.0.0" and body["id"] == "req-1"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["predict"]["data"] == iris.estimator.predict(rows).tolist()
    assert outputs["predict"]["shape"] == [len(rows)]
    assert outputs["predict_proba"]["shape"] == [len(rows), 3]
    np.testing.assert_allclose(
        np.array(outputs["predict_proba"]["data"]).reshape(len(rows), 3), iris.estimator.predict_proba(rows)
    )
    # nested data in the tensor's shape is the same request
    nested = {"inputs": [{"name": "input", "shape": [len(rows), 4], "datatype": "FP64", "data": rows.tolist()}]}
    assert sklearn_server.infer(nested).json()["outputs"] == body["outputs"]


def test_onnx_predictions_match_sklearn(onnx_server: Server, iris: Iris) -> None:
    metadata = onnx_server.request("GET", "/v2/models/iris").json()
    assert metadata["platform"] == "onnx_onnxv1"
    assert metadata["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}]
    rows = iris.features[::7].astype(np.float32)
    body = {"inputs": [{"name": "X", "shape": list(rows.shape), "datatype": "FP32", "data": rows.ravel().tolist()}]}
    reply = onnx_server.infer(body)
    assert reply.status == 200, reply.body
    outputs = {o["name"]: o["data"] for o in reply.json()["outputs"]}
    assert outputs["label"] == iris.estimator.predict(rows.astype(np.float64)).tolist()
    assert reply.json()["model_version"] == "2.0.0"


def test_binary_tensor_data(sklearn_server: Server, iris: Iris) -> None:
    rows = iris.features[:5]
    header = json.dumps(
        {
            "inputs": [
                {"name": "input", "shape": [5, 4], "datatype": "FP64", "parameters": {"binary_data_size": rows.nbytes}}
            ],
            "outputs": [{"name": "predict", "parameters": {"binary_data": True}}],
        }
    ).encode()
    reply = sklearn_server.request(
        "POST",
        "/v2/models/iris/infer",
        header + rows.astype("<f8").tobytes(),
        {"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"},
    )
    assert reply.status == 200, reply.body
    split = int(reply.headers["inference-header-content-length"])
    head = json.loads(reply.body[:split])
    (output,) = head["outputs"]
    assert output["name"] == "predict" and output["parameters"]["binary_data_size"] == 5 * 8
    labels = struct.unpack("<5q", reply.body[split:])
    assert list(labels) == iris.estimator.predict(rows).tolist()


def test_every_response_names_model_version_and_request(sklearn_server: Server, iris: Iris) -> None:
    for reply in (
        sklearn_server.infer(_body(iris.features[:1])),
        sklearn_server.infer({"inputs": []}),
        sklearn_server.request("GET", "/v2/models/nope"),
        sklearn_server.request("GET", "/no/such/route"),
    ):
        assert reply.headers["x-model-name"] == "iris"
        assert reply.headers["x-model-version"] == "1.0.0"
        assert len(reply.headers["x-request-id"]) == 32
    given = sklearn_server.request("GET", "/v2/health/live", headers={"X-Request-Id": "trace-me"})
    assert given.headers["x-request-id"] == "trace-me"


BAD_REQUESTS = [
    pytest.param(b"{not json", [""], id="not-json"),
    pytest.param({"inputs": []}, ["inputs"], id="no-inputs"),
    pytest.param(
        {"inputs": [{"name": "input", "shape": [1, 4], "data": [1, 2, 3, 4]}]},
        ["inputs[0].datatype"],
        id="missing-datatype",
    ),
    pytest.param(
        {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP99", "data": [1, 2, 3, 4]}]},
        ["inputs[0].datatype"],
        id="unknown-datatype",
    ),
    pytest.param(
        {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]},
        ["inputs[0].datatype"],
        id="wrong-datatype",
    ),
    pytest.param(
        {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]},
        ["inputs[0].shape"],
        id="wrong-shape",
    ),
    pytest.param(
        {"inputs": [{"name": "input", "shape": [1, -4], "datatype": "FP64", "data": [1]}]},
        ["inputs[0].shape[1]"],
        id="negative-dimension",
    ),
    pytest.param(
        {"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]},
        ["inputs[0].data"],
        id="too-few-elements",
    ),
    pytest.param(
        {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": ["a", "b", "c", "d"]}]},
        ["inputs[0].data"],
        id="strings-for-numbers",
    ),
    pytest.param(
        {"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP64", "data": [[1, 2, 3, 4], [3]]}]},
        ["inputs[0].data"],
        id="ragged",
    ),
    pytest.param(
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]},
        ["inputs[0].name"],
        id="unknown-input",
    ),
    pytest.param(
        {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64"}]}, ["inputs[0].data"], id="no-data"
    ),
    pytest.param(
        {
            "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}],
            "outputs": [{"name": "nope"}],
        },
        ["outputs[0].name"],
        id="unknown-output",
    ),
    pytest.param(
        {
            "inputs": [
                {"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4], "parameters": {"x": [1]}}
            ]
        },
        ["inputs[0].parameters.x"],
        id="bad-parameter",
    ),
    pytest.param(
        {
            "inputs": [
                {"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]},
                {"name": "other", "shape": [1], "datatype": "INT8", "data": [300]},
            ]
        },
        ["inputs[1].name"],
        id="one-good-one-bad",
    ),
]


@pytest.mark.parametrize(("body", "fields"), BAD_REQUESTS)
def test_bad_requests_are_400_naming_the_field(
    sklearn_server: Server, body: bytes | dict[str, Any], fields: list[str]
) -> None:
    reply = sklearn_server.infer(body)
    assert reply.status == 400, reply.body
    assert reply.fields() == fields
    assert reply.json()["error"]


def test_values_the_estimator_refuses_are_400(sklearn_server: Server) -> None:
    # NaN passes the signature (FP64) but scikit-learn refuses it: the client's fault, so 400, never 500
    reply = sklearn_server.infer(b'{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP64","data":[NaN,1,2,3]}]}')
    assert reply.status == 400, reply.body


def test_statuses_beyond_400(sklearn_server: Server, iris: Iris) -> None:
    assert sklearn_server.request("GET", "/v2/models/other").status == 404
    assert sklearn_server.request("GET", "/v2/models/iris/versions/9").status == 404
    assert sklearn_server.infer(_body(iris.features[:1]), path="/v2/models/iris/versions/9/infer").status == 404
    assert sklearn_server.request("GET", "/v2/models/iris/infer").status == 405
    gzip = sklearn_server.infer(_body(iris.features[:1]), **{"Content-Encoding": "gzip"})
    assert gzip.status == 415


def test_bodies_over_the_limit_are_413_declared_or_streamed(server_factory: ServerFactory, iris: Iris) -> None:
    server = server_factory(MODEL_URI=str(iris.joblib_path), MAX_REQUEST_BYTES="1000").wait_ready()
    body = json.dumps(_body(np.zeros((100, 4)))).encode()
    declared = server.infer(body)
    assert declared.status == 413 and "MAX_REQUEST_BYTES" in declared.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while the body streams in
        for start in range(0, len(body), 100):
            yield body[start : start + 100]

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("POST", "/v2/models/iris/infer", body=chunks(), encode_chunked=True)
    assert connection.getresponse().status == 413
    connection.close()
    assert server.infer(_body(iris.features[:1])).status == 200


def test_openapi_document_matches_the_routes(sklearn_server: Server) -> None:
    document = sklearn_server.request("GET", "/v2/docs/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    infer = document["paths"]["/v2/models/{name}/infer"]["post"]
    assert set(infer["responses"]) >= {"200", "400", "401", "403", "404", "413", "429", "503"}
    schema = document["components"]["schemas"]["InferenceRequest"]
    assert schema["required"] == ["inputs"]

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            return [node["$ref"]] if "$ref" in node else [r for value in node.values() for r in refs(value)]
        return [r for value in node for r in refs(value)] if isinstance(node, list) else []

    names = set(document["components"]["schemas"])
    assert {ref.rsplit("/", 1)[1] for ref in refs(document)} <= names


def test_metrics_count_requests_by_model_version_and_code(sklearn_server: Server, iris: Iris) -> None:
    def count(code: str) -> float:
        text = sklearn_server.request("GET", "/metrics").body.decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = sample.labels
                if (
                    sample.name == "plinth_serving_requests_total"
                    and labels["endpoint"] == "model_infer"
                    and labels["code"] == code
                ):
                    assert labels["model"] == "iris" and labels["version"] == "1.0.0"
                    return float(sample.value)
        return 0.0

    ok, bad = count("2xx"), count("4xx")
    sklearn_server.infer(_body(iris.features[:2]))
    sklearn_server.infer({"inputs": []})
    assert (count("2xx"), count("4xx")) == (ok + 1, bad + 1)
    text = sklearn_server.request("GET", "/metrics").body.decode()
    assert 'plinth_serving_model_ready{model="iris",version="1.0.0"} 1.0' in text
    assert "plinth_serving_request_duration_seconds_bucket" in text


def test_logs_are_json_lines_without_tensor_data(sklearn_server: Server) -> None:
    marker = 12345.678
    sklearn_server.infer(_body(np.array([[marker, 1.0, 2.0, 3.0]]), id="logged"))
    sklearn_server.infer({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [marker]}]})
    lines = sklearn_server.log_lines()
    requests = [line for line in lines if line.get("endpoint") == "model_infer"]
    assert {line["status"] for line in requests} >= {200, 400}
    assert all(line["request_id"] and line["duration_ms"] >= 0 for line in requests)
    assert str(marker) not in sklearn_server.log_path.read_text()
    loaded = next(line for line in lines if line["message"] == "model loaded")
    assert loaded["size_bytes"] > 0 and len(loaded["sha256"]) == 64
