"""Bringing the model artifact from MODEL_URI to a local file, with its size bounded and its sha256 checked.

Downloads stream to disk while hashing, so a multi-gigabyte artifact never sits in memory and a mismatch is known
the moment the last byte arrives. `s3://` is one signed GET (AWS Signature Version 4), which is all a model pull
needs; no SDK is pulled into the image for it.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_CHUNK = 1 << 20


class FetchError(RuntimeError):
    """The artifact could not be brought or failed its checks; the message says which and why."""


@dataclass(frozen=True)
class Artifact:
    path: Path
    size: int
    sha256: str


@dataclass(frozen=True)
class S3Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None
    region: str
    endpoint: str | None


def s3_credentials(directory: Path | None, env: Mapping[str, str]) -> S3Credentials:
    """From the mounted credentials directory (one file per key) first, then the environment."""

    def value(name: str) -> str | None:
        if directory is not None and (directory / name).is_file():
            return (directory / name).read_text().strip() or None
        return env.get(name) or None

    access, secret = value("AWS_ACCESS_KEY_ID"), value("AWS_SECRET_ACCESS_KEY")
    if not access or not secret:
        where = f"{directory} or the environment" if directory else "the environment"
        raise FetchError(f"s3:// needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in {where}")
    return S3Credentials(
        access_key_id=access,
        secret_access_key=secret,
        session_token=value("AWS_SESSION_TOKEN"),
        region=value("AWS_REGION") or value("AWS_DEFAULT_REGION") or "us-east-1",
        endpoint=value("AWS_ENDPOINT_URL_S3") or value("AWS_ENDPOINT_URL"),
    )


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def s3_request(bucket: str, key: str, credentials: S3Credentials, now: datetime.datetime) -> urllib.request.Request:
    """A GET of s3://bucket/key signed with Signature Version 4. A custom endpoint (an S3-compatible store) is
    addressed path-style, AWS itself virtual-hosted-style."""
    if credentials.endpoint:
        base = urllib.parse.urlsplit(credentials.endpoint.rstrip("/"))
        host, path = base.netloc, f"{base.path}/{bucket}/{key}"
        scheme = base.scheme
    else:
        host, path, scheme = f"{bucket}.s3.{credentials.region}.amazonaws.com", f"/{key}", "https"
    canonical_path = urllib.parse.quote(path, safe="/~")
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload = "UNSIGNED-PAYLOAD"
    headers = {"host": host, "x-amz-content-sha256": payload, "x-amz-date": stamp}
    if credentials.session_token:
        headers["x-amz-security-token"] = credentials.session_token
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        ["GET", canonical_path, "", *(f"{name}:{headers[name]}" for name in sorted(headers)), "", signed, payload]
    )
    scope = f"{day}/{credentials.region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key_bytes = _hmac(f"AWS4{credentials.secret_access_key}".encode(), day)
    for part in (credentials.region, "s3", "aws4_request"):
        key_bytes = _hmac(key_bytes, part)
    signature = hmac.new(key_bytes, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    return urllib.request.Request(f"{scheme}://{host}{canonical_path}", headers=headers, method="GET")


def _s3_error(error: urllib.error.HTTPError) -> str:
    """The S3 error code and message of an XML error body (`SignatureDoesNotMatch: …`), which say what to fix."""
    try:
        body = error.read(4096).decode(errors="replace")
    except OSError:
        return ""
    found = {tag: re.search(rf"<{tag}>([^<]*)</{tag}>", body) for tag in ("Code", "Message")}
    parts = [match.group(1) for match in found.values() if match]
    return f" ({': '.join(parts)})" if parts else ""


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    while chunk := stream.read(_CHUNK):
        yield chunk


def _store(chunks: Iterator[bytes], target: Path | None, max_bytes: int, what: str) -> tuple[int, str]:
    """Hash (and write to *target*) at most *max_bytes*."""
    digest, size = hashlib.sha256(), 0
    out = target.open("wb") if target is not None else None
    try:
        for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise FetchError(f"{what} is larger than MODEL_MAX_BYTES ({max_bytes} bytes)")
            digest.update(chunk)
            if out is not None:
                out.write(chunk)
    finally:
        if out is not None:
            out.close()
    return size, digest.hexdigest()


def fetch(
    uri: str,
    *,
    cache_dir: Path,
    max_bytes: int,
    timeout: float,
    sha256: str | None = None,
    credentials_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Artifact:
    """The artifact at *uri* as a local file, checked. Local files are read in place, remote ones downloaded to
    *cache_dir* under their own file name (which tells the format)."""
    parsed = urllib.parse.urlsplit(uri)
    scheme = parsed.scheme.lower()
    if scheme in ("", "file"):
        path = Path(urllib.parse.unquote(parsed.path) if scheme else uri)
        if not path.is_file():
            raise FetchError(f"{uri}: no such file")
        with path.open("rb") as stream:
            size, digest = _store(_chunks(stream), None, max_bytes, uri)
    elif scheme in ("http", "https", "s3"):
        if scheme == "s3":
            key = parsed.path.lstrip("/")
            if not parsed.netloc or not key:
                raise FetchError(f"{uri}: expected s3://bucket/key")
            credentials = s3_credentials(credentials_dir, os.environ if env is None else env)
            request = s3_request(parsed.netloc, key, credentials, datetime.datetime.now(datetime.UTC))
        else:
            request = urllib.request.Request(uri, method="GET")
        name = Path(urllib.parse.unquote(parsed.path)).name or "model"
        cache_dir.mkdir(parents=True, exist_ok=True)
        path = cache_dir / name
        partial = cache_dir / f".{name}.partial"
        shown = urllib.parse.urlunsplit(parsed._replace(query="", fragment=""))  # a presigned query is a credential
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                size, digest = _store(_chunks(response), partial, max_bytes, shown)
        except urllib.error.HTTPError as error:
            partial.unlink(missing_ok=True)
            raise FetchError(f"{shown}: HTTP {error.code} {error.reason}{_s3_error(error)}") from None
        except (urllib.error.URLError, OSError) as error:
            partial.unlink(missing_ok=True)
            raise FetchError(f"{shown}: {getattr(error, 'reason', error)}") from None
        except FetchError:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(path)
    else:
        raise FetchError(f"{uri}: unsupported scheme {scheme!r} (file, http, https, s3)")
    if sha256 is not None and digest != sha256.lower():
        raise FetchError(f"{uri}: sha256 mismatch: expected {sha256.lower()}, got {digest}")
    return Artifact(path=path, size=size, sha256=digest)
