"""The conversion webhook: the API server asks it to turn Plinth objects from one served version into another.

Served over HTTPS by every operator process (``plinth run``) and by ``plinth webhook`` alone. The conversion itself
is ``api.conversion`` (pure, exact both ways); this module is the ``ConversionReview`` envelope, its TLS and the
CRDs' ``caBundle``. A certificate comes from a directory: mounted by the chart (its own CA, or cert-manager's), or
generated there on first use (a CA and a serving certificate for 127.0.0.1 and localhost), and then reused by every
later process, so all processes on one machine serve with the same CA.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import ipaddress
import json
import logging
import os
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from plinth.adapters.kubernetes import set_conversion_ca_bundle
from plinth.operator.api.conversion import ConversionError, convert

log = logging.getLogger("plinth.webhook")
CERT_FILE, KEY_FILE, CA_FILE = "tls.crt", "tls.key", "ca.crt"
CONVERT_PATH = "/convert"
# A generated certificate's life; one that expires within the margin is made anew at start-up.
GENERATED_VALIDITY = dt.timedelta(days=3650)
RENEW_MARGIN = dt.timedelta(days=30)
# The API server sends at most this much in one ConversionReview (a LIST's worth of objects); more is refused.
MAX_REVIEW_BYTES = 64 * 1024 * 1024
# A connection the API server keeps open without a request for this long is closed; it opens another when needed.
IDLE_CONNECTION_SECONDS = 120


@dataclass(frozen=True)
class Certificates:
    directory: Path
    ca_pem: bytes

    @property
    def cert_file(self) -> Path:
        return self.directory / CERT_FILE

    @property
    def key_file(self) -> Path:
        return self.directory / KEY_FILE


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _generate(directory: Path, hosts: list[str]) -> None:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("plinth conversion webhook CA"))
        .issuer_name(_name("plinth conversion webhook CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + GENERATED_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + GENERATED_VALIDITY)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = {
        CA_FILE: ca.public_bytes(serialization.Encoding.PEM),
        CERT_FILE: cert.public_bytes(serialization.Encoding.PEM),
        KEY_FILE: key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    }
    for name, data in files.items():
        temporary = directory / f".{name}.tmp"
        temporary.write_bytes(data)
        temporary.chmod(0o600)
        temporary.replace(directory / name)


def _usable(directory: Path, hosts: list[str]) -> bool:
    try:
        cert = x509.load_pem_x509_certificate((directory / CERT_FILE).read_bytes())
        (directory / KEY_FILE).stat()
        (directory / CA_FILE).stat()
    except (OSError, ValueError):
        return False
    if cert.not_valid_after_utc - RENEW_MARGIN < dt.datetime.now(dt.UTC):
        return False
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    covered = {str(n) for n in names.get_values_for_type(x509.DNSName)}
    covered |= {str(n) for n in names.get_values_for_type(x509.IPAddress)}
    return set(hosts) <= covered


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    with (directory / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_certificates(directory: Path, hosts: list[str], *, generate: bool = True) -> Certificates:
    """The serving certificate in *directory* (tls.crt, tls.key, ca.crt); generated when missing, expiring or not
    covering *hosts*, unless *generate* is off (a mounted Secret: then it must be there)."""
    if generate:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with _locked(directory):  # two processes starting at once make one CA, not two
            if not _usable(directory, hosts):
                _generate(directory, hosts)
                log.info(f"webhook: generated a CA and a serving certificate for {', '.join(hosts)} in {directory}")
    return Certificates(directory, (directory / CA_FILE).read_bytes())


def review(request: dict[str, Any]) -> dict[str, Any]:
    """The ConversionReview answering *request* (apiextensions.k8s.io/v1). A failure names the object and why; it
    never quotes the object."""
    body = request.get("request") or {}
    uid, desired = body.get("uid", ""), body.get("desiredAPIVersion", "")
    converted, failure = [], None
    for obj in body.get("objects") or []:
        if not isinstance(obj, dict):
            failure = "cannot convert an object that is not a JSON object"
            break
        try:
            converted.append(convert(obj, desired))
        except ConversionError as err:
            meta = obj.get("metadata") or {}
            failure = f"cannot convert {meta.get('namespace', '')}/{meta.get('name', '')}: {err}"
            break
    response: dict[str, Any] = {"uid": uid}
    if failure is None:
        response |= {"convertedObjects": converted, "result": {"status": "Success"}}
    else:
        response |= {"result": {"status": "Failure", "message": failure}}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview", "response": response}


class Recorder(Protocol):
    """Where conversions are counted (``metrics.Metrics.conversion``)."""

    def conversion(self, from_version: str, to_version: str, result: str, count: int) -> None: ...


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # the API server keeps its connections open
    timeout = IDLE_CONNECTION_SECONDS  # a connection idle this long is closed (with the thread serving it)
    recorder: Recorder
    ready: Callable[[], bool]

    def do_POST(self) -> None:
        if self.path.split("?")[0] != CONVERT_PATH:
            self._send(404, {"message": f"not found: {self.path}"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if length > MAX_REVIEW_BYTES:
            self._send(413, {"message": f"a ConversionReview of at most {MAX_REVIEW_BYTES} bytes"})
            return
        if length <= 0:
            self._send(400, {"message": "a ConversionReview body (with its Content-Length) is required"})
            return
        try:
            request = json.loads(self.rfile.read(length))
        except ValueError:
            self._send(400, {"message": "the body is not JSON"})
            return
        body = request.get("request") if isinstance(request, dict) else None
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("desiredAPIVersion"), str)
            or not isinstance(body.get("objects"), list)
        ):
            self._send(400, {"message": "not a ConversionReview: request.desiredAPIVersion and request.objects"})
            return
        answer = review(request)
        objects = body["objects"]
        sources = sorted({str(o.get("apiVersion")) for o in objects if isinstance(o, dict)})
        result = answer["response"]["result"]["status"]
        for source in sources or ["none"]:
            self.recorder.conversion(source, body["desiredAPIVersion"], result, len(objects))
        if result != "Success":
            log.warning(f"webhook: conversion failed: {answer['response']['result']['message']}")
        self._send(200, answer)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/healthz":
            self._send(200, {"status": "ok"})
        elif path == "/readyz":  # conversions are served, and the process around them has started
            ready = type(self).ready()
            self._send(200 if ready else 503, {"status": "ok" if ready else "starting"})
        else:
            self._send(404, {"message": f"not found: {self.path}"})

    def _send(self, code: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: every conversion is counted in the metrics, a failure logged by do_POST."""


