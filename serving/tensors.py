"""Request tensors in, response tensors out: parsing, checking against the model's signature, and encoding.

Every check names the field at fault (`inputs[0].shape`) so a client can fix its request without reading server
logs, and all problems of a request are reported at once. Both the JSON tensor form and the binary tensor data
extension (JSON header, then raw bytes; what tritonclient sends by default) are understood.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from plinth.serving.errors import APIError, field_path
from plinth.serving.protocol import Datatype, FieldError, InferenceRequest, Parameters, RequestInput
from plinth.serving.runtimes.base import NUMPY_DTYPES, Array, Signature, TensorSpec, datatype_of
from pydantic import ValidationError

BINARY_HEADER = "inference-header-content-length"
_KINDS = {"b": "booleans", "i": "integers", "u": "integers", "f": "numbers"}


def _allowed_kinds(datatype: Datatype) -> str:
    if datatype is Datatype.BOOL:
        return "b"
    if datatype.name.startswith(("INT", "UINT")):
        return "iu"
    return "iuf"  # FP16/32/64: integers are numbers too


def parse_request(body: bytes, header_length: str | None) -> tuple[InferenceRequest, bytes]:
    """The request and the binary data after its JSON header (empty without the extension)."""
    binary = b""
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise APIError.invalid(
                [FieldError(field="", message=f"bad Inference-Header-Content-Length {header_length!r}")]
            )
        split = int(header_length)
        body, binary = body[:split], body[split:]
    try:
        return InferenceRequest.model_validate_json(body), binary
    except ValidationError as error:
        raise APIError.invalid(_field_errors(error)) from None


def _field_errors(error: ValidationError) -> list[FieldError]:
    details: dict[str, str] = {}
    for problem in error.errors(include_url=False):
        loc = list(problem["loc"])
        if problem["type"] == "json_invalid":
            details.setdefault("", f"the body is not valid JSON ({problem['ctx'].get('error', problem['msg'])})")
            continue
        if "parameters" in loc:  # a parameter value fails each member of the union: report it once
            cut = loc.index("parameters") + 2
            if len(loc) > cut:
                details.setdefault(field_path(loc[:cut]), "a parameter value must be a string, number or boolean")
                continue
        details.setdefault(field_path(loc), problem["msg"])
    return [FieldError(field=field, message=message) for field, message in details.items()]


def _shape_matches(shape: Sequence[int], spec: TensorSpec) -> bool:
    return len(shape) == len(spec.shape) and all(
        want < 0 or want == got for got, want in zip(shape, spec.shape, strict=True)
    )


def _show(shape: Sequence[int]) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool


def decode_inputs(request: InferenceRequest, binary: bytes, signature: Signature) -> dict[str, Array]:
    """Check every input against the signature and convert it to an array of the signature's dtype."""
    errors: list[FieldError] = []
    arrays: dict[str, Array] = {}
    offset = 0
    for index, tensor in enumerate(request.inputs):
        path = f"inputs[{index}]"
        spec = signature.input(tensor.name)
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                errors.append(FieldError(field=f"{path}.parameters.binary_data_size", message="must be an integer ≥ 0"))
                continue
            chunk, offset = binary[offset : offset + size], offset + size
            if len(chunk) < size:
                errors.append(
                    FieldError(field=f"{path}.parameters.binary_data_size", message="exceeds the binary data sent")
                )
                continue
        if spec is None:
            names = ", ".join(s.name for s in signature.inputs)
            errors.append(FieldError(field=f"{path}.name", message=f"unknown input {tensor.name!r}; inputs: {names}"))
            continue
        if tensor.name in arrays:
            errors.append(FieldError(field=f"{path}.name", message=f"input {tensor.name!r} is given twice"))
            continue
        before = len(errors)
        if tensor.datatype is not spec.datatype:
            errors.append(
                FieldError(field=f"{path}.datatype", message=f"expected {spec.datatype}, got {tensor.datatype}")
            )
        if not _shape_matches(tensor.shape, spec):
            errors.append(
                FieldError(field=f"{path}.shape", message=f"expected {_show(spec.shape)}, got {_show(tensor.shape)}")
            )
        if size is None and tensor.data is None:
            errors.append(FieldError(field=f"{path}.data", message="missing (and no binary_data_size)"))
        elif size is not None and tensor.data is not None:
            errors.append(FieldError(field=f"{path}.data", message="given as well as binary_data_size"))
        if len(errors) > before:
            continue
        try:
            if size is not None:
                arrays[tensor.name] = _from_binary(chunk, tensor)
            else:
                arrays[tensor.name] = _from_json(tensor)
        except ValueError as problem:
            field = f"{path}.parameters.binary_data_size" if size is not None else f"{path}.data"
            errors.append(FieldError(field=field, message=str(problem)))
    if offset != len(binary) and not errors:
        errors.append(FieldError(field="", message=f"{len(binary) - offset} bytes of binary data belong to no input"))
    missing = [spec.name for spec in signature.inputs if spec.name not in arrays]
    if missing and not errors:
        errors.append(FieldError(field="inputs", message=f"missing input {', '.join(map(repr, missing))}"))
    if errors:
        raise APIError.invalid(errors)
    return arrays


