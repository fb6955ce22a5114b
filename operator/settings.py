"""Operator settings, read once from the environment (PLINTH_*) at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass

FIELD_MANAGER = "plinth"
FINALIZER = "plinth.dev/finalizer"
MANAGED_BY = {"app.kubernetes.io/managed-by": "plinth"}


@dataclass(frozen=True)
class Settings:
    log_level: str = "INFO"
    """Log level of the operator's JSON logs."""

    max_workers: int = 20
    """kopf's cap on concurrently handled objects: bounds memory and API load on a 2-core operator pod."""

    watch_timeout_seconds: int = 300
    """Server-side timeout of each watch request; kopf re-establishes the watch, so silent stalls cannot last."""

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            log_level=env.get("PLINTH_LOG_LEVEL", cls.log_level),
            max_workers=int(env.get("PLINTH_MAX_WORKERS", cls.max_workers)),
            watch_timeout_seconds=int(env.get("PLINTH_WATCH_TIMEOUT_SECONDS", cls.watch_timeout_seconds)),
        )
