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
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from plinth.operator import devcluster

IMAGES_MODULE = Path(__file__).resolve().parent.parent / "hack" / "images"
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
    return buffer.getvalue()


def _blob(data: bytes, media_type: str) -> tuple[dict[str, object], str]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return {"mediaType": media_type, "digest": digest, "size": len(data)}, digest


def archive(image: Image, target: Path) -> Path:
    """Write *image* as an OCI archive to *target* (atomically) and return it."""
    layer_data = layer(image)
    layer_desc, layer_digest = _blob(layer_data, _LAYER)
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
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }
    config_data = _json(config)
    config_desc, _ = _blob(config_data, _CONFIG)
    manifest_data = _json({"schemaVersion": 2, "mediaType": _MANIFEST, "config": config_desc, "layers": [layer_desc]})
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