class _ReusePortServer(ThreadingHTTPServer):
    """Several processes on one machine (replicas of a host-run operator, ``plinth webhook``) may listen on the same
    port with the same certificate: the kernel shares the connections out, and the port answers while any one of
    them runs."""

    daemon_threads = True
    request_queue_size = 128  # the API server opens many connections at once after a restart or in a burst

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


def serve(
    certificates: Certificates,
    *,
    host: str,
    port: int,
    recorder: Recorder,
    ready: Callable[[], bool] = lambda: True,
) -> ThreadingHTTPServer:
    """Serve conversions on https://host:port/convert from a daemon thread; returns the server (its port, if 0).
    ``/readyz`` answers 200 once *ready* says so (the operator has started: the chart's readiness probe)."""
    handler = type("ConversionHandler", (_Handler,), {"recorder": recorder, "ready": staticmethod(ready)})
    server = _ReusePortServer((host, port), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certificates.cert_file, certificates.key_file)
    # The handshake happens in each connection's own thread, not in the one accepting connections: a slow or silent
    # client must not hold up every other.
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    threading.Thread(target=server.serve_forever, name="plinth webhook", daemon=True).start()
    return server


def set_ca_bundle(api_client: Any, ca_pem: bytes, crd_names: list[str]) -> list[str]:
    """Point the CRDs' conversion webhook at this CA (``caBundle`` only: the URL or Service is the CRD's, from crds/
    or the chart). Returns the CRDs changed; one not installed is skipped with a warning."""
    bundle = base64.b64encode(ca_pem).decode()
    changed = []
    for name in crd_names:
        outcome = set_conversion_ca_bundle(api_client, name, bundle)
        if outcome is None:
            log.warning(f"webhook: CRD {name} is not installed; run again once it is, to set its caBundle")
        elif outcome:
            changed.append(name)
    return changed


def hosts_from(value: str | None) -> list[str]:
    """The names the serving certificate covers: 127.0.0.1 and localhost, and PLINTH_WEBHOOK_DNS_NAMES."""
    extra = [h.strip() for h in (value or "").split(",") if h.strip()]
    return ["127.0.0.1", "localhost", *extra]


def default_cert_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "plinth" / "webhook"
