"""The long chaos run behind docs/reliability.md: the same fault scenarios as tests/integration/test_faults.py, with
bigger numbers, on a private local control plane, printing the figures as Markdown and JSON.

    PYTHONSAFEPATH=1 .venv/bin/python hack/chaos/run.py --kills 20 --outage 60 --window 60 --json chaos.json

Scenarios, in order: (1) the operator SIGKILLed --kills times during a burst of creates/updates/deletes of all three
kinds, then left to converge (0 orphans, 0 duplicates, all Ready, all deleted gone); (2) kube-apiserver and etcd
stopped for --outage seconds right after changes to all three kinds, then restarted, --outages times, under the same
operator process; (3) Deployment writes refused by a ValidatingAdmissionPolicy (422) and by an unreachable webhook
(500) for --window seconds, counting the operator's own API requests.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the scenarios live in the test suite: one implementation for CI and chaos

from tests.conftest import Operator  # noqa: E402
from tests.integration.test_faults import api_outage, kill_burst, private_cluster, refused_writes  # noqa: E402


def machine() -> dict[str, Any]:
    memory = next(
        (
            int(line.split()[1]) // 1024**2
            for line in Path("/proc/meminfo").read_text().splitlines()
            if "MemTotal" in line
        ),
        0,
    )
    git = ["git", "rev-parse", "--short", "HEAD"]
    commit = subprocess.run(git, cwd=ROOT, capture_output=True, text=True, check=False).stdout
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "memory_gib": memory,
        "python": platform.python_version(),
        "commit": commit.strip(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs of the operator during the burst")
    parser.add_argument("--seed", type=int, default=20261125, help="seed of the burst's random changes")
    parser.add_argument("--models", type=int, default=8, help="ModelDeployment names the burst uses")
    parser.add_argument("--previews", type=int, default=5, help="PreviewEnvironments live at once, at most")
    parser.add_argument("--quotas", type=int, default=4, help="NamespaceQuotas (each with its own namespace)")
    parser.add_argument("--outage", type=float, default=60, help="seconds the API server and etcd stay stopped")
    parser.add_argument("--outages", type=int, default=1, help="how many outage drills")
    parser.add_argument("--window", type=float, default=60, help="seconds of refused writes to count requests over")
    parser.add_argument(
        "--only", choices=["kills", "outages", "refusals"], action="append", help="run only these scenarios"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--workdir", type=Path, help="cluster data and operator logs (default: a temp dir, kept)")
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="plinth-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"chaos: work dir {workdir}", file=sys.stderr)
    figures: dict[str, Any] = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}}
    started = time.monotonic()
    with private_cluster(workdir / "cluster") as private:
        cluster = private.cluster
        wanted = set(args.only or ["kills", "outages", "refusals"])
        print(f"chaos: {args.kills} kills during a burst", file=sys.stderr)
        figures["kills"] = {"skipped": True}
        if "kills" in wanted:
            figures["kills"] = scenario(
                lambda: kill_burst(
                    cluster,
                    workdir / "operator-kills.log",
                    kills=args.kills,
                    seed=args.seed,
                    model_names=args.models,
                    previews=args.previews,
                    quota_groups=args.quotas,
                    converge_timeout=300,
                )
            )
        figures["outages"] = []
        for i in range(args.outages if "outages" in wanted else 0):
            print(f"chaos: API outage {i + 1}/{args.outages} of {args.outage:.0f}s", file=sys.stderr)
            log = workdir / f"operator-outage-{i}.log"
            figures["outages"].append(
                scenario(lambda log=log, i=i: api_outage(private, log, outage=args.outage, seed=i))
            )
        figures["refusals"] = []
        op = Operator(cluster, workdir / "operator-refusals.log")
        try:
            for how in ("policy", "webhook") if "refusals" in wanted else ():
                namespace = f"refuse-{uuid.uuid4().hex[:6]}"
                cluster.kubectl("create", "namespace", namespace)
                print(f"chaos: writes refused by a {how} for {args.window:.0f}s", file=sys.stderr)
                figures["refusals"].append(
                    scenario(lambda ns=namespace, how=how: refused_writes(cluster, op, ns, how=how, window=args.window))
                )
                cluster.kubectl("delete", "modeldeployments", "--all", "-n", namespace, "--timeout=60s", check=False)
        finally:
            op.stop()
    figures["seconds_total"] = round(time.monotonic() - started)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print(markdown(figures))
    return 0


def scenario(run: Callable[[], Any]) -> dict[str, Any]:
    """Run one scenario; a failed invariant is a figure too (recorded, and the run goes on to the next fault)."""
    started = time.monotonic()
    try:
        result: dict[str, Any] = dataclasses.asdict(run())
    except AssertionError as err:
        result = {"failed": str(err)[:2000]}
    result["seconds"] = round(time.monotonic() - started)
    print(f"chaos: {result}", file=sys.stderr)
    return result


def markdown(f: dict[str, Any]) -> str:
    k = f["kills"]
    if k.get("skipped"):
        k = {"failed": "not run this time (--only)"}
    lines = [
        f"Run {f['machine']['date']}, commit {f['machine']['commit']}, {f['machine']['cpus']} CPUs, "
        f"{f['machine']['memory_gib']} GiB, {f['seconds_total']} s in all.",
        "",
        "| fault | injected | result |",
        "|---|---|---|",
    ]
    if "failed" in k:
        lines.append(f"| operator SIGKILL during a burst | {f['args']['kills']} kills | FAILED: {k['failed']} |")
    else:
        lines.append(
            f"| operator SIGKILL during a burst | {k['kills']} kills in {k['seconds_of_burst']} s; "
            f"{k['operations']} | converged in {k['seconds_to_converge']} s: 0 orphans, 0 duplicates, "
            f"{sum(k['objects_left'].values())} objects Ready ({k['objects_left']}), {k['objects_deleted']} deleted "
            "and gone |"
        )
    for o in f["outages"]:
        if "failed" in o:
            lines.append(f"| kube-apiserver + etcd stopped | {f['args']['outage']} s | FAILED: {o['failed']} |")
            continue
        repairs = "; ".join(f"{what}: {secs} s" for what, secs in o["repairs"].items())
        lines.append(
            f"| kube-apiserver + etcd stopped | {o['outage_seconds']:.0f} s, right after changes to all three kinds | "
            f"same operator process; converged {o['seconds_to_converge']} s after the API returned; {repairs} |"
        )
    for r in f["refusals"]:
        if "failed" in r:
            lines.append(f"| Deployment writes refused | {f['args']['window']} s | FAILED: {r['failed']} |")
            continue
        lines.append(
            f"| Deployment writes refused ({r['how']}) | {r['window_seconds']:.0f} s | {r['condition']['type']}="
            f"{r['condition']['reason']}; {r['failed_requests']:.0f} failed / {r['all_requests']:.0f} API requests, "
            f"{r['reconciles']:.0f} reconciles in the window; Ready {r['seconds_to_recover']} s after writes passed |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
