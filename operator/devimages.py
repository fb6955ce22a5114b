"""Container images for the local real node, built without a container engine or a registry.

No registry is reachable, so every image a real node runs is built here and imported into the node's containerd
(``localkube up --image``). An image is an OCI image layout in a tar archive (what ``ctr images import`` takes):
one uncompressed layer, a config and a manifest, named by the index's ``io.containerd.image.name`` annotation. One
name per archive: containerd garbage-collects the second manifest of an index that names two.

Go programs from ``hack/images`` (the Pod sandbox's ``pause``, the ``demo-web`` app) become single-binary images
running as a numeric non-root user, so ``runAsNonRoot`` can be verified without ``/etc/passwd``. Archives are
cached under ``~/.cache/plinth/images/`` by the hash of what went into them.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from plinth.operator import devcluster
from plinth.operator.settings import SERVING_IMAGE

ROOT = Path(__file__).resolve().parent.parent
IMAGES_MODULE = ROOT / "hack" / "images"
LOCAL_REGISTRY = "plinth.local"
NONROOT = "65532:65532"
PAUSE = f"{LOCAL_REGISTRY}/pause:3.10"
DEMO_WEB = f"{LOCAL_REGISTRY}/demo-web:1"

_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_CONFIG = "application/vnd.oci.image.config.v1+json"
_LAYER = "application/vnd.oci.image.layer.v1.tar"


@dataclass(frozen=True)
class File:
    """One regular file of an image: its path inside the image, its content and mode."""

    path: str
    content: bytes
    mode: int = 0o644


@dataclass(frozen=True)
class Image:
    """What an image is made of; ``archive`` turns it into an OCI archive."""

    name: str
    files: Sequence[File]
    entrypoint: Sequence[str]
    cmd: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    user: str = NONROOT
    workdir: str = "/"
    directories: Sequence[str] = ("tmp",)
    """Empty directories (mode 1777 for tmp, 0755 otherwise), e.g. mount points for emptyDir volumes."""
    trees: Sequence[tuple[str, Path]] = ()
    """(path inside the image, folder on the host): whole folders copied into the image's own layer."""
    base: Sequence[Path] = ()
    """Uncompressed tar files used unchanged as the first layers (e.g. a Debian root filesystem)."""


