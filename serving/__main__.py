"""`plinth-serve` / `python -m plinth.serving`: configuration from the environment, JSON logs, one uvicorn worker.

Scale out with replicas rather than workers: one process per Pod keeps metrics, the model's memory and the rate
limits per process simple and exact. Exit status: 0 after a normal stop, 1 when the model failed to load, 2 for a
configuration error.
"""

from __future__ import annotations

import logging
import os
import sys

import uvicorn
from plinth.serving import logs, tracing
from plinth.serving.app import create_app
from plinth.serving.host import State
from plinth.serving.settings import Settings, SettingsError

log = logging.getLogger("plinth.serving")


def main() -> int:
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as error:
        logs.configure("INFO")
        log.error("invalid configuration", extra={"error": str(error)})
        return 2
    logs.configure(settings.log_level)
    servers: list[uvicorn.Server] = []

    def stop() -> None:
        servers[0].should_exit = True

    provider = tracing.configure(os.environ, settings.model_name)
    tracer = provider.get_tracer(tracing.TRACER_NAME) if provider is not None else None
    app = create_app(settings, tracer=tracer, on_load_failure=stop)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,  # Observe writes the request lines
        server_header=False,
        timeout_graceful_shutdown=25,  # inside Kubernetes' default 30 s termination grace period
    )
    servers.append(uvicorn.Server(config))
    try:
        servers[0].run()
    finally:
        if provider is not None:
            provider.shutdown()  # flush the spans still batched
    return 1 if app.state.host.state is State.FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
