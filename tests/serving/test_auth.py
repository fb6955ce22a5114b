"""Bearer tokens from a mounted Secret (401 without, 403 for an unknown one, rotation without a restart) and
per-token rate limits (429 with Retry-After), in a real server process; the bucket's arithmetic on a fake clock."""

from __future__ import annotations

from pathlib import Path

import pytest
from plinth.serving.auth import RateLimiter, TokenFile, client_id
from plinth.serving.errors import APIError

from tests.conftest import wait_for
from tests.serving.conftest import Iris, ServerFactory

INFER = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}
ALICE, BOB = "alice-" + "a" * 26, "bob-" + "b" * 28


def _secret(directory: Path, **tokens: str) -> Path:
    directory.mkdir(exist_ok=True)
    for key, value in tokens.items():
        (directory / key).write_text(value + "\n")
    return directory


def test_bearer_tokens(server_factory: ServerFactory, iris: Iris, tmp_path: Path) -> None:
    tokens = _secret(tmp_path / "tokens", alice=ALICE, bob=BOB)
    server = server_factory(MODEL_URI=str(iris.joblib_path), AUTH_TOKENS_FILE=str(tokens)).wait_ready()
    missing = server.infer(INFER)
    assert missing.status == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert server.infer(INFER, Authorization="Basic " + ALICE).status == 401
    unknown = server.infer(INFER, Authorization="Bearer not-a-token")
    assert unknown.status == 403 and "invalid_token" in unknown.headers["www-authenticate"]
    assert server.infer(INFER, Authorization=f"Bearer {ALICE}").status == 200
    assert server.request("GET", "/v2/models/iris", headers={"Authorization": f"Bearer {BOB}"}).status == 200
    assert server.request("GET", "/v2/models/iris").status == 401
    # probes and scrapes need no token
    for path in ("/v2/health/live", "/v2/health/ready", "/metrics", "/v2/docs/openapi.json"):
        assert server.request("GET", path).status == 200, path
    log = server.log_path.read_text()
    assert ALICE not in log and BOB not in log and "not-a-token" not in log
    assert client_id(ALICE) in {line.get("client") for line in server.log_lines()}


def test_a_rotated_secret_is_picked_up_without_a_restart(
    server_factory: ServerFactory, iris: Iris, tmp_path: Path
) -> None:
    tokens = _secret(tmp_path / "tokens", alice=ALICE)
    server = server_factory(MODEL_URI=str(iris.joblib_path), AUTH_TOKENS_FILE=str(tokens)).wait_ready()
    assert server.infer(INFER, Authorization=f"Bearer {BOB}").status == 403
    _secret(tokens, alice=BOB)  # the kubelet rewrites the mounted file when the Secret changes
    wait_for(
        lambda: server.infer(INFER, Authorization=f"Bearer {BOB}").status == 200,
        timeout=30,
        what="the new token to be accepted",
    )
    assert server.infer(INFER, Authorization=f"Bearer {ALICE}").status == 403


def test_rate_limits_are_per_token(server_factory: ServerFactory, iris: Iris, tmp_path: Path) -> None:
    tokens = _secret(tmp_path / "tokens", alice=ALICE, bob=BOB)
    server = server_factory(
        MODEL_URI=str(iris.joblib_path),
        AUTH_TOKENS_FILE=str(tokens),
        RATE_LIMIT_RPS="0.01",  # one request per 100 s after the burst: no refill can happen during the test
        RATE_LIMIT_BURST="3",
    ).wait_ready()
    alice = [server.infer(INFER, Authorization=f"Bearer {ALICE}").status for _ in range(4)]
    assert alice == [200, 200, 200, 429]
    limited = server.infer(INFER, Authorization=f"Bearer {ALICE}")
    assert limited.status == 429 and 0 < int(limited.headers["retry-after"]) <= 100
    assert "rate limit" in limited.json()["error"]
    assert server.infer(INFER, Authorization=f"Bearer {BOB}").status == 200


def test_rate_limit_without_auth_is_one_bucket(server_factory: ServerFactory, iris: Iris) -> None:
    server = server_factory(MODEL_URI=str(iris.joblib_path), RATE_LIMIT_RPS="0.01", RATE_LIMIT_BURST="2").wait_ready()
    assert [server.infer(INFER).status for _ in range(3)] == [200, 200, 429]
    assert server.request("GET", "/v2/health/ready").status == 200  # probes are never limited


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_refills_at_its_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=2, clock=clock)
    limiter.take("a")
    limiter.take("a")
    with pytest.raises(APIError) as refused:
        limiter.take("a")
    assert refused.value.status == 429 and refused.value.headers["Retry-After"] == "1"
    clock.now = 0.5  # one token back
    limiter.take("a")
    with pytest.raises(APIError):
        limiter.take("a")
    clock.now = 100.0  # never more than the burst
    limiter.take("a")
    limiter.take("a")
    with pytest.raises(APIError):
        limiter.take("a")


def test_token_file_formats(tmp_path: Path) -> None:
    listing = tmp_path / "tokens.txt"
    listing.write_text(f"# team tokens\n{ALICE}\n\n  {BOB}  \n")
    tokens = TokenFile(listing)
    assert tokens.authenticate(f"Bearer {BOB}") == client_id(BOB)
    with pytest.raises(APIError) as refused:
        tokens.authenticate("Bearer # team tokens")
    assert refused.value.status == 403
