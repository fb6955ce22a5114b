"""A real Prometheus server (Debian's binary, found or fetched by hack/promtool.sh) on 127.0.0.1, for the tests
whose canary gates ask it."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ROOT, free_port, http_get, wait_for


@contextlib.contextmanager
def running_prometheus(config: str, directory: Path) -> Iterator[str]:
    """Prometheus with *config* (YAML) and its data and log in *directory*; yields its URL once ready."""
    binary = subprocess.run(
        ["bash", str(ROOT / "hack" / "promtool.sh"), "prometheus"], capture_output=True, text=True, check=True
    ).stdout.strip()
    (directory / "prometheus.yml").write_text(config)
    port = free_port()
    with (directory / "prometheus.log").open("w") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_get(f"{url}/-/ready")[0] == 200, what="Prometheus ready")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
