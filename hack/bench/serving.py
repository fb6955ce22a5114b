"""Model servers side by side: Plinth's `plinth.serving`, Seldon MLServer and KServe's Python model server.

    PYTHONSAFEPATH=1 .venv/bin/python hack/bench/serving.py

One scikit-learn model (LogisticRegression fitted on the iris data set that scikit-learn ships, saved with joblib at
start) is served by each server in turn, as one local process on 127.0.0.1 with one worker, and driven by the same
load generator (wrk, keep-alive, fixed connection counts, a warm-up then a fixed duration) with the same Open
Inference Protocol v2 JSON request. The servers run one after another, never at once (2 cores), interleaved in
rounds so that drift on the machine hits all of them alike; each figure is the median of the rounds. The peers live
in their own virtual environments under ~/.cache/plinth/bench/venvs (their dependencies conflict with Plinth's),
created here with the pinned versions below. Writes hack/bench/results/serving.json and replaces its own block of
docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stats import fmt, markdown_table, percentile, ratio

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "hack" / "bench" / "results" / "serving.json"
DOC = ROOT / "docs" / "performance.md"
START, END = "<!-- serving-bench:start -->", "<!-- serving-bench:end -->"
VENVS = Path.home() / ".cache" / "plinth" / "bench" / "venvs"
MODEL, VERSION = "iris", "1.0.0"
INFER_PATH = f"/v2/models/{MODEL}/infer"  # unversioned: KServe answers 501 for /versions/{v}/infer
SERVERS = ("plinth", "mlserver", "kserve")
PEERS = ("mlserver", "kserve")

# Exact versions, so a rerun measures the same peers. scikit-learn, numpy and joblib are pinned to what Plinth's
# venv has, so every server runs the same estimator code; py-spy profiles any of them from outside.
PINS: dict[str, tuple[str, ...]] = {
    "mlserver": ("mlserver==1.7.1", "mlserver-sklearn==1.7.1", "scikit-learn==1.9.1", "numpy==2.4.6", "joblib==1.6.0"),
    "kserve": ("kserve==0.21.0", "scikit-learn==1.9.1", "numpy==2.4.6", "joblib==1.6.0"),
}
PROFILER = "py-spy==0.4.3"
REPORTED = {
    "plinth": ("plinth", "uvicorn", "starlette", "scikit-learn", "numpy"),
    "mlserver": ("mlserver", "mlserver-sklearn", "uvicorn", "fastapi", "scikit-learn", "numpy"),
    "kserve": ("kserve", "uvicorn", "fastapi", "scikit-learn", "numpy"),
}

# KServe's scikit-learn server (python/sklearnserver in its repository) is not published as a package, so this is
# its model class reduced to a local joblib file: the same get_predict_input -> estimator.predict path, with the
# output named "predict" as Plinth and MLServer name it, so all three get the identical request. Its REST server
# binds 0.0.0.0 and has no option for that: the subclass of uvicorn.Config pins 127.0.0.1. gRPC (on by default)
# binds every interface with no option either, so it is off; each request logs at INFO (uvicorn's access log and
# KServe's latency line), lowered to WARNING like the other two servers.
KSERVE_MAIN = """
import logging
import os

import joblib
import kserve
import kserve.protocol.rest.server as rest
import uvicorn
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from kserve.utils.utils import from_np_dtype, generate_uuid, get_predict_input


class Loopback(uvicorn.Config):
    def __init__(self, *args, **kwargs):
        kwargs["host"] = "127.0.0.1"
        super().__init__(*args, **kwargs)


rest.uvicorn.Config = Loopback


class SKLearnModel(kserve.Model):
    def __init__(self, name, path):
        super().__init__(name)
        self.path = path
        self.ready = False

    def load(self):
        self._model = joblib.load(self.path)
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None):
        result = self._model.predict(get_predict_input(payload))
        output = InferOutput(name="predict", shape=list(result.shape), datatype=from_np_dtype(result.dtype))
        output.set_data_from_numpy(result, binary_data=payload.use_binary_outputs)
        return InferResponse(
            model_name=self.name,
            infer_outputs=[output],
            response_id=payload.id if payload.id else generate_uuid(),
            requested_outputs=payload.request_outputs,
        )


