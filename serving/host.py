"""The one model a server hosts, and its life: fetch, load, warm up, then ready.

Loading runs in a daemon thread so the server answers liveness probes meanwhile and a load that outlives its
timeout cannot keep the process from exiting. Readiness is reported only after a warm-up inference succeeded, so a
model that loads but cannot predict never receives traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import threading
import time
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any, TypeVar

from plinth.serving.fetch import fetch
from plinth.serving.metrics import Metrics
from plinth.serving.runtimes import guess_format, runtime_for
from plinth.serving.runtimes.base import Model, example_inputs
from plinth.serving.settings import Settings

log = logging.getLogger("plinth.serving")
T = TypeVar("T")


class State(enum.Enum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


class ModelHost:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.state = State.LOADING
        self.error: str | None = None
        self.model: Model | None = None
        self.platform = ""
        self.labels = {"model": settings.model_name, "version": settings.model_version}

    async def load(self) -> None:
        """Fetch, load and warm up within MODEL_LOAD_TIMEOUT_SECONDS; on failure the state is FAILED and `error`
        says why (the caller decides to exit)."""
        started = time.monotonic()
        try:
            await asyncio.wait_for(_in_daemon_thread(self._load), self.settings.model_load_timeout_seconds)
        except TimeoutError:
            self._fail(
                f"loading took longer than MODEL_LOAD_TIMEOUT_SECONDS ({self.settings.model_load_timeout_seconds:g} s)"
            )
        except Exception as error:
            self._fail(str(error) or type(error).__name__)
        else:
            seconds = time.monotonic() - started
            self.metrics.load_seconds.labels(**self.labels).set(seconds)
            self.metrics.ready.labels(**self.labels).set(1)
            self.state = State.READY
            log.info("model ready", extra={**self.labels, "duration_seconds": round(seconds, 3)})

    def _fail(self, reason: str) -> None:
        self.state, self.error = State.FAILED, reason
        log.error("model failed to load", extra={**self.labels, "uri": self._shown_uri(), "error": reason})

    def _shown_uri(self) -> str:
        return self.settings.model_uri.split("?", 1)[0]  # a presigned URL's query is a credential

    def _load(self) -> None:
        settings = self.settings
        started = time.monotonic()
        artifact = fetch(
            settings.model_uri,
            cache_dir=settings.model_cache_dir,
            max_bytes=settings.model_max_bytes,
            timeout=settings.model_load_timeout_seconds,
            sha256=settings.model_sha256,
            credentials_dir=settings.storage_credentials_dir,
        )
        fetched = time.monotonic()
        model_format = settings.model_format or guess_format(PurePosixPath(artifact.path).name)
        if model_format is None:
            raise ValueError(f"cannot tell the format of {artifact.path.name}: set MODEL_FORMAT")
        runtime = runtime_for(model_format)
        model = runtime.load(artifact.path)
        loaded = time.monotonic()
        try:
            model.predict(example_inputs(model.signature), [spec.name for spec in model.signature.outputs])
        except Exception as error:
            raise RuntimeError(f"the warm-up inference failed: {error}") from error
        self.metrics.model_bytes.labels(**self.labels).set(artifact.size)
        log.info(
            "model loaded",
            extra={
                **self.labels,
                "uri": self._shown_uri(),
                "format": model_format,
                "size_bytes": artifact.size,
                "sha256": artifact.sha256,
                "fetch_seconds": round(fetched - started, 3),
                "load_seconds": round(loaded - fetched, 3),
                "warmup_seconds": round(time.monotonic() - loaded, 3),
            },
        )
        self.model, self.platform = model, runtime.platform


async def _in_daemon_thread(function: Callable[[], T]) -> T:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(setter: Callable[[Any], None], value: Any) -> None:
        if not future.done():
            setter(value)

    def run() -> None:
        try:
            outcome: tuple[Callable[[Any], None], Any] = (future.set_result, function())
        except BaseException as error:
            outcome = (future.set_exception, error)
        # The loop may have closed: the server gave up waiting (a load timeout) and stopped.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=run, name="model-load", daemon=True).start()
    return await future
