"""The Open Inference Protocol v2 REST messages as pydantic models.

One definition serves three purposes: requests are validated with it, responses follow it, and the OpenAPI document
is generated from it, so what the docs say and what the server checks cannot drift apart. Unknown fields are ignored
rather than rejected so that clients which add fields of their own (as some SDKs do) keep working.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

# A parameter value is a string, a number or a boolean (the protocol's $parameter). Strict types keep `true` a bool
# and `"1"` a string instead of coercing them into each other.
ParameterValue = StrictBool | StrictInt | StrictFloat | StrictStr
Parameters = dict[str, ParameterValue]
Dimension = Annotated[StrictInt, Field(ge=0, description="A dimension: an unsigned 64-bit integer.")]
MetadataDimension = Annotated[StrictInt, Field(ge=-1, description="A dimension; -1 means any size.")]


class Datatype(enum.StrEnum):
    """Tensor element types of the protocol."""

    BOOL = "BOOL"
    UINT8 = "UINT8"
    UINT16 = "UINT16"
    UINT32 = "UINT32"
    UINT64 = "UINT64"
    INT8 = "INT8"
    INT16 = "INT16"
    INT32 = "INT32"
    INT64 = "INT64"
    FP16 = "FP16"
    FP32 = "FP32"
    FP64 = "FP64"
    BYTES = "BYTES"


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class RequestInput(_Message):
    """One input tensor. `data` is row-major, flat or nested; with the binary tensor extension it is absent and
    `parameters.binary_data_size` gives the length of its bytes after the JSON header."""

    name: StrictStr = Field(description="The name of the input tensor, as in the model's metadata.")
    shape: list[Dimension] = Field(description="The shape of the whole (batched) tensor.")
    datatype: Datatype = Field(description="The element type, as in the model's metadata.")
    parameters: Parameters | None = Field(default=None, description="Per-input parameters.")
    data: list[Any] | None = Field(
        default=None, description="The elements in row-major order, flat or nested to the tensor's shape."
    )


class RequestOutput(_Message):
    """An output the client asks for; without `outputs` every output of the model is returned."""

    name: StrictStr = Field(description="The name of the output tensor, as in the model's metadata.")
    parameters: Parameters | None = Field(default=None, description="`binary_data: true` returns it as raw bytes.")


class InferenceRequest(_Message):
    """The body of `POST …/infer`."""

    id: StrictStr | None = Field(default=None, description="Echoed in the response when given.")
    parameters: Parameters | None = Field(default=None, description="Request parameters.")
    inputs: list[RequestInput] = Field(min_length=1, description="The input tensors.")
    outputs: list[RequestOutput] | None = Field(default=None, description="The outputs wanted; default: all.")


class ResponseOutput(_Message):
    """One output tensor of an inference response."""

    name: str
    shape: list[int]
    datatype: Datatype
    parameters: Parameters | None = None
    data: list[Any] | None = Field(default=None, description="Flat, row-major; absent when sent as binary data.")


class InferenceResponse(_Message):
    """The body of a successful `POST …/infer`."""

    model_name: str
    model_version: str | None = Field(default=None, description="Present when the server has a model version.")
    id: str | None = Field(default=None, description="The request's `id`, when it had one.")
    parameters: Parameters | None = None
    outputs: list[ResponseOutput]


class MetadataTensor(_Message):
    """A tensor of the model's signature."""

    name: str
    datatype: Datatype
    shape: list[MetadataDimension]


class ModelMetadataResponse(_Message):
    """The body of `GET /v2/models/{name}[/versions/{version}]`."""

    name: str
    versions: list[str] | None = None
    platform: str = Field(description="`<project>_<format>`, e.g. `sklearn_joblib` or `onnx_onnxv1`.")
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


class ServerMetadataResponse(_Message):
    """The body of `GET /v2`."""

    name: str
    version: str
    extensions: list[str]


class FieldError(_Message):
    """One problem with a request, located by a path into the JSON body (`inputs[0].shape`)."""

    field: str = Field(description="Where in the request body: `inputs[0].shape`; empty for the body as a whole.")
    message: str


class ErrorResponse(_Message):
    """Every error: the protocol's `error` string, plus the field-level `details` of a rejected request."""

    error: str
    details: list[FieldError] = Field(default_factory=list)
