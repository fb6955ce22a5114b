"""Optional bearer-token authentication and a per-token rate limit (token bucket).

Tokens are re-read when their file changes (a Secret update reaches a mounted volume without a restart), at most
every few seconds. A token is never logged: the log and the limiter know it by a short hash.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from plinth.serving.errors import APIError

_RECHECK_SECONDS = 5.0


def read_tokens(path: Path) -> list[str]:
    """A file: one token per line (blank lines and `#` comments skipped). A directory (a mounted Secret): the
    content of each visible file is one token."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if not p.name.startswith(".") and p.is_file())
        return [token for p in files if (token := p.read_text().strip())]
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def client_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:12]


@dataclass
class TokenFile:
    path: Path
    clock: Callable[[], float] = time.monotonic
    _tokens: list[bytes] = field(default_factory=list)
    _stamp: tuple[float, int] | None = None
    _checked: float = -math.inf

    def tokens(self) -> list[bytes]:
        now = self.clock()
        if now - self._checked >= _RECHECK_SECONDS:
            self._checked = now
            stat = max((p.stat() for p in [self.path, *self._members()]), key=lambda s: s.st_mtime_ns)
            stamp = (stat.st_mtime, stat.st_size)
            if stamp != self._stamp:
                self._tokens, self._stamp = [t.encode() for t in read_tokens(self.path)], stamp
        return self._tokens

    def _members(self) -> list[Path]:
        return [p for p in self.path.iterdir() if not p.name.startswith(".")] if self.path.is_dir() else []

    def authenticate(self, authorization: str | None) -> str:
        """The caller's client id, or a 401 (no bearer token) / 403 (an unknown one)."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise APIError(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        given = token.encode()
        # Compare with every token (no early exit), each in constant time.
        matched = False
        for known in self.tokens():
            matched |= hmac.compare_digest(given, known)
        if not matched:
            raise APIError(
                403, "the bearer token is not accepted", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
        return client_id(token)


@dataclass
class RateLimiter:
    """A token bucket per client: `rate` requests per second on average, bursts of up to `burst`."""

    rate: float
    burst: int
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # client -> (tokens, last refill)

    def take(self, client: str) -> None:
        now = self.clock()
        tokens, last = self._buckets.get(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[client] = (tokens, now)
            wait = math.ceil((1.0 - tokens) / self.rate)
            raise APIError(429, f"rate limit of {self.rate:g} requests/s exceeded", headers={"Retry-After": str(wait)})
        self._buckets[client] = (tokens - 1.0, now)
