"""scikit-learn estimators saved with joblib.

The signature is read from the fitted estimator: one FP64 input `input` of shape [-1, n_features_in_], and the
outputs `predict` and, for classifiers, `predict_proba`. Loading a joblib file runs pickle: only serve artifacts you
trust, and pin them with MODEL_SHA256.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from plinth.serving.protocol import Datatype
from plinth.serving.runtimes.base import Array, InvalidInputError, Model, Signature, TensorSpec, datatype_of

INPUT = "input"


@dataclass(frozen=True)
class SklearnModel:
    estimator: Any
    signature: Signature

    def predict(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> dict[str, Array]:
        features = inputs[INPUT]
        try:
            return {name: np.asarray(getattr(self.estimator, name)(features)) for name in outputs}
        except ValueError as error:  # scikit-learn's way of refusing values (NaN, infinity, wrong feature count)
            raise InvalidInputError(str(error)) from error


class SklearnRuntime:
    platform = "sklearn_joblib"

    def load(self, path: Path) -> Model:
        estimator = joblib.load(path)
        if not callable(getattr(estimator, "predict", None)):
            raise ValueError(f"{path.name} holds a {type(estimator).__name__}, not an estimator with predict()")
        features = int(getattr(estimator, "n_features_in_", -1))
        outputs_per_sample = int(getattr(estimator, "n_outputs_", 1))
        classes = getattr(estimator, "classes_", None)
        if classes is not None and outputs_per_sample == 1:
            label = datatype_of(np.asarray(classes).dtype)
        else:
            label = Datatype.FP64
        label_shape = (-1,) if outputs_per_sample == 1 else (-1, outputs_per_sample)
        outputs = [TensorSpec("predict", label, label_shape)]
        if classes is not None and outputs_per_sample == 1 and callable(getattr(estimator, "predict_proba", None)):
            outputs.append(TensorSpec("predict_proba", Datatype.FP64, (-1, len(classes))))
        signature = Signature(inputs=(TensorSpec(INPUT, Datatype.FP64, (-1, features)),), outputs=tuple(outputs))
        return SklearnModel(estimator, signature)


RUNTIME = SklearnRuntime()