if __name__ == "__main__":
    model = SKLearnModel(os.environ["MODEL_NAME"], os.environ["MODEL_PATH"])
    model.load()
    server = kserve.ModelServer(http_port=int(os.environ["PORT"]), workers=1, enable_grpc=False)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    server.start([model])
"""

# wrk's per-thread Lua states send the body; done() runs once with the merged latency histogram (microseconds).
WRK_LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK-RESULT {{"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def venv_python(name: str) -> Path:
    return VENVS / name / "bin" / "python"


def ensure_venv(name: str) -> None:
    """Create the peer's venv, or bring it to the pins: a check that costs a second when nothing changed."""
    python = venv_python(name)
    wanted = [*PINS[name], PROFILER]
    if not python.exists():
        log(f"creating {VENVS / name}")
        subprocess.run(["python3", "-m", "venv", str(VENVS / name)], check=True)
    if installed(name, [pin.split("==")[0] for pin in wanted]) != {p.split("==")[0]: p.split("==")[1] for p in wanted}:
        log(f"installing {' '.join(wanted)} into {VENVS / name}")
        subprocess.run([str(python), "-m", "pip", "install", "-q", *wanted], check=True)


def installed(name: str, packages: Sequence[str]) -> dict[str, str]:
    """The versions of *packages* in a venv ("plinth" is this checkout's own)."""
    python = Path(sys.executable) if name == "plinth" else venv_python(name)
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for p in sys.argv[1:]:\n"
        "    try: out[p] = m.version(p)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    try:
        done = subprocess.run([str(python), "-c", code, *packages], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return {}
    versions: dict[str, str] = json.loads(done.stdout)
    return versions


def make_model(directory: Path) -> Path:
    """The benchmark's model, fitted now from the data set scikit-learn ships (nothing downloaded)."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    path = directory / "model.joblib"  # MLServer's sklearn runtime finds model.joblib by this name
    joblib.dump(LogisticRegression(max_iter=1000).fit(features, labels), path)
    return path


def request_body(rows: int) -> bytes:
    """The same OIP v2 JSON request for every server: *rows* iris rows (cycled), FP64, asking for `predict`."""
    from sklearn.datasets import load_iris

    features = load_iris().data
    data = [float(v) for i in range(rows) for v in features[i % len(features)]]
    body = {
        "inputs": [{"name": "input", "shape": [rows, 4], "datatype": "FP64", "data": data}],
        "outputs": [{"name": "predict"}],
    }
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass
class Server:
    """A server process and where it answers."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def launch(name: str, model: Path, workdir: Path) -> Server:
    """Start one server with its one worker process, logging to a file; readiness is waited for by the caller."""
    port = free_port()
    log = workdir / f"{name}-{port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLSERVER_", "KSERVE_", "MODEL_"))}
    if name == "plinth":
        env |= {
            "PYTHONSAFEPATH": "1",
            "MODEL_URI": model.as_uri(),
            "MODEL_NAME": MODEL,
            "MODEL_VERSION": VERSION,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "LOG_LEVEL": "WARNING",
        }
        command = [sys.executable, "-m", "plinth.serving"]
    elif name == "mlserver":
        repository = workdir / f"mlserver-{port}"
        (repository / MODEL).mkdir(parents=True)
        shutil.copy(model, repository / MODEL / "model.joblib")
        # parallel_workers=0 runs inference in the server process itself (the default, 1, adds a second process
        # fed over IPC); debug=false drops its per-request access log, as LOG_LEVEL=WARNING does Plinth's. Metrics
        # stay on, as by default: the REST app counts every request, the endpoint is served on metrics_port.
        settings = {
            "debug": False,
            "parallel_workers": 0,
            "host": "127.0.0.1",
            "http_port": port,
            "grpc_port": free_port(),
            "metrics_port": free_port(),
        }
        (repository / "settings.json").write_text(json.dumps(settings))
        model_settings = {
            "name": MODEL,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib", "version": VERSION},
        }
        (repository / MODEL / "model-settings.json").write_text(json.dumps(model_settings))
        command = [str(VENVS / "mlserver" / "bin" / "mlserver"), "start", str(repository)]
    else:
        main = workdir / "kserve_iris.py"
        main.write_text(KSERVE_MAIN)
        env |= {"MODEL_NAME": MODEL, "MODEL_PATH": str(model), "PORT": str(port), "KSERVE_LOGLEVEL": "WARNING"}
        command = [str(venv_python("kserve")), str(main)]
    out = log.open("wb")
    process = subprocess.Popen(command, env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    return Server(name, process, port, log)


def get(url: str, body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def wait_ready(server: Server, timeout: float = 120) -> float:
    """Seconds from launch until /v2/health/ready answers 200; a server that exits or never gets there aborts."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if server.process.poll() is not None:
            raise SystemExit(f"{server.name} exited with {server.process.returncode}; see {server.log}")
        if get(f"{server.url}/v2/health/ready")[0] == 200:
            return time.monotonic() - started
        time.sleep(0.1)
    raise SystemExit(f"{server.name} not ready after {timeout} s; see {server.log}")


def check_answer(server: Server, body: bytes, rows: int) -> None:
    """One request before measuring: a 200 with `rows` predictions, so wrk's counts are of real answers."""
    status, raw = get(server.url + INFER_PATH, body)
    if status != 200:
        raise SystemExit(f"{server.name} answered {status}: {raw[:500]!r}")
    outputs = json.loads(raw)["outputs"]
    if outputs[0]["name"] != "predict" or math.prod(outputs[0]["shape"]) != rows:  # MLServer answers [rows, 1]
        raise SystemExit(f"{server.name} answered an unexpected tensor: {raw[:500]!r}")


def tree(pid: int) -> list[int]:
    """*pid* and all its descendants (MLServer's and KServe's helpers count as the server's memory)."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo += [int(child) for child in (task / "children").read_text().split()]
    return out


def memory_mb(pid: int) -> dict[str, float]:
    """Summed over the process tree: VmHWM (each process' peak RSS) and VmRSS (now), in MB."""
    totals = {"VmHWM": 0.0, "VmRSS": 0.0}
    for member in tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                key = line.split(":", 1)[0]
                if key in totals:
                    totals[key] += int(line.split()[1]) / 1024
    return {"peak_rss_mb": round(totals["VmHWM"], 1), "rss_mb": round(totals["VmRSS"], 1)}


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process tree, from /proc/<pid>/stat."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for member in tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def run_wrk(url: str, script: Path, connections: int, seconds: int, threads: int) -> dict[str, Any]:
    """One wrk run; its result line, plus the CPU seconds wrk itself used (to show it is not the bottleneck)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url + INFER_PATH,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    match = re.search(r"^WRK-RESULT (\{.*\})$", done.stdout, re.MULTILINE)
    if not match:
        raise SystemExit(f"no result from wrk:\n{done.stdout}\n{done.stderr}")
    raw: dict[str, Any] = json.loads(match.group(1))
    duration = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "rps": round(raw["requests"] / duration, 1),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p90_ms": round(raw["p90_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "max_ms": round(raw["max_us"] / 1000, 2),
        "non_2xx": raw["status"],  # wrk counts every status >= 400; the check before the run saw a 200
        "socket_errors": raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        "duration_s": round(duration, 2),
        "wrk_cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2),
    }


def stop(server: Server) -> None:
    """SIGTERM, then SIGKILL of what is left of the tree after 30 s."""
    members = tree(server.process.pid)
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        server.process.wait()


@contextlib.contextmanager
def profiled(server: Server, target: str, out: Path) -> Iterator[None]:
    """py-spy (from the KServe venv: it is a standalone binary) sampling the server's tree while the block runs;
    --gil keeps only the thread holding the GIL, which is where a single-process Python server spends its core."""
    if server.name != target:
        yield
        return
    spy = VENVS / "kserve" / "bin" / "py-spy"
    command = [str(spy), "record", "--pid", str(server.process.pid), "--subprocesses", "--gil", "--rate", "200"]
    command += ["--format", "raw", "--output", str(out), "--nonblocking"]
    recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(timeout=60)


def cell_key(rows: int, connections: int) -> str:
    return f"b{rows}-c{connections}"


def cell_label(key: str) -> tuple[str, str, str]:
    """(rows, plural suffix, connections) of a cell key."""
    rows, connections = key[1:].split("-c")
    return rows, "" if rows == "1" else "s", connections


def median(values: Sequence[float]) -> float | None:
    return percentile(list(values), 50)


def aggregate(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per server and cell: the median over rounds of every figure (and the per-round figures beside it)."""
    out: dict[str, Any] = {}
    for name in SERVERS:
        mine = [r["servers"][name] for r in rounds if name in r["servers"]]
        if not mine:
            continue
        cells: dict[str, Any] = {}
        for key in mine[0]["cells"]:
            runs = [m["cells"][key] for m in mine]
            cells[key] = {
                field: median([run[field] for run in runs])
                for field in ("rps", "p50_ms", "p99_ms", "non_2xx", "socket_errors", "server_cpu_us_per_req")
            }
            cells[key] |= {"rps_rounds": [run["rps"] for run in runs], "p99_ms_rounds": [run["p99_ms"] for run in runs]}
            cells[key]["errors_total"] = sum(run["non_2xx"] + run["socket_errors"] for run in runs)
        out[name] = {
            "cells": cells,
            "peak_rss_mb": median([m["memory"]["peak_rss_mb"] for m in mine]),
            "rss_after_mb": median([m["memory"]["rss_mb"] for m in mine]),
            "ready_s": median([m["ready_s"] for m in mine]),
        }
    return out


def compare(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Per cell: Plinth against the peer with the highest throughput; the goal is rps ratio >= 1 at p99 ratio <= 1."""
    out = []
    for key, mine in summary["plinth"]["cells"].items():
        peers = [p for p in PEERS if p in summary]
        if not peers:
            continue
        best = max(peers, key=lambda p: summary[p]["cells"][key]["rps"])
        theirs = summary[best]["cells"][key]
        rps = ratio(mine["rps"], theirs["rps"])
        p99 = ratio(mine["p99_ms"], theirs["p99_ms"])
        met = rps is not None and p99 is not None and rps >= 1 and p99 <= 1
        out.append({"cell": key, "best_peer": best, "rps_ratio": rps, "p99_ratio": p99, "met": met})
    return out


def render(result: dict[str, Any]) -> str:
    """The generated block of docs/performance.md."""
    meta, summary, verdicts = result["meta"], result["summary"], result["comparison"]
    lines = [
        START,
        f"### Model servers, {meta['date']} (commit {meta['commit']})",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['cores']} cores ({meta['cpu']}), {meta['memory_gb']} GB, {meta['python']}; load generator "
        f"wrk {meta['wrk']} ({meta['wrk_threads']} thread{'s' if meta['wrk_threads'] > 1 else ''}, keep-alive), "
        f"{meta['warmup_s']:g} s warm-up then {meta['duration_s']:g} s per cell, {meta['rounds']} rounds "
        f"interleaved ({', '.join(meta['servers'])}), medians of the rounds  ",
        "Versions: "
        + "; ".join(f"{n}: " + ", ".join(f"{p} {v}" for p, v in meta["versions"][n].items()) for n in meta["servers"])
        + "  ",
        f"Load average (1 min) at start → end: {meta['load_start']:.1f} → {meta['load_end']:.1f}; after each cell"
        f" {meta['load_cells'][0]:.1f} to {meta['load_cells'][1]:.1f} (above 2, something else wanted the cores too:"
        " compare the rounds)",
        "",
    ]
    rows = []
    for key in summary["plinth"]["cells"]:
        rows_n, conns = key[1:].split("-c")
        for name in SERVERS:
            if name not in summary:
                continue
            cell = summary[name]["cells"][key]
            rounds = " / ".join(f"{v:.0f}" for v in cell["rps_rounds"])
            rows.append(
                [
                    rows_n,
                    conns,
                    name,
                    f"{cell['rps']:.0f} ({rounds})",
                    fmt(cell["p50_ms"]),
                    fmt(cell["p99_ms"]),
                    f"{cell['errors_total']}",
                    f"{cell['server_cpu_us_per_req']:.0f}",
                ]
            )
    header = ["Rows", "Connections", "Server", "req/s (rounds)", "p50 ms", "p99 ms", "Errors", "Server CPU µs/req"]
    lines += [markdown_table(header, rows), ""]
    memory = [
        [
            name,
            fmt(summary[name]["peak_rss_mb"], 1),
            fmt(summary[name]["rss_after_mb"], 1),
            fmt(summary[name]["ready_s"], 1),
        ]
        for name in SERVERS
        if name in summary
    ]
    lines += [
        markdown_table(["Server", "Peak RSS MB (VmHWM)", "RSS after the run MB", "Launch → ready s"], memory),
        "",
    ]
    compared = [
        [
            "{} row{}, {} connections".format(*cell_label(v["cell"])),
            v["best_peer"],
            fmt(v["rps_ratio"]),
            fmt(v["p99_ratio"]),
            "met" if v["met"] else "missed",
        ]
        for v in verdicts
    ]
    lines += [
        markdown_table(
            ["Cell", "Best peer (by req/s)", "Throughput plinth / best", "p99 plinth / best", "Goal"], compared
        ),
        "",
        f"**Goal (throughput ≥ the best peer's at no worse p99, in every cell): {result['goal']}.**",
        END,
    ]
    return "\n".join(lines)


SECTION = """## Model server

How `plinth.serving` compares with the two servers it is an alternative to, Seldon MLServer and KServe's Python model
server, on the same model and request. The goal: Plinth's throughput at least the best peer's at no worse p99.

```sh
PYTHONSAFEPATH=1 .venv/bin/python hack/bench/serving.py
```

The harness (`hack/bench/serving.py`; about 15 minutes) fits a LogisticRegression on scikit-learn's iris data, saves
it with joblib, and serves it with each server in turn on 127.0.0.1, one process each: Plinth with
`LOG_LEVEL=WARNING`; MLServer with the sklearn runtime, `parallel_workers: 0` (inference in the server process; the
default, 1, adds a second process fed over IPC), `debug: false` (its default, true, writes an access-log line per
request) and metrics on, as by default; KServe's `ModelServer(workers=1)` around a `kserve.Model` doing what its
sklearnserver does (that server is not published as a package), its logs at WARNING and its gRPC server off (it binds
every interface with no option not to). The peers are installed in their own venvs under
`~/.cache/plinth/bench/venvs` at the versions pinned in the script. Every server gets the same OIP v2 JSON body
(`FP64` rows, asking for `predict`) from wrk with keep-alive, at 16 and 64 connections, for 1 and 32 rows a request.
Servers run one at a time, in interleaved rounds; figures are medians of the rounds. Errors count non-2xx answers
and socket errors over all rounds. RSS is summed over each server's process tree. `--profile plinth` records a
py-spy profile of a server during its runs. Results: `hack/bench/results/serving.json`.

"""


def write_doc(block: str) -> None:
    """Replace the generated block, or append the section with it when it is not there yet."""
    text = DOC.read_text()
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + SECTION + block + "\n"
    DOC.write_text(text)


def wrk_version() -> str:
    done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    match = re.search(r"wrk (\S+)", done.stdout + done.stderr)
    return match.group(1) if match else "?"


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(memory / 1024 / 1024, 1),
        "python": f"Python {platform.python_version()}",
        "commit": commit.strip() or "?",
    }


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Plan:
    """What one benchmark run measures, from the command line."""

    servers: list[str]
    rows: list[int]
    connections: list[int]
    warmup: int
    duration: int
    wrk_threads: int
    profile: str


def measure_server(name: str, number: int, plan: Plan, model: Path, workdir: Path) -> dict[str, Any]:
    """One server's turn in a round: launch, every cell (warm-up, then the measured run), memory, stop."""
    server = launch(name, model, workdir)
    try:
        ready = wait_ready(server)
        cells: dict[str, Any] = {}
        for rows in plan.rows:
            body = request_body(rows)
            check_answer(server, body, rows)
            script = workdir / f"post-{rows}.lua"
            for conns in plan.connections:
                key = cell_key(rows, conns)
                run_wrk(server.url, script, conns, plan.warmup, plan.wrk_threads)
                cpu_before = cpu_seconds(server.process.pid)
                with profiled(server, plan.profile, workdir / f"profile-{name}-r{number}-{key}.txt"):
                    cell = run_wrk(server.url, script, conns, plan.duration, plan.wrk_threads)
                cell["server_cpu_s"] = round(cpu_seconds(server.process.pid) - cpu_before, 2)
                cell["server_cpu_us_per_req"] = round(1e6 * cell["server_cpu_s"] / max(cell["requests"], 1))
                cell["load_1m"] = round(os.getloadavg()[0], 2)
                cells[key] = cell
                log(
                    f"round {number} {name:8} {key:8} {cell['rps']:8.0f} req/s  p50 {cell['p50_ms']:6.2f} ms"
                    f"  p99 {cell['p99_ms']:7.2f} ms  errors {cell['non_2xx'] + cell['socket_errors']}"
                    f"  server cpu {cell['server_cpu_us_per_req']} µs/req  wrk cpu {cell['wrk_cpu_s']} s"
                    f"  load {cell['load_1m']}"
                )
        memory = memory_mb(server.process.pid)
        log(f"round {number} {name:8} ready in {ready:.1f} s, peak RSS {memory['peak_rss_mb']} MB")
        return {"ready_s": round(ready, 2), "cells": cells, "memory": memory}
    finally:
        stop(server)


def parse_plan() -> tuple[Plan, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=20, help="measured seconds per cell")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of load before each measured run")
    parser.add_argument("--connections", default="16,64")
    parser.add_argument("--rows", default="1,32", help="rows per request")
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--wrk-threads", type=int, default=1, help="1 leaves the other core to the server")
    parser.add_argument("--profile", choices=SERVERS, help="py-spy the named server during its measured runs")
    parser.add_argument("--no-doc", action="store_true", help="leave docs/performance.md alone")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    servers = [s for s in SERVERS if s in args.servers.split(",")]
    if "plinth" not in servers:
        raise SystemExit("--servers must include plinth: every figure is a ratio to it")
    plan = Plan(
        servers=servers,
        rows=[int(r) for r in args.rows.split(",")],
        connections=[int(c) for c in args.connections.split(",")],
        warmup=args.warmup,
        duration=args.duration,
        wrk_threads=args.wrk_threads,
        profile=args.profile or "",
    )
    return plan, args


def main() -> None:
    plan, args = parse_plan()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk (Debian's package)")
    for name in {*plan.servers, *(["kserve"] if plan.profile else [])} - {"plinth"}:
        ensure_venv(name)
    workdir = Path(tempfile.mkdtemp(prefix="plinth-serving-bench-"))
    log(f"work directory {workdir}")
    model = make_model(workdir)
    for rows in plan.rows:
        (workdir / f"post-{rows}.lua").write_text(WRK_LUA.format(body=request_body(rows).decode()))
    load_start = os.getloadavg()[0]
    rounds: list[dict[str, Any]] = []
    for number in range(1, args.rounds + 1):
        servers = {name: measure_server(name, number, plan, model, workdir) for name in plan.servers}
        rounds.append({"round": number, "servers": servers})
    summary = aggregate(rounds)
    comparison = compare(summary)
    loads = [c["load_1m"] for r in rounds for m in r["servers"].values() for c in m["cells"].values()]
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python hack/bench/serving.py" + "".join(f" {a}" for a in sys.argv[1:]),
        **machine(),
        "wrk": wrk_version(),
        "wrk_threads": plan.wrk_threads,
        "warmup_s": plan.warmup,
        "duration_s": plan.duration,
        "rounds": args.rounds,
        "servers": plan.servers,
        "versions": {name: installed(name, REPORTED[name]) for name in plan.servers},
        "load_start": load_start,
        "load_end": os.getloadavg()[0],
        "load_cells": [min(loads), max(loads)],
        "request_bytes": {str(rows): len(request_body(rows)) for rows in plan.rows},
    }
    goal = "met" if comparison and all(v["met"] for v in comparison) else "not met"
    result = {"meta": meta, "summary": summary, "comparison": comparison, "goal": goal, "rounds": rounds}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    block = render(result)
    print(block)
    if not args.no_doc:
        write_doc(block)
    if plan.profile:
        log(f"py-spy profiles (raw collapsed stacks): {workdir}/profile-{plan.profile}-*.txt")


if __name__ == "__main__":
    main()
