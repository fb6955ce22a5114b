"""Real-node figures: boot time, Pod startup latency, preview create -> URL answering, idle RSS of the node.

    PYTHONSAFEPATH=1 .venv/bin/python hack/bench/realnode.py --pods 50 --previews 20

Boots a fresh cluster with one real node (operator/devnode.py; the builds are cached, so this measures a warm
boot), then: N Pods of the demo image created at a steady rate, each timed from its create call to the first poll
that sees all its containers started (the SIG Scalability SLI) and Ready (polled every 0.2 s from the first create
on, as a watch would see it; images are local, so no pull time is included); M
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
import threading
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


def _pod(name: str) -> dict[str, Any]:
    return {
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


def pod_startup(cluster: devcluster.LocalCluster, count: int, rate: float) -> dict[str, Any]:
    """*count* Pods created at *rate* per second while a poller (every 0.2 s, from the first create on) notes when
    each is first seen with every container started (the SIG Scalability SLI) and when Ready (its probe passed)."""
    kubectl(cluster, "create", "namespace", "bench-pods")
    created: dict[str, float] = {}
    started: dict[str, float] = {}
    ready: dict[str, float] = {}
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            items = json.loads(kubectl(cluster, "-n", "bench-pods", "get", "pods", "-o", "json"))["items"]
            now = time.monotonic()
            for pod in items:
                name, status = pod["metadata"]["name"], pod.get("status") or {}
                running = status.get("containerStatuses") or []
                if name not in started and running and all("running" in (c.get("state") or {}) for c in running):
                    started[name] = now
                conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
                if name not in ready and conditions.get("Ready") == "True":
                    ready[name] = now
            if len(ready) == count:
                return
            done.wait(0.2)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    first = time.monotonic()
    for i in range(count):
        name = f"p{i:03d}"
        time.sleep(max(0.0, first + i / rate - time.monotonic()))
        created[name] = time.monotonic()
        kubectl(cluster, "create", "-f", "-", input=json.dumps(_pod(name)))
    poller.join(timeout=600)
    done.set()
    result = {
        "rate_per_s": rate,
        "create_to_containers_started": summary([started[n] - created[n] for n in created if n in started]),
        "create_to_ready": summary([ready[n] - created[n] for n in created if n in ready]),
    }
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
                "apiVersion": "plinth.dev/v1beta1",
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
    parser.add_argument("--pod-rate", type=float, default=1.0, help="Pods created per second")
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
        result["pod_startup"] = pod_startup(cluster, args.pods, args.pod_rate)
        result["preview_create_to_url"] = preview_to_url(cluster, args.previews, workdir)
        time.sleep(20)  # idle: let the last rollouts and probes settle before reading RSS
        result["idle_rss_mb_with_the_previews_running"] = node_rss(workdir / "cluster")
        result["cores"] = os.cpu_count()
        print(json.dumps(result, indent=2))
    finally:
        devcluster.down(name, directory=workdir / "cluster")


if __name__ == "__main__":
    main()
