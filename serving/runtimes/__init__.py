"""Model formats: each module implements `Runtime` for one format and is imported only when that format is served,
so a scikit-learn server never pays for importing onnxruntime and vice versa."""

from __future__ import annotations

import importlib
from pathlib import PurePosixPath

from plinth.serving.runtimes.base import Runtime

# format -> the module whose RUNTIME serves it
FORMATS: dict[str, str] = {
    "sklearn": "plinth.serving.runtimes.sklearn",
    "onnx": "plinth.serving.runtimes.onnx",
}
_SUFFIXES: dict[str, str] = {".joblib": "sklearn", ".pkl": "sklearn", ".pickle": "sklearn", ".onnx": "onnx"}


def guess_format(filename: str) -> str | None:
    """The format a file name implies (`model.onnx` -> `onnx`), or None."""
    return _SUFFIXES.get(PurePosixPath(filename).suffix.lower())


def runtime_for(model_format: str) -> Runtime:
    if model_format not in FORMATS:
        raise ValueError(f"unknown model format {model_format!r}: one of {', '.join(sorted(FORMATS))}")
    runtime: Runtime = importlib.import_module(FORMATS[model_format]).RUNTIME
    return runtime
