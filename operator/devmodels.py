"""The sample models of the local cluster, trained when asked from data scikit-learn ships (no downloads).

``make dev``'s ModelDeployment samples serve these from the model store (``devnode.model_store``); the real-node
tests train their own the same way. Training is deterministic, so the same versions give the same bytes.
"""

from __future__ import annotations

import io

SAMPLES_BUCKET = "samples"


def iris_models() -> dict[str, bytes]:
    """``iris`` 1.0.0 and 1.1.0 (logistic regressions of different strength) as joblib files, and 1.0.0 as ONNX,
    keyed ``iris/<version>/model.<format>``."""
    import joblib
    import numpy as np
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    models: dict[str, bytes] = {}
    for version, strength in (("1.0.0", 1.0), ("1.1.0", 0.1)):
        estimator = LogisticRegression(C=strength, max_iter=1000).fit(features, labels)
        buffer = io.BytesIO()
        joblib.dump(estimator, buffer)
        models[f"iris/{version}/model.joblib"] = buffer.getvalue()
        if version == "1.0.0":
            graph = to_onnx(estimator, features[:1].astype(np.float32), options={"zipmap": False}, target_opset=17)
            models[f"iris/{version}/model.onnx"] = graph.SerializeToString()
    return models


def samples() -> dict[str, bytes]:
    """The objects of ``make dev``'s model store: ``samples/<model>/<version>/model.<format>``."""
    return {f"{SAMPLES_BUCKET}/{key}": content for key, content in iris_models().items()}
