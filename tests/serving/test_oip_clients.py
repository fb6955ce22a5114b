"""A third-party Open Inference Protocol client, unchanged: tritonclient's HTTP client against the real server, with
JSON and binary tensors, versions, errors and a bearer token."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.serving.conftest import Iris, Server, ServerFactory


@pytest.fixture
def client(sklearn_server: Server) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=sklearn_server.address)


def test_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("iris") and client.is_model_ready("iris", "1.0.0")
    assert not client.is_model_ready("iris", "9")
    assert client.get_server_metadata()["name"] == "plinth"
    metadata = client.get_model_metadata("iris", "1.0.0")
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 4]}]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer(client: triton.InferenceServerClient, iris: Iris, binary: bool) -> None:
    rows = iris.features[10:20]
    tensor = triton.InferInput("input", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    outputs = [triton.InferRequestedOutput(name, binary_data=binary) for name in ("predict", "predict_proba")]
    result = client.infer("iris", [tensor], outputs=outputs, model_version="1.0.0", request_id="r-7")
    assert result.as_numpy("predict").tolist() == iris.estimator.predict(rows).tolist()
    np.testing.assert_allclose(result.as_numpy("predict_proba"), iris.estimator.predict_proba(rows))
    response = result.get_response()
    assert response["model_version"] == "1.0.0" and response["id"] == "r-7"


def test_errors_reach_the_client_with_their_message(client: triton.InferenceServerClient) -> None:
    tensor = triton.InferInput("input", [1, 3], "FP64")
    tensor.set_data_from_numpy(np.zeros((1, 3)))
    with pytest.raises(InferenceServerException) as error:
        client.infer("iris", [tensor])
    assert "inputs[0].shape: expected [-1, 4], got [1, 3]" in str(error.value)
    with pytest.raises(InferenceServerException) as unknown:
        client.get_model_metadata("nope")
    assert "unknown model 'nope'" in str(unknown.value)


def test_bearer_token(server_factory: ServerFactory, iris: Iris, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("s3cret-token-value")
    server = server_factory(MODEL_URI=str(iris.joblib_path), AUTH_TOKENS_FILE=str(tmp_path / "token")).wait_ready()
    client = triton.InferenceServerClient(url=server.address)
    tensor = triton.InferInput("input", [1, 4], "FP64")
    tensor.set_data_from_numpy(iris.features[:1])
    with pytest.raises(InferenceServerException) as refused:
        client.infer("iris", [tensor])
    assert "bearer token is required" in str(refused.value)
    result = client.infer("iris", [tensor], headers={"Authorization": "Bearer s3cret-token-value"})
    assert result.as_numpy("predict").tolist() == [0]
