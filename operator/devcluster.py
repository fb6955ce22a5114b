"""The local, Docker-free control plane used for development and tests (``plinth cluster up|down|env``).

The Go module in ``hack/localkube`` is built once and cached under ``~/.cache/plinth/localkube/<key>/``, keyed by a
hash of its sources (go.mod, go.sum, *.go), so a second ``up`` starts in seconds. Each cluster lives in its own
directory (``~/.cache/plinth/clusters/<name>/`` by default) with its kubeconfig, logs and ``state.json``; several run
side by side on free loopback ports.

Nodes are simulated here (Pods are marked Running; for scale); ``devnode`` starts a cluster with one real node
through the same ``up`` (its ``node_args``) and reads what the node publishes on 127.0.0.1 from ``state.json``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CACHE_ENV = "PLINTH_CACHE_DIR"
SOURCE_ENV = "PLINTH_LOCALKUBE_SRC"
BINARY_ENV = "PLINTH_LOCALKUBE_BIN"
BOOT_TIMEOUT = 180.0
OVERLAY_DIR = "_overlay"
STOP_TIMEOUT = 30.0


class ClusterError(RuntimeError):
    """The local control plane could not be built, started or stopped; the message says why and where to look."""


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "plinth")


def source_dir() -> Path:
    """The Go module of the control plane: in a source checkout, ``hack/localkube`` beside ``operator/``."""
    configured = os.environ.get(SOURCE_ENV)
    path = Path(configured) if configured else Path(__file__).resolve().parent.parent / "hack" / "localkube"
    if not (path / "go.mod").is_file():
        raise ClusterError(
            f"the control plane's Go module is not at {path}: run from a Plinth source checkout, "
            f"or set {SOURCE_ENV} (sources) or {BINARY_ENV} (a built binary)"
        )
    return path


def kubernetes_version(src: Path) -> str:
    """The Kubernetes version the module pins; it is stamped into the binary so servers report it."""
    match = re.search(r"^\s*k8s\.io/kubernetes (v\S+)", (src / "go.mod").read_text(), re.MULTILINE)
    if not match:
        raise ClusterError(f"{src / 'go.mod'} does not require k8s.io/kubernetes")
    return match.group(1)


def source_key(src: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in [src / "go.mod", src / "go.sum", *src.rglob("*.go")] if p.is_file()):
        digest.update(str(path.relative_to(src)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def ensure_binary(log: bool = True) -> Path:
    """Return the built control-plane binary, building it first if its sources changed (cached otherwise)."""
    if configured := os.environ.get(BINARY_ENV):
        return Path(configured)
    src = source_dir()
    version = kubernetes_version(src)
    minor = version.split(".")[1]
    ldflags = " ".join(
        [
            "-s -w",
            f"-X main.kubeVersion={version}",
            f"-X k8s.io/component-base/version.gitVersion={version}",
            "-X k8s.io/component-base/version.gitMajor=1",
            f"-X k8s.io/component-base/version.gitMinor={minor}",
            f"-X k8s.io/client-go/pkg/version.gitVersion={version}",
        ]
    )
    return ensure_go_binary(src, "localkube", ldflags=ldflags, what=f"the local control plane ({version})", log=log)


def ensure_go_binary(
    src: Path, name: str, *, package: str = ".", ldflags: str = "-s -w", what: str = "", log: bool = True
) -> Path:
    """Build *package* of the Go module in *src* once into ``<cache>/<name>/<source key>/<name>`` and return it.

    One cache for every Go tool the project builds from source (the control plane, helm): keyed by the module's
    go.mod/go.sum/*.go so a version bump rebuilds, locked so concurrent test sessions build it once.
    """
    target = cache_dir() / name / source_key(src) / name
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.parent / ".build.lock"):
        if target.is_file():  # built by a concurrent caller while we waited
            return target
        if shutil.which("go") is None:
            raise ClusterError(f"building {what or name} needs the Go toolchain (`go`) on PATH")
        env = {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod -buildvcs=false"}
        if log:
            print(f"building {what or name} into {target} — the first build takes a while", file=sys.stderr)
        started = time.monotonic()
        tmp = target.with_suffix(".tmp")
        overlay = _overlay(src, env, target.parent / "patched")
        result = subprocess.run(
            ["go", "build", "-trimpath", "-ldflags", ldflags, *overlay, "-o", str(tmp), package],
            cwd=src,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ClusterError(f"go build failed in {src}:\n{result.stderr[-4000:]}")
        tmp.replace(target)
        if log:
            print(f"built in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return target


def _overlay(src: Path, env: Mapping[str, str], work: Path) -> list[str]:
    """Build arguments that patch dependencies with the files under ``<src>/_overlay/<module path>/`` (a folder the
    go command ignores, as every ``_`` folder), for the rare fix a pinned release needs on this machine; each such
    file says why. The patched module is a copy in *work*, swapped in by a ``replace`` in a copy of go.mod
    (``-modfile``): the module cache stays pristine. No folder, no arguments."""
    root = src / OVERLAY_DIR
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
    if not files:
        return []

    def go(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["go", *args], cwd=src, env=dict(env), capture_output=True, text=True, check=False)

    listed = go("list", "-m", "all")
    modules = {line.split(" ", 1)[0] for line in listed.stdout.splitlines()}
    patched: dict[str, Path] = {}
    for file in files:
        relative = file.relative_to(root).as_posix()
        owner = max((m for m in modules if relative.startswith(m + "/")), key=len, default=None)
        if owner is None:
            raise ClusterError(f"{file}: no module of {src / 'go.mod'} holds {relative} {listed.stderr.strip()}")
        if owner not in patched:
            downloaded = go("mod", "download", "-json", owner)
            pristine = json.loads(downloaded.stdout or "{}").get("Dir")
            if not pristine:
                raise ClusterError(f"go mod download {owner} failed in {src}: {downloaded.stderr.strip()[-2000:]}")
            copy = work / owner
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(pristine, copy, copy_function=shutil.copyfile)
            patched[owner] = copy
        shutil.copyfile(file, patched[owner] / relative.removeprefix(owner + "/"))
    modfile = work / "go.mod"
    replaces = "".join(f"replace {module} => {copy}\n" for module, copy in patched.items())
    modfile.write_text((src / "go.mod").read_text() + "\n" + replaces)
    shutil.copyfile(src / "go.sum", work / "go.sum")
    return [f"-modfile={modfile}"]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class LocalCluster:
    """A running local cluster, as described by its ``state.json``."""

    name: str
    directory: Path
    kubeconfig: Path
    server: str
    pid: int
    nodes: tuple[str, ...]
    version: str
    published: dict[str, str] = field(default_factory=dict)
    """Real node: what the host reaches on 127.0.0.1, by name (``ingress`` -> ``127.0.0.1:PORT``)."""

    @property
    def real(self) -> bool:
        return bool(self.published)

    @property
    def ingress(self) -> str:
        """``http://127.0.0.1:PORT``: the ingress controller's web entrypoint (a real node only)."""
        if "ingress" not in self.published:
            raise ClusterError(f"cluster {self.name!r} has no real node: no ingress is published")
        return f"http://{self.published['ingress']}"

    def env(self) -> dict[str, str]:
        """What a shell needs to use the cluster: KUBECONFIG, and PLINTH_INGRESS (a real node's ingress URL)."""
        env = {"KUBECONFIG": str(self.kubeconfig)}
        if "ingress" in self.published:
            env["PLINTH_INGRESS"] = self.ingress
        return env


def cluster_dir(name: str, directory: Path | None = None) -> Path:
    return directory or cache_dir() / "clusters" / name


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers signal 0; it is gone for our purposes.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return False
    return True


def status(name: str, directory: Path | None = None) -> LocalCluster | None:
    """The running cluster called *name*, or None when it is not running."""
    root = cluster_dir(name, directory)
    try:
        state = json.loads((root / "state.json").read_text())
    except (OSError, ValueError):
        return None
    if not _alive(int(state["pid"])):
        return None
    return LocalCluster(
        name=name,
        directory=root,
        kubeconfig=Path(state["kubeconfig"]),
        server=state["server"],
        pid=int(state["pid"]),
        nodes=tuple(state.get("nodes", ())),
        version=state.get("version", ""),
        published=dict(state.get("published") or {}),
    )


def up(
    name: str = "dev",
    *,
    directory: Path | None = None,
    nodes: int = 1,
    node_args: Sequence[str] = (),
    timeout: float = BOOT_TIMEOUT,
) -> LocalCluster:
    """Start the cluster *name* (or return it if it already runs) and wait until the API is ready and nodes are Ready.

    The supervisor only writes ``state.json`` once ``/readyz`` answers and every node is registered Ready, so its
    appearance is the readiness signal. *node_args* are ``localkube up``'s real-node flags (see ``devnode``).
    """
    if running := status(name, directory):
        return running
    binary = ensure_binary()
    args = [str(binary), "up", "--nodes", str(nodes), *node_args]
    root = cluster_dir(name, directory)
    root.mkdir(parents=True, exist_ok=True)
    with (root / "localkube.log").open("w") as log:
        proc = subprocess.Popen(
            [*args, "--dir", str(root)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ClusterError(f"the control plane exited with {proc.returncode}: {_tail(root / 'localkube.log')}")
        if cluster := status(name, directory):
            return cluster
        time.sleep(0.1)
    proc.terminate()
    raise ClusterError(f"the control plane was not ready within {timeout:.0f}s; logs are in {root / 'logs'}")


def down(name: str = "dev", *, directory: Path | None = None, keep: bool = False) -> bool:
    """Stop the cluster *name* (SIGTERM, then SIGKILL after a grace period); True if one was running."""
    root = cluster_dir(name, directory)
    cluster = status(name, directory)
    if cluster is not None:
        os.kill(cluster.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _alive(cluster.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(cluster.pid):
            os.kill(cluster.pid, signal.SIGKILL)
    if not keep and root.exists():
        shutil.rmtree(root, ignore_errors=True)
    return cluster is not None


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text().splitlines()[-lines:])
    except OSError:
        return "(no log)"
