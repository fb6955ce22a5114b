"""Loading a model from MODEL_URI in a real server process: file, HTTP and a real S3-compatible server; the sha256
pin, size and time limits; readiness only after a warm-up inference; and every failure an exit with a log line
that says what to fix."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.conftest import wait_for
from tests.serving.conftest import ArtifactServer, Iris, S3Store, Server, ServerFactory

INFER = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}


def _failure(server: Server) -> str:
    """The process's exit status must be 1 (the model failed to load); returns the logged reason."""
    assert server.wait_exit() == 1, server.log_path.read_text()
    failed = [line for line in server.log_lines() if line["message"] == "model failed to load"]
    assert failed, server.log_path.read_text()
    reason: str = failed[0]["error"]
    return reason


def test_http_download_with_a_sha256_pin(server_factory: ServerFactory, artifacts: ArtifactServer, iris: Iris) -> None:
    content = iris.joblib_path.read_bytes()
    artifacts.files["/models/iris.joblib"] = content
    server = server_factory(
        MODEL_URI=f"{artifacts.url}/models/iris.joblib", MODEL_SHA256=hashlib.sha256(content).hexdigest().upper()
    ).wait_ready()
    assert server.infer(INFER).json()["outputs"][0]["data"] == [0]
    loaded = next(line for line in server.log_lines() if line["message"] == "model loaded")
    assert loaded["size_bytes"] == len(content) and loaded["format"] == "sklearn"
    assert loaded["fetch_seconds"] >= 0 and loaded["load_seconds"] >= 0


def test_ready_only_once_loaded_and_warmed_up(
    server_factory: ServerFactory, artifacts: ArtifactServer, iris: Iris
) -> None:
    artifacts.files["/slow/iris.joblib"] = iris.joblib_path.read_bytes()
    artifacts.held.add("/slow/iris.joblib")
    server = server_factory(MODEL_URI=f"{artifacts.url}/slow/iris.joblib")
    wait_for(lambda: _live(server), timeout=60, what="the server to answer liveness while its model loads")
    assert server.request("GET", "/v2/health/ready").status == 503
    assert server.request("GET", "/v2/models/iris/ready").status == 503
    loading = server.infer(INFER)
    assert loading.status == 503 and loading.headers["retry-after"] == "1"
    assert "loading" in loading.json()["error"]
    artifacts.release()
    server.wait_ready()
    assert server.infer(INFER).status == 200


def _live(server: Server) -> bool:
    try:
        return server.request("GET", "/v2/health/live").status == 200
    except OSError:
        return False


def test_s3_with_credentials_from_a_mounted_directory(
    server_factory: ServerFactory, s3: S3Store, iris: Iris, tmp_path: Path
) -> None:
    uri = s3.put("models", "iris/v1/model.joblib", iris.joblib_path.read_bytes())
    server = server_factory(
        MODEL_URI=uri, MODEL_STORAGE_CREDENTIALS_DIR=str(s3.credentials(tmp_path / "credentials"))
    ).wait_ready()
    assert server.infer(INFER).status == 200


def test_s3_refusals_say_why_and_never_show_the_secret(
    server_factory: ServerFactory, s3: S3Store, iris: Iris, tmp_path: Path
) -> None:
    uri = s3.put("models", "iris/v2/model.joblib", iris.joblib_path.read_bytes())
    wrong = "not-the-secret-" + "x" * 16
    server = server_factory(
        MODEL_URI=uri, MODEL_STORAGE_CREDENTIALS_DIR=str(s3.credentials(tmp_path / "wrong", secret=wrong))
    )
    assert "HTTP 403" in (reason := _failure(server)) and "SignatureDoesNotMatch" in reason
    assert wrong not in server.log_path.read_text()
    missing = server_factory(
        MODEL_URI="s3://no-such-bucket/model.joblib",
        MODEL_STORAGE_CREDENTIALS_DIR=str(s3.credentials(tmp_path / "right")),
    )
    assert "NoSuchBucket" in _failure(missing)
    no_credentials = server_factory(MODEL_URI=uri, AWS_ACCESS_KEY_ID="", AWS_SECRET_ACCESS_KEY="")
    assert "AWS_ACCESS_KEY_ID" in _failure(no_credentials)


def test_load_failures_exit_with_the_reason(
    server_factory: ServerFactory, artifacts: ArtifactServer, iris: Iris, tmp_path: Path
) -> None:
    cases = {
        "sha256 mismatch": {"MODEL_URI": str(iris.joblib_path), "MODEL_SHA256": "0" * 64},
        "warm-up inference failed": {"MODEL_URI": str(iris.unfitted_path)},
        "no such file": {"MODEL_URI": f"file://{tmp_path}/absent.joblib"},
        "HTTP 404": {"MODEL_URI": f"{artifacts.url}/absent.joblib"},
        "larger than MODEL_MAX_BYTES": {"MODEL_URI": str(iris.joblib_path), "MODEL_MAX_BYTES": "100"},
        "set MODEL_FORMAT": {"MODEL_URI": str(_copy(iris.joblib_path, tmp_path / "model.bin"))},
        "not an estimator": {"MODEL_URI": str(_not_an_estimator(tmp_path))},
        "unsupported scheme": {"MODEL_URI": "ftp://example.invalid/model.joblib"},
    }
    servers = {expected: server_factory(**env) for expected, env in cases.items()}
    for expected, server in servers.items():
        assert expected in _failure(server), expected


def test_a_load_that_outlives_its_timeout_fails(
    server_factory: ServerFactory, artifacts: ArtifactServer, iris: Iris
) -> None:
    artifacts.files["/stuck/iris.joblib"] = iris.joblib_path.read_bytes()
    artifacts.held.add("/stuck/iris.joblib")
    server = server_factory(MODEL_URI=f"{artifacts.url}/stuck/iris.joblib", MODEL_LOAD_TIMEOUT_SECONDS="1")
    assert "MODEL_LOAD_TIMEOUT_SECONDS" in _failure(server)


def test_configuration_errors_exit_2_naming_the_variable(server_factory: ServerFactory, iris: Iris) -> None:
    for env, variable in (
        ({"MODEL_URI": ""}, "MODEL_URI"),
        ({"MODEL_URI": str(iris.joblib_path), "PORT": "http"}, "PORT"),
        ({"MODEL_URI": str(iris.joblib_path), "MODEL_FORMAT": "tensorflow"}, "MODEL_FORMAT"),
        ({"MODEL_URI": str(iris.joblib_path), "RATE_LIMIT_RPS": "-1"}, "RATE_LIMIT_RPS"),
    ):
        server = server_factory(**env)
        assert server.wait_exit() == 2
        (line,) = server.log_lines()
        assert line["message"] == "invalid configuration" and variable in line["error"], line


def _copy(source: Path, target: Path) -> Path:
    target.write_bytes(source.read_bytes())
    return target


def _not_an_estimator(directory: Path) -> Path:
    import joblib

    path = directory / "dict.joblib"
    joblib.dump({"weights": [1, 2, 3]}, path)
    return path
