"""ONNX models run by onnxruntime on the CPU.

The signature is the graph's own: its tensor inputs and outputs with their element types and shapes (symbolic or
unknown dimensions become -1). Outputs that are not tensors (a ZipMap's sequence of maps) cannot be expressed in the
protocol and are left out; convert scikit-learn classifiers with `zipmap=False`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime
from plinth.serving.protocol import Datatype
from plinth.serving.runtimes.base import Array, InvalidInputError, Model, Signature, TensorSpec

_TYPES: dict[str, Datatype] = {
    "tensor(bool)": Datatype.BOOL,
    "tensor(uint8)": Datatype.UINT8,
    "tensor(uint16)": Datatype.UINT16,
    "tensor(uint32)": Datatype.UINT32,
    "tensor(uint64)": Datatype.UINT64,
    "tensor(int8)": Datatype.INT8,
    "tensor(int16)": Datatype.INT16,
    "tensor(int32)": Datatype.INT32,
    "tensor(int64)": Datatype.INT64,
    "tensor(float16)": Datatype.FP16,
    "tensor(float)": Datatype.FP32,
    "tensor(double)": Datatype.FP64,
    "tensor(string)": Datatype.BYTES,
}


def _spec(node: Any) -> TensorSpec | None:
    datatype = _TYPES.get(node.type)
    if datatype is None:
        return None
    shape = tuple(dim if isinstance(dim, int) and dim >= 0 else -1 for dim in node.shape)
    return TensorSpec(node.name, datatype, shape)


@dataclass(frozen=True)
class OnnxModel:
    session: onnxruntime.InferenceSession
    signature: Signature

    def predict(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> dict[str, Array]:
        try:
            results = self.session.run(list(outputs), dict(inputs))
        except (onnxruntime.capi.onnxruntime_pybind11_state.InvalidArgument, ValueError) as error:
            raise InvalidInputError(str(error)) from error
        return dict(zip(outputs, results, strict=True))


class OnnxRuntime:
    platform = "onnx_onnxv1"

    def load(self, path: Path) -> Model:
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # warnings about unused initializers are noise in the server's log
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        inputs = [_spec(node) for node in session.get_inputs()]
        unsupported = [node.name for node, spec in zip(session.get_inputs(), inputs, strict=True) if spec is None]
        if unsupported:
            raise ValueError(f"{path.name}: inputs that are not tensors cannot be served: {', '.join(unsupported)}")
        outputs = tuple(spec for spec in map(_spec, session.get_outputs()) if spec is not None)
        if not outputs:
            raise ValueError(f"{path.name} has no tensor outputs")
        return OnnxModel(session, Signature(inputs=tuple(s for s in inputs if s is not None), outputs=outputs))


RUNTIME = OnnxRuntime()