def _from_json(tensor: RequestInput) -> Array:
    data: list[Any] = tensor.data or []
    shape = tuple(tensor.shape)
    count = math.prod(shape)
    if tensor.datatype is Datatype.BYTES:
        flat = np.array(data, dtype=np.object_).ravel() if data and isinstance(data[0], list) else data
        if len(flat) != count:
            raise ValueError(f"{len(flat)} elements, but shape {_show(shape)} holds {count}")
        if not all(isinstance(item, str) for item in flat):
            raise ValueError("BYTES elements must be strings")
        return np.array([item.encode() for item in flat], dtype=np.object_).reshape(shape)
    if data and isinstance(data[0], list):
        try:
            array = np.array(data)
        except ValueError:
            raise ValueError("nested data is ragged") from None
        if array.shape != shape:
            raise ValueError(f"nested data has shape {_show(array.shape)}, but shape is {_show(shape)}")
    else:
        if len(data) != count:
            raise ValueError(f"{len(data)} elements, but shape {_show(shape)} holds {count}")
        array = np.asarray(data)
    dtype = NUMPY_DTYPES[tensor.datatype]
    if array.size == 0:
        return np.empty(shape, dtype=dtype)
    allowed = _allowed_kinds(tensor.datatype)
    if array.dtype.kind not in allowed:
        raise ValueError(f"{tensor.datatype} elements must be {_KINDS[allowed[-1]]}")
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if array.min() < info.min or array.max() > info.max:
            raise ValueError(f"elements out of the range of {tensor.datatype}")
    return array.astype(dtype, copy=False).reshape(shape)


def _from_binary(chunk: bytes, tensor: RequestInput) -> Array:
    shape = tuple(tensor.shape)
    count = math.prod(shape)
    if tensor.datatype is Datatype.BYTES:
        items, offset = [], 0
        while offset < len(chunk):
            if offset + 4 > len(chunk):
                raise ValueError("truncated BYTES element length")
            (length,) = struct.unpack_from("<I", chunk, offset)
            items.append(chunk[offset + 4 : offset + 4 + length])
            offset += 4 + length
        if offset != len(chunk) or len(items) != count:
            raise ValueError(f"{len(items)} BYTES elements, but shape {_show(shape)} holds {count}")
        return np.array(items, dtype=np.object_).reshape(shape)
    dtype = NUMPY_DTYPES[tensor.datatype]
    if len(chunk) != count * dtype.itemsize:
        raise ValueError(
            f"{len(chunk)} bytes, but shape {_show(shape)} of {tensor.datatype} takes {count * dtype.itemsize}"
        )
    return np.frombuffer(chunk, dtype=dtype.newbyteorder("<")).reshape(shape)


def requested_outputs(request: InferenceRequest, signature: Signature) -> list[RequestedOutput]:
    """The outputs to compute, each with whether it goes back as binary data."""
    binary_default = (request.parameters or {}).get("binary_data_output") is True
    if request.outputs is None:
        return [RequestedOutput(spec.name, binary_default) for spec in signature.outputs]
    errors: list[FieldError] = []
    wanted: dict[str, RequestedOutput] = {}
    for index, output in enumerate(request.outputs):
        parameters: Parameters = output.parameters or {}
        if signature.output(output.name) is None:
            names = ", ".join(s.name for s in signature.outputs)
            errors.append(
                FieldError(field=f"outputs[{index}].name", message=f"unknown output {output.name!r}; outputs: {names}")
            )
        elif parameters.get("classification"):
            errors.append(
                FieldError(field=f"outputs[{index}].parameters.classification", message="not supported by this server")
            )
        else:
            wanted[output.name] = RequestedOutput(output.name, parameters.get("binary_data", binary_default) is True)
    if errors:
        raise APIError.invalid(errors)
    return list(wanted.values())


def _binary_bytes(array: Array) -> bytes:
    if array.dtype.kind in "OUS":
        parts = []
        for item in array.ravel():
            raw = item if isinstance(item, bytes) else str(item).encode()
            parts.append(struct.pack("<I", len(raw)) + raw)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def _json_data(array: Array) -> Any:
    if array.dtype.kind in "OUS":
        return [item.decode(errors="replace") if isinstance(item, bytes) else str(item) for item in array.ravel()]
    return np.ascontiguousarray(array).ravel()


def encode_response(
    head: dict[str, Any], outputs: Sequence[RequestedOutput], results: dict[str, Array]
) -> tuple[bytes, int | None]:
    """The response body and, when some output goes as binary data, the length of its JSON header."""
    tensors: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for output in outputs:
        array = results[output.name]
        tensor: dict[str, Any] = {"name": output.name, "datatype": datatype_of(array.dtype).value, "shape": array.shape}
        if output.binary:
            raw = _binary_bytes(array)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            tensor["data"] = _json_data(array)
        tensors.append(tensor)
    header = orjson.dumps({**head, "outputs": tensors}, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return header, None
    return header + b"".join(chunks), len(header)
