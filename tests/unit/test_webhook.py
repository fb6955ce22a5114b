"""The conversion webhook's envelope and TLS, over a real HTTPS connection verified with its CA."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from plinth.operator.api.conversion import ALPHA, BETA
from plinth.operator.metrics import Metrics
from plinth.operator.webhook import CERT_FILE, ensure_certificates, review, serve

MODEL = {
    "apiVersion": ALPHA,
    "kind": "ModelDeployment",
    "metadata": {"name": "fraud", "namespace": "ml"},
    "spec": {"model": {"name": "fraud", "version": "1.0.0", "uri": "s3://m/1"}, "replicas": 2},
}


def _review(objects: list[Any], desired: str = BETA) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "request": {"uid": "r-1", "desiredAPIVersion": desired, "objects": objects},
    }


def test_a_review_converts_every_object_or_fails_naming_one() -> None:
    answer = review(_review([MODEL, {**MODEL, "metadata": {"name": "b", "namespace": "ml"}}]))["response"]
    assert answer["uid"] == "r-1" and answer["result"] == {"status": "Success"}
    assert [o["spec"]["scaling"] for o in answer["convertedObjects"]] == [{"replicas": 2}] * 2
    failed = review(_review([MODEL, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "x"}}]))
    result = failed["response"]["result"]
    assert result["status"] == "Failure" and "x/p" in result["message"] and "not a Plinth kind" in result["message"]
    assert "convertedObjects" not in failed["response"]


def test_the_certificate_is_made_once_and_shared(tmp_path: Path) -> None:
    first = ensure_certificates(tmp_path, ["127.0.0.1", "localhost"])
    again = ensure_certificates(tmp_path, ["127.0.0.1", "localhost"])
    assert first.ca_pem == again.ca_pem, "a second process serves with the same CA"
    assert oct((tmp_path / "tls.key").stat().st_mode & 0o777) == "0o600"
    wider = ensure_certificates(tmp_path, ["127.0.0.1", "localhost", "plinth-webhook.ops.svc"])
    assert wider.ca_pem != first.ca_pem, "a certificate that does not cover every name is made anew"


def _post(url: str, body: bytes, context: ssl.SSLContext) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_conversions_are_served_over_tls_and_counted(tmp_path: Path) -> None:
    certificates = ensure_certificates(tmp_path, ["127.0.0.1", "localhost"])
    metrics = Metrics()
    server = serve(certificates, host="127.0.0.1", port=0, recorder=metrics)
    try:
        context = ssl.create_default_context(cadata=certificates.ca_pem.decode())
        url = f"https://127.0.0.1:{server.server_port}"
        status, answer = _post(f"{url}/convert", json.dumps(_review([MODEL])).encode(), context)
        assert status == 200 and answer["response"]["convertedObjects"][0]["apiVersion"] == BETA
        assert metrics.conversions.labels(ALPHA, BETA, "Success")._value.get() == 1
        assert _post(f"{url}/convert", b"not json", context)[0] == 400
        for malformed in ([], {}, {"request": {"objects": "x", "desiredAPIVersion": BETA}}, {"request": []}):
            status, answer = _post(f"{url}/convert", json.dumps(malformed).encode(), context)
            assert status == 400 and "not a ConversionReview" in answer["message"], malformed
        status, answer = _post(f"{url}/convert", json.dumps(_review([1])).encode(), context)
        assert status == 200 and answer["response"]["result"]["status"] == "Failure"
        assert _post(f"{url}/elsewhere", b"{}", context)[0] == 404
        with urllib.request.urlopen(f"{url}/readyz", context=context, timeout=10) as resp:
            assert resp.status == 200
        # A client that does not trust this CA is refused the handshake.
        stranger = ssl.create_default_context()
        try:
            urllib.request.urlopen(f"{url}/readyz", context=stranger, timeout=10)
            raise AssertionError("a client without the CA was served")
        except urllib.error.URLError as err:
            assert isinstance(err.reason, ssl.SSLCertVerificationError)
    finally:
        server.shutdown()
        server.server_close()


def test_two_processes_may_serve_one_port(tmp_path: Path) -> None:
    """SO_REUSEPORT: a second server (another process on the machine, with the same certificate) binds the same
    port, and the port answers while either runs."""
    certificates = ensure_certificates(tmp_path, ["127.0.0.1"])
    first = serve(certificates, host="127.0.0.1", port=0, recorder=Metrics())
    second = serve(certificates, host="127.0.0.1", port=first.server_port, recorder=Metrics())
    context = ssl.create_default_context(cadata=certificates.ca_pem.decode())
    try:
        first.shutdown()
        first.server_close()
        done = threading.Event()
        with urllib.request.urlopen(f"https://127.0.0.1:{second.server_port}/readyz", context=context, timeout=10):
            done.set()
        assert done.is_set()
    finally:
        second.shutdown()
        second.server_close()
    assert (tmp_path / CERT_FILE).exists()


def test_ready_only_once_the_operator_has_started_and_a_silent_client_blocks_nobody(tmp_path: Path) -> None:
    certificates = ensure_certificates(tmp_path, ["127.0.0.1"])
    started = threading.Event()
    server = serve(certificates, host="127.0.0.1", port=0, recorder=Metrics(), ready=started.is_set)
    context = ssl.create_default_context(cadata=certificates.ca_pem.decode())
    url = f"https://127.0.0.1:{server.server_port}"
    silent = socket.create_connection(("127.0.0.1", server.server_port))  # connects, never says hello
    try:
        try:
            urllib.request.urlopen(f"{url}/readyz", context=context, timeout=10)
            raise AssertionError("ready before the operator started")
        except urllib.error.HTTPError as err:
            assert err.code == 503
        with urllib.request.urlopen(f"{url}/healthz", context=context, timeout=10) as resp:
            assert resp.status == 200, "alive all along"
        started.set()
        with urllib.request.urlopen(f"{url}/readyz", context=context, timeout=10) as resp:
            assert resp.status == 200
    finally:
        silent.close()
        server.shutdown()
        server.server_close()
