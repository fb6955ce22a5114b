"""The contract between the server and a model format: a format is one module with a `RUNTIME` that loads a file
into a `Model`. The server only ever sees a model's signature and its `predict`, so adding a format touches nothing
else."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from plinth.serving.protocol import Datatype

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class TensorSpec:
    """A named tensor of a signature; -1 in `shape` means any size (usually the batch)."""

    name: str
    datatype: Datatype
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Signature:
    """What a model takes and gives, as its metadata reports it and requests are checked against."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def input(self, name: str) -> TensorSpec | None:
        return next((spec for spec in self.inputs if spec.name == name), None)

    def output(self, name: str) -> TensorSpec | None:
        return next((spec for spec in self.outputs if spec.name == name), None)


class InvalidInputError(ValueError):
    """The model rejected inputs that matched its signature (e.g. NaN for an estimator that refuses it): the
    client's fault, so a 400, not a 500."""


class Model(Protocol):
    """A loaded model."""

    @property
    def signature(self) -> Signature: ...

    def predict(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> dict[str, Array]:
        """Compute the named `outputs` from `inputs` (validated against the signature already). Raises
        `InvalidInputError` when the model refuses the values."""
        ...


class Runtime(Protocol):
    """A model format."""

    @property
    def platform(self) -> str:
        """The protocol's platform name, `<project>_<format>`."""
        ...

    def load(self, path: Path) -> Model: ...


NUMPY_DTYPES: Mapping[Datatype, np.dtype[Any]] = {
    Datatype.BOOL: np.dtype(np.bool_),
    Datatype.UINT8: np.dtype(np.uint8),
    Datatype.UINT16: np.dtype(np.uint16),
    Datatype.UINT32: np.dtype(np.uint32),
    Datatype.UINT64: np.dtype(np.uint64),
    Datatype.INT8: np.dtype(np.int8),
    Datatype.INT16: np.dtype(np.int16),
    Datatype.INT32: np.dtype(np.int32),
    Datatype.INT64: np.dtype(np.int64),
    Datatype.FP16: np.dtype(np.float16),
    Datatype.FP32: np.dtype(np.float32),
    Datatype.FP64: np.dtype(np.float64),
    Datatype.BYTES: np.dtype(np.object_),
}


def datatype_of(dtype: np.dtype[Any]) -> Datatype:
    """The protocol datatype of a numpy dtype; strings and objects are BYTES."""
    if dtype.kind in "OUS":
        return Datatype.BYTES
    for datatype, candidate in NUMPY_DTYPES.items():
        if candidate == dtype:
            return datatype
    raise ValueError(f"no protocol datatype for numpy dtype {dtype}")


def example_inputs(signature: Signature) -> dict[str, Array]:
    """Zero-valued inputs of batch size 1 for the warm-up inference that gates readiness."""
    inputs: dict[str, Array] = {}
    for spec in signature.inputs:
        shape = tuple(1 if dim < 0 else dim for dim in spec.shape)
        if spec.datatype is Datatype.BYTES:
            inputs[spec.name] = np.full(shape, b"", dtype=np.object_)
        else:
            inputs[spec.name] = np.zeros(shape, dtype=NUMPY_DTYPES[spec.datatype])
    return inputs
