"""Real-node figures: boot time, Pod startup latency, preview create -> URL answering, idle RSS of the node.

    PYTHONSAFEPATH=1 .venv/bin/python hack/bench/realnode.py --pods 50 --previews 20

Boots a fresh cluster with one real node (operator/devnode.py; the builds are cached, so this measures a warm
boot), then: N Pods of the demo image created at once, each timed from its create call to the first poll that sees
it Ready (polled every 0.2 s, as a watch would see it; images are local, so no pull time is included); M
PreviewEnvironments created at once with the operator running, each timed from its create call to the first
answer of its URL through the ingress on 127.0.0.1 naming its commit; then the RSS of the node's processes at idle.
Prints one JSON document; docs/local-control-plane.md quotes it with this command.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from plinth.operator import devcluster, devimages, devnode
from plinth.operator.devnode import kubectl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stats import percentile

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50_s": round(percentile(values, 50) or 0, 2),
        "p99_s": round(percentile(values, 99) or 0, 2),
        "min_s": round(min(values), 2),
        "max_s": round(max(values), 2),
    }


def pod_startup(cluster: devcluster.LocalCluster, count: int) -> dict[str, Any]:
    kubectl(cluster, "create", "namespace", "bench-pods")
    created: dict[str, float] = {}
    ready: dict[str, float] = {}
    for i in range(count):
        name = f"p{i:03d}"
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "bench-pods"},
            "spec": {
                "securityContext": {"runAsNonRoot": True},
                "containers": [
                    {
                        "name": "web",
                        "image": devimages.DEMO_WEB,
                        "imagePullPolicy": "Never",
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1},
                        "resources": {"requests": {"cpu": "1m", "memory": "8Mi"}},
                    }
                ],
            },
        }
        created[name] = time.monotonic()
        kubectl(cluster, "create", "-f", "-", input=json.dumps(pod))
    while len(ready) < count:
        items = json.loads(kubectl(cluster, "-n", "bench-pods", "get", "pods", "-o", "json"))["items"]
        now = time.monotonic()
        for pod in items:
            name = pod["metadata"]["name"]
            conds = {c["type"]: c["status"] for c in (pod.get("status") or {}).get("conditions") or []}
            if name not in ready and conds.get("Ready") == "True":
                ready[name] = now
        time.sleep(0.2)
    result = summary([ready[n] - created[n] for n in created])
    kubectl(cluster, "delete", "namespace", "bench-pods", "--wait=true", "--timeout=300s")
    return result


def fetch(ingress: str, host: str) -> str:
    request = urllib.request.Request(f"{ingress}/", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=2) as resp:
            return str(resp.read().decode())
    except (urllib.error.URLError, OSError):
        return ""


def preview_to_url(cluster: devcluster.LocalCluster, count: int, workdir: Path) -> dict[str, Any]:
    kubectl(cluster, "apply", "--server-side", "-k", str(ROOT / "crds"))
    kubectl(cluster, "wait", "--for=condition=Established", "crd", "-l", "app.kubernetes.io/part-of=plinth")
    kubectl(cluster, "create", "namespace", "bench-team")
    log = (workdir / "operator.log").open("w")
    operator = subprocess.Popen(
        [str(Path(sys.executable).parent / "plinth"), "run", "--metrics-port", str(free_port())],
        env={**os.environ, **cluster.env()},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        created: dict[str, float] = {}
        for i in range(count):
            name = f"b{i:02d}"
            body = {
                "apiVersion": "plinth.dev/v1alpha1",
                "kind": "PreviewEnvironment",
                "metadata": {"name": name, "namespace": "bench-team"},
                "spec": {
                    "source": {"repository": "github.com/acme/bench", "pullRequest": i + 1, "commit": f"c{i:06d}"},
                    "team": "bench",
                    "services": [
                        {"name": "web", "image": devimages.DEMO_WEB, "port": 8080, "readinessPath": "/healthz"}
                    ],
                    "ingress": {"domain": "bench.test", "tls": False},
                },
            }
            created[name] = time.monotonic()
            kubectl(cluster, "create", "-f", "-", input=json.dumps(body))
        answered: dict[str, float] = {}
        deadline = time.monotonic() + 600
        while len(answered) < count and time.monotonic() < deadline:
            for i, name in enumerate(created):
                if name not in answered and f">c{i:06d}<" in fetch(cluster.ingress, f"{name}-{i + 1}.bench.test"):
                    answered[name] = time.monotonic()
            time.sleep(0.2)
        if len(answered) < count:
            raise SystemExit(f"only {len(answered)} of {count} preview URLs answered within 600 s")
        return summary([answered[n] - created[n] for n in created])
    finally:
        operator.send_signal(signal.SIGTERM)
        operator.wait(timeout=30)
        log.close()


def node_rss(directory: Path) -> dict[str, float]:
    """RSS (MB) of the processes of the node, grouped: node components, and the Pods' processes."""
    marker = str(directory)
    groups: dict[str, float] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (proc / "status").read_text()
        except OSError:
            continue
        rss = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0) / 1024
        name = Path(cmdline.split(" ", 1)[0]).name if cmdline else ""
        if marker in cmdline and ("node-init" in cmdline or " kubelet " in cmdline or " kube-proxy " in cmdline):
            key = "node-init" if "node-init" in cmdline else ("kubelet" if " kubelet " in cmdline else "kube-proxy")
        elif marker in cmdline and name == "containerd":
            key = "containerd"
        elif name == "containerd-shim-runc-v2" and marker in cmdline:
            key = "shims"
        elif name in ("coredns", "traefik"):
            key = name
        else:
            continue
        groups[key] = round(groups.get(key, 0) + rss, 1)
    return groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pods", type=int, default=50)
    parser.add_argument("--previews", type=int, default=20)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="plinth-realnode-"))
    name = f"bench-real-{os.getpid()}"
    devnode.ensure_parts(log=True)
    started = time.monotonic()
    cluster = devnode.up(name, directory=workdir / "cluster", log=False)
    boot = time.monotonic() - started
    try:
        result: dict[str, Any] = {"boot_to_dns_and_ingress_ready_s": round(boot, 1)}
        result["pod_startup"] = pod_startup(cluster, args.pods)
        result["preview_create_to_url"] = preview_to_url(cluster, args.previews, workdir)
        time.sleep(20)  # idle: let the last rollouts and probes settle before reading RSS
        result["idle_rss_mb_with_the_previews_running"] = node_rss(workdir / "cluster")
        result["cores"] = os.cpu_count()
        print(json.dumps(result, indent=2))
    finally:
        devcluster.down(name, directory=workdir / "cluster")


if __name__ == "__main__":
    main()
