"""Operator start-up and shutdown."""

from __future__ import annotations

import logging
from typing import Any

import kopf

log = logging.getLogger("plinth")


@kopf.on.startup()
def started(memo: kopf.Memo, **_: Any) -> None:
    memo.healthy.set()
    log.info("plinth operator started")


@kopf.on.cleanup()
def stopping(memo: kopf.Memo, **_: Any) -> None:
    memo.healthy.clear()
    log.info("plinth operator stopping")
