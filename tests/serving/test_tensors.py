"""Request tensors against a signature, without a server: the conversions and checks the process tests rely on."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from plinth.serving import tensors
from plinth.serving.errors import APIError, field_path
from plinth.serving.protocol import Datatype
from plinth.serving.runtimes import guess_format
from plinth.serving.runtimes.base import Signature, TensorSpec, example_inputs
from plinth.serving.settings import Settings, SettingsError

SIGNATURE = Signature(
    inputs=(
        TensorSpec("x", Datatype.INT8, (-1, 2)),
        TensorSpec("text", Datatype.BYTES, (-1,)),
        TensorSpec("flag", Datatype.BOOL, (1,)),
    ),
    outputs=(TensorSpec("y", Datatype.FP32, (-1,)),),
)


def _decode(inputs: list[dict[str, object]], binary: bytes = b"", header: str | None = None) -> dict[str, np.ndarray]:
    body = json.dumps({"inputs": inputs}).encode()
    if binary:
        header = str(len(body))
    request, rest = tensors.parse_request(body + binary, header)
    return tensors.decode_inputs(request, rest, SIGNATURE)


def _fields(inputs: list[dict[str, object]]) -> list[str]:
    with pytest.raises(APIError) as error:
        _decode(inputs)
    assert error.value.status == 400
    return [d.field for d in error.value.details]


GOOD = [
    {"name": "x", "shape": [2, 2], "datatype": "INT8", "data": [1, -2, 3, 4]},
    {"name": "text", "shape": [2], "datatype": "BYTES", "data": ["a", "é"]},
    {"name": "flag", "shape": [1], "datatype": "BOOL", "data": [True]},
]


def test_decodes_to_the_signatures_dtypes() -> None:
    arrays = _decode(GOOD)
    assert arrays["x"].dtype == np.int8 and arrays["x"].tolist() == [[1, -2], [3, 4]]
    assert arrays["text"].tolist() == [b"a", "é".encode()]
    assert arrays["flag"].dtype == np.bool_


def test_binary_inputs() -> None:
    text = b"".join(struct.pack("<I", len(s)) + s for s in (b"hi", b""))
    raw = np.array([[1, 2]], dtype="<i1").tobytes()
    inputs = [
        {"name": "x", "shape": [1, 2], "datatype": "INT8", "parameters": {"binary_data_size": len(raw)}},
        {"name": "text", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": len(text)}},
        {"name": "flag", "shape": [1], "datatype": "BOOL", "data": [False]},
    ]
    arrays = _decode(inputs, raw + text)
    assert arrays["x"].tolist() == [[1, 2]] and arrays["text"].tolist() == [b"hi", b""]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"data": [1, 2, 3, 300]}, "inputs[0].data"),  # out of INT8's range
        ({"data": [1.5, 2, 3, 4]}, "inputs[0].data"),  # a float for an integer type
        ({"shape": [2, 3]}, "inputs[0].shape"),
        ({"datatype": "INT16"}, "inputs[0].datatype"),
    ],
)
def test_element_checks(change: dict[str, object], field: str) -> None:
    assert _fields([{**GOOD[0], **change}, GOOD[1], GOOD[2]]) == [field]


def test_all_problems_at_once_and_missing_inputs() -> None:
    assert _fields([{**GOOD[0], "shape": [3]}, {**GOOD[1], "data": [1, 2]}, GOOD[2]]) == [
        "inputs[0].shape",
        "inputs[1].data",
    ]
    with pytest.raises(APIError) as error:
        _decode([GOOD[0]])
    assert "missing input 'text', 'flag'" in error.value.message
    assert _fields([GOOD[0], GOOD[0], GOOD[1], GOOD[2]]) == ["inputs[1].name"]
    assert _fields([GOOD[0], GOOD[1], {**GOOD[2], "data": [1]}]) == ["inputs[2].data"]  # BOOL wants booleans


def test_binary_length_checks() -> None:
    with pytest.raises(APIError) as error:
        tensors.parse_request(b"{}", "10")
    assert "Inference-Header-Content-Length" in error.value.message
    inputs = [{"name": "x", "shape": [1, 2], "datatype": "INT8", "parameters": {"binary_data_size": 3}}, *GOOD[1:]]
    with pytest.raises(APIError) as short:
        _decode(inputs, b"\x01\x02\x03")
    assert [d.field for d in short.value.details] == ["inputs[0].parameters.binary_data_size"]


def test_encode_response_json_and_binary() -> None:
    results = {"y": np.array([1.5, 2.5], dtype=np.float32)}
    body, length = tensors.encode_response({"model_name": "m"}, [tensors.RequestedOutput("y", False)], results)
    assert length is None
    assert json.loads(body) == {
        "model_name": "m",
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [2], "data": [1.5, 2.5]}],
    }
    body, length = tensors.encode_response({"model_name": "m"}, [tensors.RequestedOutput("y", True)], results)
    assert length is not None and np.frombuffer(body[length:], "<f4").tolist() == [1.5, 2.5]


def test_warm_up_inputs_fill_free_dimensions_with_one() -> None:
    example = example_inputs(SIGNATURE)
    assert example["x"].shape == (1, 2) and example["text"].tolist() == [b""]


def test_settings_and_helpers() -> None:
    settings = Settings.from_env({"MODEL_URI": "/m.onnx", "PORT": "9000", "RATE_LIMIT_RPS": ""})
    assert settings.port == 9000 and settings.rate_limit_rps is None
    with pytest.raises(SettingsError, match="MODEL_SHA256"):
        Settings.from_env({"MODEL_URI": "/m.onnx", "MODEL_SHA256": "abc"})
    assert guess_format("model.ONNX") == "onnx" and guess_format("model.bin") is None
    assert field_path(["inputs", 0, "parameters", "x"]) == "inputs[0].parameters.x"
