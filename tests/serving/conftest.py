"""The model server as a real process on 127.0.0.1, and models made at test time from data scikit-learn ships."""

from __future__ import annotations

import http.client
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from plinth.operator import devnode
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from tests.conftest import free_port, wait_for


@dataclass(frozen=True)
class Iris:
    features: np.ndarray[Any, Any]
    estimator: LogisticRegression
    joblib_path: Path
    onnx_path: Path
    unfitted_path: Path


@pytest.fixture(scope="session")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Iris:
    from skl2onnx import to_onnx  # imported here: slow to import, and only this fixture needs it

    directory = tmp_path_factory.mktemp("models")
    features, labels = load_iris(return_X_y=True)
    estimator = LogisticRegression(max_iter=1000).fit(features, labels)
    joblib.dump(estimator, directory / "iris.joblib")
    onnx = to_onnx(estimator, features[:1].astype(np.float32), options={"zipmap": False}, target_opset=17)
    (directory / "iris.onnx").write_bytes(onnx.SerializeToString())
    joblib.dump(LogisticRegression(), directory / "unfitted.joblib")  # loads, but fails its warm-up
    return Iris(features, estimator, directory / "iris.joblib", directory / "iris.onnx", directory / "unfitted.joblib")


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def fields(self) -> list[str]:
        return [d["field"] for d in self.json()["details"]]


@dataclass
class Server:
    """A running `python -m plinth.serving`; its log is a file, read whole when asked."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        if isinstance(body, dict):
            body = json.dumps(body)
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            reply = connection.getresponse()
            return Response(reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read())
        finally:
            connection.close()

    def infer(
        self, body: bytes | str | dict[str, Any], path: str = "/v2/models/iris/infer", **headers: str
    ) -> Response:
        return self.request("POST", path, body, {"Content-Type": "application/json", **headers})

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"the server exited with {self.process.returncode}:\n{self.log_path.read_text()}")
        try:
            return self.request("GET", "/v2/health/ready").status == 200
        except OSError:
            return False

    def wait_ready(self, timeout: float = 60) -> Server:
        wait_for(self.ready, timeout=timeout, interval=0.05, what=f"the server on {self.address} to be ready")
        return self

    def wait_exit(self, timeout: float = 60) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(log_dir: Path, **env: str) -> Server:
    port = free_port()
    log_path = Path(tempfile.mkstemp(dir=log_dir, suffix=".log")[1])
    full_env = {
        **os.environ,
        "PYTHONSAFEPATH": "1",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "MODEL_NAME": "iris",
        "MODEL_CACHE_DIR": str(log_dir / "cache"),
        **env,
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "plinth.serving"], env=full_env, stdout=log, stderr=log, cwd=log_dir
        )
    return Server(process, port, log_path, env)


ServerFactory = Callable[..., Server]


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start servers that are stopped when the test ends."""
    started: list[Server] = []

    def start(**env: str) -> Server:
        server = start_server(tmp_path, **env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server")


@pytest.fixture(scope="module")
def sklearn_server(iris: Iris, module_dir: Path) -> Iterator[Server]:
    server = start_server(module_dir, MODEL_URI=f"file://{iris.joblib_path}", MODEL_VERSION="1.0.0")
    try:
        yield server.wait_ready()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def onnx_server(iris: Iris, module_dir: Path) -> Iterator[Server]:
    server = start_server(module_dir, MODEL_URI=str(iris.onnx_path), MODEL_VERSION="2.0.0")
    try:
        yield server.wait_ready()
    finally:
        server.stop()


class ArtifactServer:
    """An HTTP server on 127.0.0.1 for model artifacts; `hold(path)` makes a download of *path* wait until
    `release()`, so a test can look at the server while its model is still loading."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.held: set[str] = set()
        self.gate = threading.Event()
        files, held, gate = self.files, self.held, self.gate

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path in held:
                    gate.wait()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def release(self) -> None:
        self.gate.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def artifacts() -> Iterator[ArtifactServer]:
    server = ArtifactServer()
    yield server
    server.close()


@dataclass(frozen=True)
class S3Store:
    """A real S3-compatible server (versitygw, POSIX backend) on 127.0.0.1: each directory of `root` is a bucket."""

    root: Path
    endpoint: str
    access_key: str
    secret_key: str

    def put(self, bucket: str, key: str, content: bytes) -> str:
        path = self.root / bucket / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return f"s3://{bucket}/{key}"

    def credentials(self, directory: Path, *, secret: str | None = None) -> Path:
        """A directory shaped like a mounted Secret: one file per key."""
        directory.mkdir(parents=True, exist_ok=True)
        values = {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": secret or self.secret_key,
            "AWS_ENDPOINT_URL": self.endpoint,
        }
        for name, value in values.items():
            (directory / name).write_text(value)
        return directory


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Store]:
    binary = devnode.versitygw()
    root = tmp_path_factory.mktemp("s3")
    port = free_port()
    store = S3Store(root, f"http://127.0.0.1:{port}", "plinth-test", secrets.token_hex(16))
    log_path = root.parent / "versitygw.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(binary),
                "--access",
                store.access_key,
                "--secret",
                store.secret_key,
                "--port",
                f"127.0.0.1:{port}",
                "posix",
                str(root),
            ],
            stdout=log,
            stderr=log,
            env={**os.environ, "VGW_PORT": ""},
        )
    try:
        wait_for(lambda: _accepts(port) or process.poll() is not None, timeout=30, what="versitygw to listen")
        assert process.poll() is None, log_path.read_text()
        yield store
    finally:
        process.terminate()
        process.wait(timeout=30)


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False
