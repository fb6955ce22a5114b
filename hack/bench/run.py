"""Plinth benchmark: the operator against the physical limit of the same API server, in one run.

    PYTHONSAFEPATH=1 .venv/bin/python hack/bench/run.py --n 100 --scenarios all

Boots a fresh local control plane (operator/devcluster.py), installs the CRDs, measures the baseline (this process
creating exactly the operator's children directly, at its best concurrency), then runs the operator (`plinth run`, a
subprocess, so its RSS and CPU come from its own /proc entry) through the scenarios: burst-create N
PreviewEnvironments, burst-create N ModelDeployments, steady state at R spec changes/s, a no-op restart, burst-delete.
Results go to hack/bench/results/<tag>.json and into docs/performance.md between markers for the tag.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))  # siblings; PYTHONSAFEPATH keeps the script dir off the path

import report
import stats
import workload
from client import Informer, Kube, Manifest, collection_path
from plinth.operator import devcluster
from tracker import Change, ChangeTracker

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SCENARIOS = ("baseline", "pe-burst", "md-burst", "steady", "restart", "delete")
WRITE_OPERATIONS = ("apply", "patch_status", "delete")
# How long after a restart the operator's RSS is read "at rest": past its once-a-minute heap trim (operator/heap.py).
AT_REST_SECONDS = 75
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- processes ------------------------------------------------------------------------------------------------------


def proc_usage(pid: int) -> tuple[int, float]:
    """(RSS bytes, CPU seconds user+system) of *pid* from /proc."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return rss, (int(fields[11]) + int(fields[12])) / CLK_TCK


def tree_cpu(pids: dict[str, int]) -> dict[str, float]:
    out = {}
    for name, pid in pids.items():
        with contextlib.suppress(OSError):
            out[name] = proc_usage(pid)[1]
    return out


@dataclass
class OperatorProcess:
    """`plinth run` against the bench cluster; its RSS is sampled every second while it runs."""

    kubeconfig: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    samples: list[tuple[float, int, float]] = field(default_factory=list)  # (monotonic, rss, cpu)
    stop_seconds: float | None = None  # how long the last SIGTERM took to end it; None: killed after 30 s
    _sampler: asyncio.Task[None] | None = None

    async def start(self, http: aiohttp.ClientSession) -> None:
        import socket

        # A port below the ephemeral range: other processes on this host pick free ports with bind(0) from the
        # ephemeral range, and one of them taking ours between this check and the operator's bind once made /healthz
        # answer from a stranger.
        while True:
            candidate = random.randint(20000, 29999)
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", candidate))
                except OSError:
                    continue
            self.port = candidate
            break
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONSAFEPATH": "1", **self.env}
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(  # noqa: ASYNC220 — returns at once; the operator runs on its own
                [str(BIN / "plinth"), "run", "--metrics-port", str(self.port)], env=env, stdout=out, stderr=out
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited with {self.proc.returncode}; see {self.log_path}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"http://127.0.0.1:{self.port}/healthz") as resp:
                    if resp.status == 200:
                        break
            await asyncio.sleep(0.2)
        else:
            raise RuntimeError("operator did not become healthy within 120 s")
        self._sampler = asyncio.create_task(self._sample())  # samples accumulate across restarts: peak of the run

    async def _sample(self) -> None:
        while self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(OSError):
                rss, cpu = proc_usage(self.proc.pid)
                self.samples.append((time.monotonic(), rss, cpu))
            await asyncio.sleep(1)

    def usage(self) -> tuple[int, float]:
        assert self.proc is not None
        return proc_usage(self.proc.pid)

    async def metrics(self, http: aiohttp.ClientSession) -> stats.Samples:
        async with http.get(f"http://127.0.0.1:{self.port}/metrics") as resp:
            return stats.parse_prometheus(await resp.text())

    async def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
        if self.proc is None or self.proc.poll() is not None:
            return
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        for _ in range(300):
            if self.proc.poll() is not None:
                self.stop_seconds = time.monotonic() - started
                return
            await asyncio.sleep(0.1)
        self.proc.kill()  # as the kubelet does after the default 30 s grace period
        await asyncio.to_thread(self.proc.wait)
        self.stop_seconds = None

    def peak_rss(self, since: float = 0.0) -> int | None:
        values = [rss for t, rss, _ in self.samples if t >= since]
        return max(values) if values else None