def layer(image: Image) -> bytes:
    """The image's one layer: a reproducible tar (sorted, no timestamps, owned by root)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = set(image.directories)
        for f in image.files:
            parts = f.path.strip("/").split("/")[:-1]
            dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        for d in sorted(dirs):
            info = tarfile.TarInfo(d.strip("/") + "/")
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d.strip("/") == "tmp" else 0o755
            tar.addfile(info)
        for f in sorted(image.files, key=lambda f: f.path):
            info = tarfile.TarInfo(f.path.strip("/"))
            info.size, info.mode = len(f.content), f.mode
            tar.addfile(info, io.BytesIO(f.content))
        for prefix, folder in image.trees:
            for path in sorted(folder.rglob("*")):
                info = tar.gettarinfo(str(path), arcname=f"{prefix.strip('/')}/{path.relative_to(folder)}")
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0
                if info.isreg():
                    with path.open("rb") as content:
                        tar.addfile(info, content)
                else:
                    tar.addfile(info)
    return buffer.getvalue()


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def _blob(data: bytes, media_type: str) -> tuple[dict[str, object], str]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return {"mediaType": media_type, "digest": digest, "size": len(data)}, digest


def archive(image: Image, target: Path) -> Path:
    """Write *image* as an OCI archive to *target* (atomically) and return it."""
    layer_data = layer(image)
    layer_desc, layer_digest = _blob(layer_data, _LAYER)
    base = [(path, _file_digest(path)) for path in image.base]
    base_descs = [{"mediaType": _LAYER, "digest": d, "size": path.stat().st_size} for path, d in base]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "User": image.user,
            "Entrypoint": list(image.entrypoint),
            "Cmd": list(image.cmd) or None,
            "Env": [f"{k}={v}" for k, v in sorted(image.env.items())]
            or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "WorkingDir": image.workdir,
        },
        "rootfs": {"type": "layers", "diff_ids": [d for _, d in base] + [layer_digest]},
    }
    config_data = _json(config)
    config_desc, _ = _blob(config_data, _CONFIG)
    manifest_data = _json(
        {"schemaVersion": 2, "mediaType": _MANIFEST, "config": config_desc, "layers": [*base_descs, layer_desc]}
    )
    manifest_desc, _ = _blob(manifest_data, _MANIFEST)
    tag = image.name.rsplit(":", 1)[1]
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                **manifest_desc,
                "annotations": {"io.containerd.image.name": image.name, "org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    blobs = [(layer_data, layer_desc), (config_data, config_desc), (manifest_data, manifest_desc)]
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    with tarfile.open(tmp, mode="w") as tar:
        entries = [("oci-layout", _json({"imageLayoutVersion": "1.0.0"})), ("index.json", _json(index))]
        entries += [(f"blobs/sha256/{str(desc['digest']).split(':', 1)[1]}", data) for data, desc in blobs]
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for path, digest in base:
            tar.add(str(path), arcname=f"blobs/sha256/{digest.split(':', 1)[1]}")
    tmp.replace(target)
    return target


def _json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def cached(image: Image, inputs: Iterable[bytes] = ()) -> Path:
    """The archive of *image* under the cache, built if what it is made of changed."""
    digest = hashlib.sha256(image.name.encode())
    digest.update(_json([list(image.entrypoint), list(image.cmd), dict(image.env), image.user, image.workdir]))
    for f in image.files:
        digest.update(f.path.encode())
        digest.update(hashlib.sha256(f.content).digest())
    for prefix, folder in image.trees:
        digest.update(prefix.encode())
        for path in sorted(folder.rglob("*")):
            digest.update(str(path.relative_to(folder)).encode())
            if path.is_file():
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    for path in image.base:
        digest.update(_file_digest(path).encode())
    for extra in inputs:
        digest.update(extra)
    repo, _, tag = image.name.rpartition(":")
    target = devcluster.cache_dir() / "images" / digest.hexdigest()[:16] / f"{repo.rsplit('/', 1)[-1]}-{tag}.tar"
    return target if target.is_file() else archive(image, target)


def binary_image(name: str, binary: Path, args: Sequence[str] = (), env: Mapping[str, str] | None = None) -> Path:
    """A single-binary image running *binary* (a static executable) as ``/<its name>``, cached."""
    path = f"/{binary.name}"
    image = Image(name=name, files=[File(path, binary.read_bytes(), 0o755)], entrypoint=[path, *args], env=env or {})
    return cached(image)


def go_image(name: str, command: str) -> Path:
    """A single-binary image of ``hack/images/cmd/<command>`` (static, built once and cached)."""
    binary = devcluster.ensure_go_binary(
        IMAGES_MODULE, command, package=f"./cmd/{command}", what=f"the {command} image's binary", log=False
    )
    return binary_image(name, binary)


def node_images() -> list[Path]:
    """The images of ``hack/images``: the Pod sandbox and the demo app."""
    return [go_image(PAUSE, "pause"), go_image(DEMO_WEB, "demo-web")]


DEBIAN_SUITE = "bookworm"
PYTHON_PACKAGES = ("python3", "ca-certificates")
OPERATOR = f"{LOCAL_REGISTRY}/plinth:dev"


def debian_rootfs(packages: Sequence[str] = PYTHON_PACKAGES) -> Path:
    """A Debian root filesystem with *packages*, as one tar (Debian's ``mmdebstrap``, from the host's apt sources),
    cached by suite and package list: the base layer of the Python images, as ``python:3.11-slim`` is the
    Dockerfile's."""
    key = hashlib.sha256(json.dumps([DEBIAN_SUITE, sorted(packages)]).encode()).hexdigest()[:16]
    target = devcluster.cache_dir() / "images" / "debian" / key / "rootfs.tar"
    if target.is_file():
        return target
    if shutil.which("mmdebstrap") is None:
        raise devcluster.ClusterError(
            "building the Python images needs Debian's mmdebstrap: apt-get install mmdebstrap"
        )
    sources = next(
        (p for p in (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")) if p.is_file()),
        None,
    )
    if sources is None:
        raise devcluster.ClusterError("no apt sources on this host for mmdebstrap to read")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp.tar")
    result = subprocess.run(
        [
            "mmdebstrap",
            "--variant=essential",
            f"--include={','.join(packages)}",
            "--skip=check/empty",
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            DEBIAN_SUITE,
            str(tmp),
            str(sources),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise devcluster.ClusterError(f"mmdebstrap failed:\n{result.stderr[-3000:]}")
    tmp.replace(target)
    return target


def _pip_install(target: Path, *requirements: str, no_deps: bool = False) -> None:
    """pip-install *requirements* into *target* with this Python's pip (the same minor as the base's python3)."""
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--no-warn-script-location"]
    command += ["--no-deps"] if no_deps else []
    result = subprocess.run(
        [*command, "--target", str(target), *requirements], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise devcluster.ClusterError(f"pip install {' '.join(requirements)} failed:\n{result.stderr[-3000:]}")
    shutil.rmtree(target / "bin", ignore_errors=True)


def requirements(source: Path, extras: Sequence[str] = ()) -> list[str]:
    """The package's dependencies as pyproject.toml declares them, with those of *extras*."""
    project = tomllib.loads((source / "pyproject.toml").read_text())["project"]
    optional = project.get("optional-dependencies", {})
    return [*project["dependencies"], *(req for extra in extras for req in optional[extra])]


def dependencies_layer(source: Path, extras: Sequence[str] = ()) -> Path:
    """The dependencies of the package (and *extras*) installed under /opt/plinth/deps, as one cached tar: a layer of
    its own, so an edit of Plinth rebuilds only the small layer above it (and a node re-imports only that)."""
    wanted = requirements(source, extras)
    key = hashlib.sha256(json.dumps([sys.version_info[:2], sorted(wanted)]).encode()).hexdigest()[:16]
    target = devcluster.cache_dir() / "images" / "python-deps" / key / "deps.tar"
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory(prefix="plinth-deps-") as tmp:
        _pip_install(Path(tmp) / "deps", *wanted)
        data = layer(
            Image(name="deps:layer", files=[], entrypoint=[], directories=(), trees=[(DEPS, Path(tmp) / "deps")])
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.with_suffix(".tmp").write_bytes(data)
    target.with_suffix(".tmp").replace(target)
    return target


def python_image(
    name: str,
    command: str,
    module: str,
    *,
    cmd: Sequence[str] = (),
    extras: Sequence[str] = (),
    packages: Sequence[str] = PYTHON_PACKAGES,
    source: Path = ROOT,
) -> Path:
    """An image by the Dockerfiles' recipe: Plinth (from *source*) with its dependencies and *extras* on a Debian
    Python base, whose entrypoint (/usr/local/bin/*command*) runs *module*'s ``main``; run as 65532 with a
    read-only root filesystem in mind (no .pyc writes, HOME on /tmp)."""
    with tempfile.TemporaryDirectory(prefix="plinth-image-") as tmp:
        site = Path(tmp) / "site"
        _pip_install(site, str(source), no_deps=True)
        entry = f"#!/usr/bin/python3\nimport sys\nfrom {module} import main\nsys.exit(main())\n".encode()
        image = Image(
            name=name,
            files=[File(f"/usr/local/bin/{command}", entry, 0o755)],
            trees=[(SITE, site)],
            base=[debian_rootfs(packages), dependencies_layer(source, extras)],
            entrypoint=[f"/usr/local/bin/{command}"],
            cmd=list(cmd),
            env={
                "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "PYTHONPATH": f"{SITE}:{DEPS}",
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONUNBUFFERED": "1",
                "PYTHONSAFEPATH": "1",
                "HOME": "/tmp",
            },
            workdir="/tmp",
        )
        return cached(image)


SITE, DEPS = "/opt/plinth/site", "/opt/plinth/deps"


def operator_image(source: Path = ROOT) -> Path:
    """The operator image (``operator/Dockerfile``): ``plinth run``."""
    return python_image(OPERATOR, "plinth", "plinth.operator.cli", cmd=["run"], source=source)


def serving_image(source: Path = ROOT) -> Path:
    """Plinth's model server (``serving/Dockerfile``): ``plinth-serve``, with the serving extra's libraries and the
    C++ and OpenMP runtimes their wheels link against (the slim Python base has both)."""
    return python_image(
        SERVING_IMAGE,
        "plinth-serve",
        "plinth.serving.__main__",
        extras=["serving"],
        packages=(*PYTHON_PACKAGES, "libstdc++6", "libgomp1"),
        source=source,
    )


CURL = f"{LOCAL_REGISTRY}/curl:{DEBIAN_SUITE}"


def curl_image() -> Path:
    """Debian's curl on the same base: what the chart's ``helm test`` Pod runs (its command is curl)."""
    image = Image(
        name=CURL,
        files=[],
        base=[debian_rootfs((*PYTHON_PACKAGES, "curl"))],
        entrypoint=["/usr/bin/curl"],
        directories=(),
    )
    return cached(image)