# -- measurement windows --------------------------------------------------------------------------------------------


@dataclass
class Window:
    """Counters of the API server, the operator and the machine at the start of a scenario, diffed at its end."""

    started: float
    apiserver: stats.Samples
    operator: stats.Samples | None
    operator_usage: tuple[int, float] | None
    control_plane_cpu: dict[str, float]
    load: tuple[float, float, float]


class Bench:
    def __init__(
        self,
        args: argparse.Namespace,
        kube: Kube,
        kubeconfig: Path,
        workdir: Path,
        cp_pids: dict[str, int],
        *,
        checkpoint: Callable[[dict[str, Any]], None],
    ):
        self.args = args
        self.checkpoint = checkpoint
        self.kube = kube
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.cp_pids = cp_pids
        self.http = aiohttp.ClientSession()
        self.operator: OperatorProcess | None = None
        self.results: dict[str, Any] = {}
        self.pe_informer: Informer | None = None
        self.md_informer: Informer | None = None
        self.profiler: subprocess.Popen[bytes] | None = None

    async def close(self) -> None:
        if self.operator is not None:
            await self.operator.stop()
        for informer in (self.pe_informer, self.md_informer):
            if informer is not None:
                await informer.stop()
        await self.http.close()

    async def open_window(self, name: str) -> Window:
        op = self.operator
        running = op is not None and op.proc is not None and op.proc.poll() is None
        if running and op and op.proc and self.args.profile:
            # py-spy samples the operator's Python stacks (collapsed format: flamegraph.pl or speedscope read it).
            out = self.workdir / f"profile-{name}.txt"
            command = [str(BIN / "py-spy"), "record", "--pid", str(op.proc.pid), "--rate", "50", "--format", "raw"]
            command += ["--nonblocking", "--threads", "-o", str(out)]
            self.profiler = subprocess.Popen(  # noqa: ASYNC220 — returns at once
                command,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        return Window(
            started=time.monotonic(),
            apiserver=stats.parse_prometheus(await self.kube.metrics()),
            operator=await op.metrics(self.http) if running and op else None,
            operator_usage=op.usage() if running and op else None,
            control_plane_cpu=tree_cpu(self.cp_pids),
            load=os.getloadavg(),
        )

    async def close_window(self, window: Window, objects: int = 0) -> dict[str, Any]:
        """Everything a scenario reports besides its own timings: requests by verb, operator cost, machine load."""
        elapsed = time.monotonic() - window.started
        if self.profiler is not None:
            self.profiler.send_signal(signal.SIGINT)
            await asyncio.to_thread(self.profiler.wait, 60)
            self.profiler = None
        api_after = stats.parse_prometheus(await self.kube.metrics())
        requests = stats.delta(window.apiserver, api_after, "apiserver_request_total")
        by_verb = stats.group_by(requests, "verb")
        writes_by_resource = {
            "/".join(k for k in key if k): v
            for key, v in stats.group_by(
                {lbl: v for lbl, v in requests.items() if dict(lbl).get("verb") in stats.WRITE_VERBS},
                "verb",
                "resource",
                "subresource",
            ).items()
        }
        out: dict[str, Any] = {
            "elapsed_s": elapsed,
            "load_avg_start": window.load,
            "load_avg_end": os.getloadavg(),
            "apiserver_requests_by_verb": {k[0]: v for k, v in sorted(by_verb.items())},
            "apiserver_writes_by_resource": dict(sorted(writes_by_resource.items())),
            "control_plane_cpu_s": {
                name: round(cpu - window.control_plane_cpu.get(name, 0.0), 2)
                for name, cpu in tree_cpu(self.cp_pids).items()
            },
        }
        op = self.operator
        if op is not None and op.proc is not None and op.proc.poll() is None:
            after = await op.metrics(self.http)
            before = window.operator or {}
            adapter = stats.group_by(stats.delta(before, after, "plinth_adapter_requests_total"), "operation")
            reconciles = stats.group_by(stats.delta(before, after, "plinth_reconcile_total"), "kind", "result")
            rss, cpu = op.usage()
            cpu_before = window.operator_usage[1] if window.operator_usage else 0.0
            n_reconciles = sum(reconciles.values())
            writes = sum(adapter.get((o,), 0.0) for o in WRITE_OPERATIONS)
            out["operator"] = {
                "adapter_requests": {k[0]: v for k, v in sorted(adapter.items())},
                "reconciles": {"/".join(k): v for k, v in sorted(reconciles.items())},
                "reconciles_total": n_reconciles,
                "adapter_writes": writes,
                "adapter_reads": sum(v for k, v in adapter.items() if k[0] not in WRITE_OPERATIONS),
                "writes_per_reconcile": stats.ratio(writes, n_reconciles),
                "writes_per_object": stats.ratio(writes, objects) if objects else None,
                "reconciles_per_object": stats.ratio(n_reconciles, objects) if objects else None,
                "rss_mb": rss / 2**20,
                "peak_rss_mb": (op.peak_rss(window.started) or rss) / 2**20,
                "cpu_s": cpu - cpu_before,
                "cpu_utilisation": (cpu - cpu_before) / elapsed if elapsed else None,
                "queue_lag": _histogram_summary(before, after, "plinth_queue_lag_seconds"),
                "reconcile_duration": _histogram_summary(before, after, "plinth_reconcile_duration_seconds"),
            }
        return out

    # -- helpers ----------------------------------------------------------------------------------------------------

    async def ensure_namespace(self, name: str) -> None:
        await self.kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    async def bounded(self, jobs: list[Callable[[], Awaitable[Any]]], concurrency: int) -> None:
        """Run *jobs* with at most *concurrency* in flight (a fixed worker pool: no task per job pile-up)."""
        queue = list(reversed(jobs))

        async def worker() -> None:
            while queue:
                await queue.pop()()

        await asyncio.gather(*(worker() for _ in range(min(concurrency, len(jobs)) or 1)))

    async def start_operator(self) -> None:
        if self.operator is None:
            env = {"PLINTH_LOG_LEVEL": self.args.operator_log_level} if self.args.operator_log_level else {}
            env.update(dict(item.split("=", 1) for item in self.args.operator_env))
            # The operator runs from a snapshot taken at start-up: edits to the checkout during a run cannot change it.
            env["PYTHONPATH"] = str(self.workdir / "src")
            self.operator = OperatorProcess(self.kubeconfig, self.workdir / "operator.log", env)
        await self.operator.start(self.http)

    def timeout(self, n: int) -> float:
        return max(300.0, n * self.args.timeout_per_object)

    # -- scenarios --------------------------------------------------------------------------------------------------

    async def baseline(self, n: int) -> dict[str, Any]:
        """The physical limit: the operator's children for N previews written directly, then waited for."""
        runs = []
        for concurrency in self.args.baseline_concurrency:
            runs.append(await self._baseline_once(n, concurrency))
        best = min(runs, key=lambda r: r["all_ready_s"])
        return {**best, "runs": [{k: r[k] for k in ("concurrency", "all_ready_s", "writes_done_s")} for r in runs]}

    async def _baseline_once(self, n: int, concurrency: int) -> dict[str, Any]:
        owners = [workload.preview_environment(i, workload.BASELINE_OWNER_NAMESPACE) for i in range(n)]
        selector = f"{workload.preview.OWNER_NAMESPACE_LABEL}={workload.BASELINE_OWNER_NAMESPACE}"
        deployments = Informer(
            self.kube, collection_path("Deployment"), selector, predicate=workload.deployment_available
        ).start()
        namespaces = Informer(self.kube, collection_path("Namespace"), selector).start()
        await asyncio.gather(deployments.synced(), namespaces.synced())
        children = [workload.preview_children(o) for o in owners]
        per_owner = len(children[0])
        log(f"baseline: {n} x {per_owner} children at concurrency {concurrency}")
        window = await self.open_window("baseline")
        started = time.monotonic()

        async def provision(kids: list[Manifest]) -> None:
            await self.kube.apply(kids[0])  # the namespace first: everything else lives in it
            await asyncio.gather(*(self.kube.apply(k) for k in kids[1:]))

        # One job per owner keeps per-owner order; each job issues up to per_owner-1 requests at once.
        await self.bounded([lambda kids=kids: provision(kids) for kids in children], max(1, concurrency // per_owner))
        writes_done = time.monotonic() - started
        ready_at = await deployments.wait(
            lambda: len(deployments.matching) >= n, self.timeout(n), "baseline Deployments available"
        )
        result = {
            "concurrency": concurrency,
            "children_per_object": per_owner,
            "writes_done_s": writes_done,
            "all_ready_s": ready_at - started,
            **(await self.close_window(window, n)),
        }
        log(f"baseline: all available in {result['all_ready_s']:.1f}s (writes done in {writes_done:.1f}s)")
        # Clean up, and time it: the physical limit of burst-delete (namespace deletion by the namespace controller).
        started = time.monotonic()
        names = [k[0]["metadata"]["name"] for k in children]
        await self.bounded([lambda name=name: self.kube.delete("Namespace", name) for name in names], concurrency)
        gone_at = await namespaces.wait(lambda: not namespaces.objects, self.timeout(n), "baseline namespaces gone")
        result["delete_all_gone_s"] = gone_at - started
        log(f"baseline: namespaces gone in {result['delete_all_gone_s']:.1f}s")
        await deployments.stop()
        await namespaces.stop()
        return result

    async def burst(self, kind: str, n: int, build: Callable[[int], Manifest], namespace: str) -> dict[str, Any]:
        informer = await self.watch_kind(kind, namespace)
        manifests = [build(i) for i in range(n)]
        log(f"{kind}: burst-creating {n}")
        window = await self.open_window(f"{kind}-burst")
        started = time.monotonic()

        async def create(manifest: Manifest) -> None:
            await self.kube.create(manifest)

        await self.bounded([lambda m=m: create(m) for m in manifests], self.args.create_concurrency)
        created = time.monotonic() - started
        ready_at = await informer.wait(lambda: len(informer.matching) >= n, self.timeout(n), f"{n} {kind} Ready")
        # Let the follow-up reconciles triggered by the last child events finish before counting requests.
        await self.quiesce()
        children = workload.preview_children if kind == "PreviewEnvironment" else workload.model_children
        result = {
            "created_s": created,
            "all_ready_s": ready_at - started,
            "children_per_object": len(children(manifests[0])),
            **(await self.close_window(window, n)),
        }
        log(f"{kind}: all Ready in {result['all_ready_s']:.1f}s")
        return result

    async def watch_kind(self, kind: str, namespace: str) -> Informer:
        """Follow the benchmark's objects of *kind* (those already there included) and whether each is Ready."""
        await self.ensure_namespace(namespace)
        informer = Informer(self.kube, collection_path(kind, namespace), predicate=workload.is_current_and_ready)
        informer.start()
        await informer.synced()
        if kind == "PreviewEnvironment":
            self.pe_informer = informer
        else:
            self.md_informer = informer
        return informer

    async def quiesce(self, quiet: float = 5.0, limit: float = 120.0) -> None:
        """Wait until the operator has not finished a reconcile for *quiet* seconds (or *limit* passed)."""
        assert self.operator is not None
        deadline = time.monotonic() + limit
        last, since = -1.0, time.monotonic()
        while time.monotonic() < deadline:
            count = stats.total(await self.operator.metrics(self.http), "plinth_reconcile_total")
            if count != last:
                last, since = count, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            await asyncio.sleep(0.5)

    async def steady(self, seconds: float, rate: float) -> dict[str, Any]:  # noqa: PLR0915 — one linear story
        """R spec changes/s (a new commit, as a CI push does) over the Ready previews; lag from the change to Ready
        for its generation, seen through a watch."""
        informer = self.pe_informer
        assert informer is not None and self.operator is not None
        deployments = Informer(
            self.kube,
            collection_path("Deployment"),
            f"{workload.preview.OWNER_NAMESPACE_LABEL}={workload.PE_NAMESPACE}",
            predicate=workload.deployment_available,
        ).start()
        await deployments.synced()
        tracker = ChangeTracker()

        def ns_of(pe_key: str) -> str:
            return workload.preview.namespace_name(informer.objects[pe_key])

        def on_pe(type_: str, obj: Manifest, when: float) -> None:
            if type_ != "DELETED":
                tracker.owner_event(obj, when, deployments.objects.get)

        def on_deployment(type_: str, obj: Manifest, when: float) -> None:
            if type_ != "DELETED":
                tracker.deployment_event(obj, when)

        informer.on_event = on_pe
        deployments.on_event = on_deployment
        window = await self.open_window("steady")
        hist_before = await self.operator.metrics(self.http)
        rss_start = self.operator.usage()[0]
        in_flight: set[asyncio.Task[None]] = set()
        errors: list[str] = []

        async def change(key: str) -> None:
            namespace, name = key.split("/")
            revision = workload.commit()
            current = informer.objects[key]["metadata"].get("generation") or 1
            tracker.sent(Change(key, f"{ns_of(key)}/web", current + 1, revision, time.monotonic()))
            try:
                result = await self.kube.merge_patch(
                    "PreviewEnvironment", name, namespace, {"spec": {"source": {"commit": revision}}}
                )
            except Exception as err:
                tracker.failed(key)
                errors.append(str(err))
                return
            got = ((result or {}).get("metadata") or {}).get("generation")
            if got is not None and got != current + 1:
                tracker.generation_is(key, got)

        log(f"steady: {rate:g} changes/s for {seconds:g}s")
        started = time.monotonic()
        sent_count = ticks = skipped = 0
        while (now := time.monotonic()) < started + seconds:
            ticks += 1
            candidates = [k for k in informer.matching if not tracker.pending(k)]
            if candidates:
                task = asyncio.create_task(change(random.choice(candidates)))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                sent_count += 1
            else:
                skipped += 1  # every preview still waits for its previous change: the operator is saturated
            await asyncio.sleep(max(0.0, started + ticks / rate - now))
        await asyncio.gather(*in_flight)
        with contextlib.suppress(TimeoutError):  # what is still pending after 2 minutes is reported as unfinished
            await informer.wait(lambda: not tracker.open, 120, "pending changes Ready")
        informer.on_event = None
        hist_after = await self.operator.metrics(self.http)
        buckets = stats.bucket_delta(
            stats.histogram_buckets(hist_before, "plinth_reconcile_lag_seconds", kind="PreviewEnvironment"),
            stats.histogram_buckets(hist_after, "plinth_reconcile_lag_seconds", kind="PreviewEnvironment"),
        )
        rss_series = [(t - started, rss) for t, rss, _ in self.operator.samples if t >= started]
        result = {
            "rate": rate,
            "duration_s": seconds,
            "changes_sent": sent_count,
            "ticks_skipped_all_pending": skipped,
            "changes_unfinished": tracker.open,
            "errors": errors[:5],
            "watched_lag_s": stats.summarize(tracker.lags()),
            "deployment_rollout_lag_s": stats.summarize(tracker.rollout_lags()),
            "operator_overhead_s": stats.summarize(tracker.operator_overhead()),
            "ready_before_rollout": tracker.early(),
            "operator_lag_histogram_s": {
                "count": buckets[-1][1] if buckets else 0,
                "p50": stats.histogram_quantile(0.5, buckets),
                "p95": stats.histogram_quantile(0.95, buckets),
                "p99": stats.histogram_quantile(0.99, buckets),
            },
            "rss_start_mb": rss_start / 2**20,
            "rss_end_mb": self.operator.usage()[0] / 2**20,
            "rss_first_minute_max_mb": max((r for t, r in rss_series if t < 60), default=0) / 2**20,
            "rss_last_minute_max_mb": max((r for t, r in rss_series if t >= seconds - 60), default=0) / 2**20,
            **(await self.close_window(window, sent_count)),
        }
        await deployments.stop()
        log(
            f"steady: {sent_count} changes, watched lag p50 {result['watched_lag_s']['p50']} "
            f"p99 {result['watched_lag_s']['p99']}"
        )
        return result

    async def restart(self) -> dict[str, Any]:
        """Stop the operator, start it again over Ready objects, and count what it writes while resuming."""
        assert self.operator is not None
        if self.pe_informer is None and self.md_informer is None:  # a restart alone, over a kept cluster's objects
            await self.watch_kind("PreviewEnvironment", workload.PE_NAMESPACE)
            await self.watch_kind("ModelDeployment", workload.MD_NAMESPACE)
            await self.quiesce(quiet=10, limit=self.timeout(0))  # the first start resumes them all too
        objects = sum(len(i.objects) for i in (self.pe_informer, self.md_informer) if i is not None)
        await self.operator.stop()
        stop_seconds = self.operator.stop_seconds
        log(f"restart: operator stopped ({stop_seconds} s after SIGTERM); starting it again over {objects} objects")
        window = await self.open_window("restart")
        started = time.monotonic()
        await self.start_operator()
        deadline = time.monotonic() + self.timeout(objects)
        resumed_at = None
        while time.monotonic() < deadline:
            count = stats.total(await self.operator.metrics(self.http), "plinth_reconcile_total")
            if count >= objects:
                resumed_at = time.monotonic()
                break
            await asyncio.sleep(0.5)
        await self.quiesce(quiet=10)
        result = {
            "objects": objects,
            "sigterm_exit_s": stop_seconds,
            "all_resumed_s": (resumed_at - started) if resumed_at else None,
            **(await self.close_window(window, objects)),
        }
        # The new process' counters started at 0 with it: its adapter counters are all it did.
        op_metrics = await self.operator.metrics(self.http)
        adapter = stats.group_by(stats.select(op_metrics, "plinth_adapter_requests_total"), "operation")
        result["operator_adapter_requests"] = {k[0]: v for k, v in sorted(adapter.items())}
        result["operator_writes"] = sum(adapter.get((o,), 0.0) for o in WRITE_OPERATIONS)
        plinth_writes = {
            k: v
            for k, v in result["apiserver_writes_by_resource"].items()
            if k.split("/")[1] not in {"leases", "nodes", "events"}
        }
        result["apiserver_writes_excluding_leases_nodes_events"] = plinth_writes
        result["apiserver_writes_total"] = sum(plinth_writes.values())
        log(f"restart: resumed in {result['all_resumed_s']}, operator writes {result['operator_writes']:.0f}")
        # At rest: what the operator keeps once the restart's peak is over (it gives freed heap back every minute).
        await asyncio.sleep(AT_REST_SECONDS)
        result["rss_at_rest_mb"] = self.operator.usage()[0] / 2**20
        log(f"restart: RSS at rest {result['rss_at_rest_mb']:.0f} MB ({AT_REST_SECONDS} s later)")
        return result

    async def delete(self, kind: str, informer: Informer) -> dict[str, Any]:
        keys = list(informer.objects)
        log(f"{kind}: deleting {len(keys)}")
        window = await self.open_window(f"{kind}-delete")
        started = time.monotonic()
        await self.bounded(
            [lambda k=k: self.kube.delete(kind, k.split("/")[1], k.split("/")[0]) for k in keys],
            self.args.create_concurrency,
        )
        gone_at = await informer.wait(lambda: not informer.objects, self.timeout(len(keys)), f"{kind} deleted")
        result = {"all_gone_s": gone_at - started, **(await self.close_window(window, len(keys)))}
        log(f"{kind}: all gone in {result['all_gone_s']:.1f}s")
        return result

    async def scenario(self, key: str, action: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        """Run one scenario; a failure (e.g. a timeout) is recorded and the next scenario still runs."""
        try:
            self.results[key] = await action()
        except (TimeoutError, RuntimeError, OSError, aiohttp.ClientError) as err:
            log(f"{key}: failed: {err}")
            self.results[key] = {"error": f"{type(err).__name__}: {err}"}
        self.checkpoint(self.results)

    async def run(self) -> dict[str, Any]:
        n, chosen = self.args.n, self.args.scenarios
        if "baseline" in chosen:
            await self.scenario("baseline", lambda: self.baseline(n))
        if set(chosen) - {"baseline"}:
            await self.start_operator()
        if "pe-burst" in chosen:
            await self.scenario(
                "pe_burst",
                lambda: self.burst("PreviewEnvironment", n, workload.preview_environment, workload.PE_NAMESPACE),
            )
        if "md-burst" in chosen:
            await self.scenario(
                "md_burst", lambda: self.burst("ModelDeployment", n, workload.model_deployment, workload.MD_NAMESPACE)
            )
        if "steady" in chosen and self.pe_informer is not None:
            await self.scenario("steady", lambda: self.steady(self.args.steady_seconds, self.args.rate))
        if "restart" in chosen:
            await self.scenario("restart", self.restart)
        if "delete" in chosen:
            if (pe := self.pe_informer) is not None:
                await self.scenario("pe_delete", lambda: self.delete("PreviewEnvironment", pe))
            if (md := self.md_informer) is not None:
                await self.scenario("md_delete", lambda: self.delete("ModelDeployment", md))
        if self.operator is not None and self.operator.samples:
            self.results["operator_peak_rss_mb"] = max(r for _, r, _ in self.operator.samples) / 2**20
        return self.results


def _histogram_summary(before: stats.Samples, after: stats.Samples, name: str) -> dict[str, float | None]:
    buckets = stats.bucket_delta(stats.histogram_buckets(before, name), stats.histogram_buckets(after, name))
    return {
        "count": buckets[-1][1] if buckets else 0,
        "p50": stats.histogram_quantile(0.5, buckets),
        "p99": stats.histogram_quantile(0.99, buckets),
    }


def install_crds(kubeconfig: Path) -> None:
    kubectl = [str(BIN / "kubectl"), "--kubeconfig", str(kubeconfig)]
    subprocess.run(
        [*kubectl, "apply", "--server-side", "--field-manager=plinth-bench", "-k", str(ROOT / "crds")],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *kubectl,
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "-l",
            "app.kubernetes.io/part-of=plinth",
        ],
        check=True,
        capture_output=True,
    )


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError):
        mem = int(Path("/proc/meminfo").read_text().split()[1]) * 1024
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(mem / 2**30, 1),
        "python": platform.python_version(),
        "commit": commit.strip(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=100, help="objects per scenario (100 / 1000 / 5000)")
    p.add_argument("--scenarios", default="all", help=f"comma-separated subset of {','.join(SCENARIOS)}, or all")
    p.add_argument("--steady-seconds", type=float, default=180, help="length of the steady-state run")
    p.add_argument("--rate", type=float, default=10, help="spec changes per second in the steady state")
    p.add_argument(
        "--baseline-concurrency",
        default="64",
        help="requests in flight for the baseline; a comma-separated list tries each and keeps the fastest",
    )
    p.add_argument("--create-concurrency", type=int, default=32, help="requests in flight creating/deleting CRs")
    p.add_argument("--nodes", type=int, default=0, help="simulated nodes (default: enough for 2N pods at 250 each)")
    p.add_argument("--kubeconfig", type=Path, help="use this running cluster instead of booting a fresh one")
    p.add_argument("--keep-cluster", action="store_true", help="leave the booted cluster running afterwards")
    p.add_argument("--timeout-per-object", type=float, default=1.0, help="seconds allowed per object when waiting")
    p.add_argument(
        "--operator-env", action="append", default=[], help="KEY=VALUE for the operator's environment (repeatable)"
    )
    p.add_argument("--operator-log-level", default="", help="PLINTH_LOG_LEVEL for the operator (default: its own)")
    p.add_argument("--tag", default="", help="name of this result set (default n<N>)")
    p.add_argument("--json", type=Path, help="where to write the JSON (default hack/bench/results/<tag>.json)")
    p.add_argument("--doc", type=Path, default=ROOT / "docs" / "performance.md", help="Markdown file to update")
    p.add_argument("--no-doc", action="store_true", help="do not touch the Markdown file")
    p.add_argument("--from-json", type=Path, help="only re-render the report of this results file")
    p.add_argument(
        "--operator-source",
        type=Path,
        default=ROOT,
        help="directory holding operator/ and adapters/ to run (default: this checkout), e.g. a patched copy",
    )
    p.add_argument("--profile", action="store_true", help="py-spy the operator in each scenario (into the workdir)")
    args = p.parse_args(argv)
    args.scenarios = list(SCENARIOS) if args.scenarios == "all" else [s.strip() for s in args.scenarios.split(",")]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    args.baseline_concurrency = [int(c) for c in str(args.baseline_concurrency).split(",")]
    args.tag = args.tag or f"n{args.n}"
    return args


def snapshot_source(source: Path, workdir: Path) -> tuple[str, bool]:
    """Copy operator/ and adapters/ of *source* into workdir/src/plinth (first on the operator's PYTHONPATH); returns
    a digest of the copied sources and whether the checkout has uncommitted changes there."""
    target = workdir / "src" / "plinth"
    target.mkdir(parents=True)
    (target / "__init__.py").write_text("")
    digest = hashlib.sha256()
    for part in ("operator", "adapters"):
        shutil.copytree(source / part, target / part, ignore=shutil.ignore_patterns("__pycache__"))
    for path in sorted(target.rglob("*.py")):
        digest.update(path.read_bytes())
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "operator", "adapters"],
        cwd=source,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return digest.hexdigest()[:12], bool(dirty)


async def amain(args: argparse.Namespace, command: str, checkpoint: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"plinth-bench-{args.tag}-"))
    source_digest, dirty = snapshot_source(args.operator_source, workdir)
    log(f"operator source {args.operator_source} (sha256 {source_digest}{', uncommitted changes' if dirty else ''})")
    name = f"bench-{os.getpid()}"
    booted = None
    if args.kubeconfig:
        kubeconfig, cp_pids = args.kubeconfig, {}
    else:
        nodes = args.nodes or max(1, math.ceil((2 * args.n * 1.1 + 20) / 250))
        log(f"booting a fresh control plane ({nodes} nodes) in {workdir / 'cluster'}")
        booted = devcluster.up(name, directory=workdir / "cluster", nodes=nodes)
        kubeconfig = booted.kubeconfig
        state = json.loads((workdir / "cluster" / "state.json").read_text())
        cp_pids = {k: int(v) for k, v in (state.get("children") or {}).items()}
        cp_pids["localkube"] = booted.pid
    try:
        install_crds(kubeconfig)
        async with Kube(kubeconfig, connections=max([*args.baseline_concurrency, args.create_concurrency, 64])) as kube:
            bench = Bench(args, kube, kubeconfig, workdir, cp_pids, checkpoint=checkpoint)
            started = datetime.now(UTC)
            try:
                results = await bench.run()
            finally:
                await bench.close()
    finally:
        if booted is not None and not args.keep_cluster:
            devcluster.down(name, directory=workdir / "cluster", keep=True)
    return {
        "tag": args.tag,
        "command": command,
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "n": args.n,
        "machine": machine(),
        "settings": {
            "steady_seconds": args.steady_seconds,
            "rate": args.rate,
            "baseline_concurrency": args.baseline_concurrency,
            "create_concurrency": args.create_concurrency,
            "operator_env": {
                **{k: v for k, v in os.environ.items() if k.startswith("PLINTH_")},
                **dict(item.split("=", 1) for item in args.operator_env),
            },
        },
        "workdir": str(workdir),
        "operator_source": {"path": str(args.operator_source), "sha256": source_digest, "uncommitted": bool(dirty)},
        "results": results,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:  # re-render a finished run (e.g. after the report changed): no cluster
        data = json.loads(args.from_json.read_text())
        data["summary"] = report.summary(data)
        args.from_json.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
        markdown = report.render(data)
        print(markdown)
        if not args.no_doc:
            doc = args.doc.read_text() if args.doc.exists() else report.DOC_HEADER
            args.doc.write_text(report.update_doc(doc, data["tag"], markdown))
        return 0
    command = "python hack/bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    target = args.json or ROOT / "hack" / "bench" / "results" / f"{args.tag}.json"
    target.parent.mkdir(parents=True, exist_ok=True)

    def checkpoint(results: dict[str, Any]) -> None:
        partial = target.with_suffix(".partial.json")
        partial.write_text(json.dumps({"n": args.n, "results": results}, indent=2, default=str) + "\n")

    data = asyncio.run(amain(args, command, checkpoint))
    data["summary"] = report.summary(data)
    target.with_suffix(".partial.json").unlink(missing_ok=True)
    target.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    log(f"results: {target}")
    markdown = report.render(data)
    print(markdown)
    if not args.no_doc:
        doc = args.doc.read_text() if args.doc.exists() else report.DOC_HEADER
        args.doc.write_text(report.update_doc(doc, args.tag, markdown))
        log(f"updated {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
