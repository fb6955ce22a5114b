"""Faults (issue 8): the operator SIGKILLed during a burst of changes, the API server and etcd stopped and restarted
under a running operator, drift on children, deletion while the operator is down, and API writes refused by
admission. Every check is against the real local control plane; nothing is mocked.

The scenario functions (``kill_burst``, ``api_outage``, ``refused_writes``) are shared with the longer chaos run
(``hack/chaos/run.py``), which calls them with bigger numbers and writes the figures into docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from plinth.operator import devcluster
from plinth.operator.api.conversion import internal

from tests.conftest import Cluster, Operator, plinth_api, wait_for

pytestmark = pytest.mark.cluster

GROUP = "plinth.dev/v1alpha1"
MD_OWNER = "plinth.dev/modeldeployment"
PE_OWNER = "plinth.dev/previewenvironment"
PE_OWNER_NS = "plinth.dev/previewenvironment-namespace"
PE_OWNER_UID = "plinth.dev/previewenvironment-uid"
NSQ_OWNER = "plinth.dev/namespacequota"
QUOTA_GROUP_LABEL = "chaos.plinth.dev/quota"
RUN_LABEL = "chaos.plinth.dev/run"
# Children checked for orphans and duplicates, by the owner label they carry.
MD_CHILDREN = ("deployments", "services", "poddisruptionbudgets", "horizontalpodautoscalers")
NSQ_CHILDREN = ("resourcequotas", "limitranges", "networkpolicies")
PE_CHILDREN = ("deployments", "services", "modeldeployments")


# -- manifests ------------------------------------------------------------------------------------------------------


def model_deployment(namespace: str, name: str, version: str = "1.0.0", replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"name": name, "version": version, "uri": f"s3://models/{name}/{version}"},
            "runtime": {"image": "registry.example/model-server:2", "port": 8080},
            "replicas": replicas,
        },
    }


def preview_environment(
    namespace: str, name: str, pr: int, team: str, *, commit: str = "aaaaaaa", model: bool = False
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "source": {"repository": "github.com/acme/chaos", "pullRequest": pr, "commit": commit},
        "team": team,
        "services": [{"name": "web", "image": "registry.example/web:1", "port": 8080}],
    }
    if model:
        spec["models"] = [
            {
                "name": "scorer",
                "spec": {
                    "model": {"name": "scorer", "version": "1.0.0", "uri": "s3://models/scorer/1.0.0"},
                    "runtime": {"image": "registry.example/model-server:2"},
                },
            }
        ]
    return {
        "apiVersion": GROUP,
        "kind": "PreviewEnvironment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def namespace_quota(name: str, pods: int = 10, group: str | None = None) -> dict[str, Any]:
    """Selects the namespaces labelled with its *group* (its own name by default), so quotas of a run only compete
    for a namespace when a test wants them to."""
    return {
        "apiVersion": GROUP,
        "kind": "NamespaceQuota",
        "metadata": {"name": name},
        "spec": {
            "namespaceSelector": {"matchLabels": {QUOTA_GROUP_LABEL: group or name}},
            "perNamespace": {"hard": {"pods": pods, "configmaps": 20}},
            "defaults": {"request": {"cpu": "50m"}, "limit": {"cpu": "200m"}},
            "networkIsolation": "AllowSameNamespace",
        },
    }


def apply(cluster: Cluster, body: dict[str, Any], manager: str = "chaos") -> None:
    cluster.kubectl("apply", "--server-side", f"--field-manager={manager}", "-f", "-", input=yaml.safe_dump(body))


def _plural(kind: str) -> str:
    return {"ModelDeployment": "modeldeployments", "PreviewEnvironment": "previewenvironments"}.get(
        kind, "namespacequotas"
    )


def get_object(cluster: Cluster, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    scope = ["-n", namespace] if namespace else []
    found = cluster.kubectl("get", *scope, _plural(kind), name, "-o", "json", check=False)
    return json.loads(found.stdout) if found.returncode == 0 else None


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return {}


def ready_now(obj: dict[str, Any] | None) -> bool:
    """Ready=True and both the status and the condition describe the current generation."""
    if obj is None:
        return False
    generation = obj["metadata"].get("generation")
    ready = condition(obj, "Ready")
    return (
        ready.get("status") == "True"
        and ready.get("observedGeneration") == generation
        and (obj.get("status") or {}).get("observedGeneration") == generation
    )


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus counter's samples whose labels include *labels*."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}\{{(.*)\}} (\S+)$", line)
        if not match:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total


# -- the state a run leaves behind, and the invariants it must satisfy --------------------------------------------


@dataclass
class Workload:
    """Objects of all three kinds in namespaces of one run; what is expected to exist and what to be gone."""

    cluster: Cluster
    run: str
    quota_groups: int = 3
    live: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    deleted: set[tuple[str, str, str]] = field(default_factory=set)
    operations: Counter[str] = field(default_factory=Counter)
    pr_counter: int = 0
    extra_namespaces: list[str] = field(default_factory=list)

    @property
    def md_namespace(self) -> str:
        return f"{self.run}-md"

    @property
    def pe_namespace(self) -> str:
        return f"{self.run}-pe"

    @property
    def team(self) -> str:
        return f"team-{self.run}"

    def quota_name(self, i: int) -> str:
        return f"{self.run}-q{i}"

    def namespaces(self) -> list[str]:
        return [self.md_namespace, self.pe_namespace] + [self.quota_name(i) for i in range(self.quota_groups)]

    def setup(self) -> None:
        for ns in self.namespaces():
            self.cluster.kubectl("create", "namespace", ns)
            self.cluster.kubectl("label", "namespace", ns, f"{RUN_LABEL}={self.run}")
        for i in range(self.quota_groups):
            self.cluster.kubectl("label", "namespace", self.quota_name(i), f"{QUOTA_GROUP_LABEL}={self.quota_name(i)}")

    def put(self, body: dict[str, Any]) -> None:
        key = (body["kind"], body["metadata"].get("namespace", ""), body["metadata"]["name"])
        self.operations["update" if key in self.live else "create"] += 1
        apply(self.cluster, body)
        self.live[key] = body
        self.deleted.discard(key)

    def delete(self, key: tuple[str, str, str]) -> None:
        kind, namespace, name = key
        scope = ["-n", namespace] if namespace else []
        self.cluster.kubectl("delete", *scope, _plural(kind), name, "--wait=false")
        self.operations["delete"] += 1
        del self.live[key]
        self.deleted.add(key)

    def next_preview(self, rng: random.Random) -> dict[str, Any]:
        """A new PreviewEnvironment. Names are never reused: a deleted one may still hold its finalizer, and an apply
        to an object being deleted would only update it before it goes."""
        self.pr_counter += 1
        return preview_environment(
            self.pe_namespace, f"p{self.pr_counter}", self.pr_counter, self.team, model=rng.random() < 0.3
        )

    def random_change(self, rng: random.Random, sizes: tuple[int, int]) -> None:
        """One create, update or delete of a random kind. *sizes*: (ModelDeployment names, at most live previews)."""
        kind = rng.choice(["ModelDeployment", "PreviewEnvironment", "NamespaceQuota"])
        live = sorted(k for k in self.live if k[0] == kind)
        roll = rng.random()
        if kind == "PreviewEnvironment":
            if live and roll < 0.3:
                self.delete(rng.choice(live))
            elif live and roll < 0.6:
                body = json.loads(json.dumps(self.live[rng.choice(live)]))
                body["spec"]["source"]["commit"] = f"{rng.getrandbits(28):07x}"
                self.put(body)
            elif len(live) < sizes[1]:
                self.put(self.next_preview(rng))
            return
        if kind == "ModelDeployment":
            key = (kind, self.md_namespace, f"m{rng.randrange(sizes[0])}")
        else:
            key = (kind, "", self.quota_name(rng.randrange(self.quota_groups)))
        if key in self.live and roll < 0.3:
            self.delete(key)
        elif key in self.deleted and get_object(self.cluster, *key) is not None:
            # Still held by the finalizer (the operator may be dead): an apply now would only update the object
            # on its way out. A name is reused once the old object is gone (its children must then follow the new
            # uid).
            self.operations["skipped"] += 1
        elif kind == "ModelDeployment":
            self.put(model_deployment(key[1], key[2], f"1.0.{rng.randrange(50)}", rng.choice([1, 2])))
        else:
            self.put(namespace_quota(key[2], pods=rng.randrange(5, 30)))

    # -- invariants ---------------------------------------------------------------------------------------------

    def _items(self, resource: str, selector: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.cluster.get(resource, "-A", "-l", selector)["items"]
        return items

    def _preview_namespaces(self) -> list[dict[str, Any]]:
        return [
            ns
            for ns in self._items("namespaces", PE_OWNER_UID)
            if ns["metadata"]["labels"].get(PE_OWNER_NS) == self.pe_namespace
        ]

    def violations(self) -> list[str]:
        """Everything wrong with the cluster against what this run asked for; [] once converged."""
        problems: list[str] = []
        current: dict[tuple[str, str, str], dict[str, Any]] = {}
        for kind in ("ModelDeployment", "PreviewEnvironment", "NamespaceQuota"):
            scope = ["-n", self.md_namespace if kind == "ModelDeployment" else self.pe_namespace]
            if kind == "NamespaceQuota":
                scope = []
            for obj in self.cluster.get(_plural(kind), *scope)["items"]:
                meta = obj["metadata"]
                if kind == "NamespaceQuota" and not meta["name"].startswith(f"{self.run}-"):
                    continue
                current[(kind, meta.get("namespace", ""), meta["name"])] = internal(obj)  # as this run wrote it
        for key in self.live:
            if key not in current:
                problems.append(f"missing: {key}")
            elif not ready_now(current[key]):
                problems.append(f"not Ready at its generation: {key} {condition(current[key], 'Ready')}")
        for key in self.deleted:
            if key in current:
                meta = current[key]["metadata"]
                problems.append(f"deleted but still there: {key} finalizers={meta.get('finalizers')}")
        problems += self._orphans_and_duplicates(current)
        return problems

    def _orphans_and_duplicates(self, current: dict[tuple[str, str, str], dict[str, Any]]) -> list[str]:
        problems: list[str] = []
        uids = {key: obj["metadata"]["uid"] for key, obj in current.items()}
        mine = set(self.namespaces())
        previews = self._preview_namespaces()
        preview_ns = {ns["metadata"]["name"] for ns in previews}

        # Preview namespaces: exactly one per live PreviewEnvironment, none without one.
        per_owner = Counter(ns["metadata"]["labels"][PE_OWNER_UID] for ns in previews)
        for ns in previews:
            labels = ns["metadata"]["labels"]
            owner = ("PreviewEnvironment", self.pe_namespace, labels[PE_OWNER])
            if uids.get(owner) != labels[PE_OWNER_UID] or owner not in self.live:
                problems.append(f"orphaned preview namespace {ns['metadata']['name']} (owner {owner} gone)")
        for uid, count in per_owner.items():
            if count > 1:
                problems.append(f"{count} preview namespaces for one PreviewEnvironment (uid {uid})")

        # ModelDeployment children (in the run's namespace and in preview namespaces): owner alive, same uid.
        for resource in MD_CHILDREN:
            seen: Counter[tuple[str, str, str]] = Counter()
            for child in self._items(resource, MD_OWNER):
                meta = child["metadata"]
                if meta["namespace"] not in mine | preview_ns:
                    continue
                owner = ("ModelDeployment", meta["namespace"], meta["labels"][MD_OWNER])
                refs = [r["uid"] for r in meta.get("ownerReferences") or []]
                in_preview = meta["namespace"] in preview_ns
                alive = uids.get(owner) if not in_preview else self._preview_model_uid(meta["namespace"], owner[2])
                if alive is None or refs != [alive]:
                    problems.append(f"orphaned {resource} {meta['namespace']}/{meta['name']} (owner {owner[1:]})")
                seen[(meta["namespace"], meta["name"], (meta.get("labels") or {}).get("plinth.dev/track", ""))] += 1
            problems += [f"duplicated {resource} {k}" for k, n in seen.items() if n > 1]

        # NamespaceQuota children: owner alive with the same uid, in a namespace it selects, one per namespace.
        groups = {
            ns["metadata"]["name"]: ns["metadata"]["labels"].get(QUOTA_GROUP_LABEL)
            for ns in self.cluster.get("namespaces", "-l", f"{RUN_LABEL}={self.run}")["items"]
        }
        for resource in NSQ_CHILDREN:
            per_namespace: Counter[str] = Counter()
            for child in self._items(resource, NSQ_OWNER):
                meta = child["metadata"]
                owner_name = meta["labels"][NSQ_OWNER]
                if not owner_name.startswith(f"{self.run}-"):
                    continue
                owner = ("NamespaceQuota", "", owner_name)
                refs = [r["uid"] for r in meta.get("ownerReferences") or []]
                selects = (current.get(owner) or {}).get("spec", {}).get("namespaceSelector", {}).get("matchLabels")
                in_scope = groups.get(meta["namespace"]) == (selects or {}).get(QUOTA_GROUP_LABEL)
                if uids.get(owner) is None or refs != [uids[owner]] or not in_scope:
                    problems.append(f"orphaned {resource} {meta['namespace']}/{meta['name']} (owner {owner_name})")
                per_namespace[meta["namespace"]] += 1
            problems += [f"{n} {resource} in {ns}" for ns, n in per_namespace.items() if n > 1]

        # Running pods match the replicas asked for: no duplicated ReplicaSets or Deployments serving.
        for key, body in self.live.items():
            if key[0] == "ModelDeployment":
                pods = self._running_pods(key[1], f"{MD_OWNER}={key[2]}")
                if pods != body["spec"]["replicas"]:
                    problems.append(f"{key[2]}: {pods} running pods, {body['spec']['replicas']} asked for")
        return problems

    def _preview_model_uid(self, namespace: str, name: str) -> str | None:
        obj = get_object(self.cluster, "ModelDeployment", namespace, name)
        return None if obj is None else str(obj["metadata"]["uid"])

    def _running_pods(self, namespace: str, selector: str) -> int:
        pods = self.cluster.get("pods", "-n", namespace, "-l", selector)["items"]
        return sum(1 for p in pods if not p["metadata"].get("deletionTimestamp"))

    def converge(self, timeout: float) -> float:
        """Wait until no invariant is violated; returns how long it took (fails with the violations otherwise)."""
        started = time.monotonic()
        last: list[str] = []

        def clean() -> bool:
            nonlocal last
            last = self.violations()
            return not last

        try:
            wait_for(clean, timeout=timeout, interval=1.0, what="convergence")
        except AssertionError:
            raise AssertionError(f"not converged after {timeout:.0f}s: {last[:20]}") from None
        return time.monotonic() - started

    def teardown(self) -> None:
        """Delete everything of this run and wait for it, while the operator still runs: every kind holds the
        operator's finalizer, so nothing may be left for a stopped operator to release."""
        for kind, namespace in (("previewenvironments", self.pe_namespace), ("modeldeployments", self.md_namespace)):
            self.cluster.kubectl("delete", kind, "--all", "-n", namespace, "--timeout=120s", check=False)
        for key in [k for k in self.live if k[0] == "NamespaceQuota"]:
            self.cluster.kubectl("delete", "namespacequota", key[2], "--ignore-not-found", "--timeout=60s", check=False)
        for ns in self.namespaces() + self.extra_namespaces:
            self.cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


# -- scenario: the operator SIGKILLed during a burst ---------------------------------------------------------------


@dataclass
class KillReport:
    kills: int
    operations: dict[str, int]
    objects_left: dict[str, int]
    objects_deleted: int
    seconds_of_burst: float
    seconds_to_converge: float


def kill_burst(
    cluster: Cluster,
    log: Path,
    *,
    kills: int,
    seed: int,
    model_names: int = 6,
    previews: int = 4,
    quota_groups: int = 3,
    converge_timeout: float = 240,
    keep: bool = False,
) -> KillReport:
    """Start an operator, then *kills* times: let it run 0.5-4 s (so kills land mid-reconcile) and SIGKILL it, while
    creates/updates/deletes of all three kinds go on. Then start it once more and wait for the invariants.
    The caller makes sure no other operator watches *cluster*."""
    import threading

    rng = random.Random(seed)
    work = Workload(cluster, f"k{uuid.uuid4().hex[:6]}", quota_groups=quota_groups)
    work.setup()
    op = Operator(cluster, log)
    done = threading.Event()
    failure: list[BaseException] = []

    def changes() -> None:
        try:
            while not done.is_set():
                work.random_change(rng, (model_names, previews))
                time.sleep(rng.uniform(0.0, 0.5))  # a burst, not a flood: kubectl itself is the pacing
        except BaseException as err:  # re-raised in the test's thread
            failure.append(err)

    started = time.monotonic()
    writer = threading.Thread(target=changes, name="burst")
    writer.start()
    try:
        for _ in range(kills):
            time.sleep(rng.uniform(0.5, 4.0))  # the fault's timing: how long the operator gets before it dies
            op.proc.kill()
            op.proc.wait()
            op.start()
    finally:
        done.set()
        writer.join()
    if failure:
        raise failure[0]
    burst = time.monotonic() - started
    try:
        converged = work.converge(converge_timeout)
        left = Counter(k[0] for k in work.live)
        return KillReport(
            kills=kills,
            operations=dict(work.operations),
            objects_left=dict(left),
            objects_deleted=len(work.deleted),
            seconds_of_burst=round(burst, 1),
            seconds_to_converge=round(converged, 1),
        )
    finally:
        try:
            if not keep:
                work.teardown()
        finally:
            op.stop()


# -- scenario: API server and etcd stopped under a running operator ----------------------------------------------


@dataclass
class PrivateCluster:
    """A control plane of its own, so an outage drill cannot disturb other tests."""

    name: str
    directory: Path
    cluster: Cluster

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.directory / "state.json").read_text())
        return data

    def stop_api(self) -> None:
        """SIGUSR1 to the supervisor: kube-apiserver, then etcd, stop (hack/localkube/up.go)."""
        os.kill(self.state()["pid"], signal.SIGUSR1)
        wait_for(lambda: self.state().get("api") == "stopped", timeout=30, what="API stopped")

    def start_api(self) -> None:
        """SIGUSR2: etcd and kube-apiserver start again with the same data, port and certificates."""
        os.kill(self.state()["pid"], signal.SIGUSR2)
        wait_for(lambda: self.state().get("api") == "running", timeout=120, what="API running again")


@contextlib.contextmanager
def private_cluster(directory: Path) -> Iterator[PrivateCluster]:
    name = f"faults-{uuid.uuid4().hex[:6]}"
    running = devcluster.up(name, directory=directory)
    try:
        private = PrivateCluster(name, directory, Cluster(running.kubeconfig))
        with plinth_api(private.cluster, directory / "webhook.log"):
            yield private
    finally:
        devcluster.down(name, directory=directory, keep=True)  # keep the logs


@dataclass
class OutageReport:
    outage_seconds: float
    operator_restarted: bool
    seconds_to_converge: float | None  # None: not within 60 s (see not_converged)
    not_converged: list[str]
    repairs: dict[str, float]


def timed(action: Callable[[], Any], check: Callable[[], Any], what: str, timeout: float = 20) -> float:
    """Run *action*, wait for *check*; seconds it took. The 20 s default is below every periodic trigger of the
    operator (preview tick 30 s, resync 300 s), so passing means a watch event did the work."""
    started = time.monotonic()
    action()
    wait_for(check, timeout=timeout, what=what)
    return round(time.monotonic() - started, 1)


def prove_watches(work: Workload, rng: random.Random) -> dict[str, float]:
    """After a disturbance: every watch the operator depends on still delivers events. Returns seconds per repair."""
    cluster = work.cluster
    md, ns = "m0", work.md_namespace
    quota_ns = work.quota_name(0)
    preview = next(k for k in work.live if k[0] == "PreviewEnvironment")
    target = (get_object(cluster, *preview) or {})["status"]["namespace"]
    times: dict[str, float] = {}

    def exists(*args: str) -> Callable[[], bool]:
        return lambda: cluster.kubectl("get", *args, check=False).returncode == 0

    def hard_pods() -> str:
        return str(cluster.get("-n", quota_ns, "resourcequota", "plinth-quota")["spec"]["hard"].get("pods"))

    times["Deployment of a ModelDeployment deleted -> recreated"] = timed(
        lambda: cluster.kubectl("-n", ns, "delete", "deployment", md, "--wait=false"),
        lambda: (
            (d := cluster.get("-n", ns, "deployments", "-l", f"{MD_OWNER}={md}")["items"])
            and not d[0]["metadata"].get("deletionTimestamp")
        ),
        "ModelDeployment's Deployment recreated",
    )
    times["Deployment of a preview service deleted -> recreated"] = timed(
        lambda: cluster.kubectl("-n", target, "delete", "deployment", "web", "--wait=false"),
        lambda: (
            (d := cluster.get("-n", target, "deployments", "-l", f"{PE_OWNER}={preview[2]}")["items"])
            and not d[0]["metadata"].get("deletionTimestamp")
        ),
        "preview Deployment recreated",
    )
    want, edit = hard_pods(), json.dumps({"spec": {"hard": {"pods": "999"}}})
    times["ResourceQuota hard edited -> restored"] = timed(
        lambda: cluster.kubectl("-n", quota_ns, "patch", "resourcequota", "plinth-quota", "-p", edit),
        lambda: hard_pods() == want,
        "ResourceQuota restored",
    )
    extra = f"{work.run}-late"
    times["namespace labelled -> quota applied"] = timed(
        lambda: (
            cluster.kubectl("create", "namespace", extra),
            cluster.kubectl("label", "namespace", extra, f"{RUN_LABEL}={work.run}", f"{QUOTA_GROUP_LABEL}={quota_ns}"),
        ),
        exists("-n", extra, "resourcequota", "plinth-quota"),
        "quota in a namespace labelled after the disturbance",
    )
    work.extra_namespaces.append(extra)
    late_md = model_deployment(ns, "m-late")
    times["new ModelDeployment -> Ready"] = timed(
        lambda: work.put(late_md),
        lambda: ready_now(get_object(cluster, "ModelDeployment", ns, "m-late")),
        "a ModelDeployment created after the disturbance Ready",
        timeout=60,
    )
    late_pe = work.next_preview(rng)
    times["new PreviewEnvironment -> Ready"] = timed(
        lambda: work.put(late_pe),
        lambda: ready_now(get_object(cluster, "PreviewEnvironment", work.pe_namespace, late_pe["metadata"]["name"])),
        "a PreviewEnvironment created after the disturbance Ready",
        timeout=60,
    )
    late_q = namespace_quota(work.quota_name(1))
    times["new NamespaceQuota -> Ready"] = timed(
        lambda: work.put(late_q),
        lambda: ready_now(get_object(cluster, "NamespaceQuota", "", late_q["metadata"]["name"])),
        "a NamespaceQuota created after the disturbance Ready",
        timeout=60,
    )
    return times


def api_outage(private: PrivateCluster, log: Path, *, outage: float, seed: int = 1) -> OutageReport:
    """Converge a small workload, change all three kinds and stop the API at once (mid-reconcile), keep it down for
    *outage* seconds, start it again: the same operator process converges within 60 s and its watches all work."""
    rng = random.Random(seed)
    cluster = private.cluster
    work = Workload(cluster, f"o{uuid.uuid4().hex[:6]}", quota_groups=2)
    work.setup()
    for i in range(3):
        work.put(model_deployment(work.md_namespace, f"m{i}"))
    work.put(work.next_preview(rng))
    work.put(namespace_quota(work.quota_name(0)))
    op = Operator(cluster, log)
    try:
        work.converge(180)
        pid = op.proc.pid
        # Changes the operator is busy with when the API goes away.
        work.put(model_deployment(work.md_namespace, "m0", "2.0.0", replicas=2))
        work.put(namespace_quota(work.quota_name(0), pods=12))
        preview = json.loads(json.dumps(next(v for k, v in work.live.items() if k[0] == "PreviewEnvironment")))
        preview["spec"]["source"]["commit"] = "bbbbbbb"
        work.put(preview)
        private.stop_api()
        time.sleep(outage)  # the fault: the API stays away this long
        alive_during = op.proc.poll() is None
        private.start_api()
        converged: float | None = None
        stale: list[str] = []
        try:
            converged = round(work.converge(60), 1)
        except AssertionError as err:
            stale = [str(err)]
        assert alive_during and op.proc.poll() is None and op.proc.pid == pid, "the operator did not survive"
        assert op.healthz() == 200
        # Watches are proven even when convergence failed, so the report tells a stale object from a dead watch.
        repairs = prove_watches(work, rng)
        report = OutageReport(
            outage_seconds=outage,
            operator_restarted=False,
            seconds_to_converge=converged,
            not_converged=stale,
            repairs=repairs,
        )
        assert not stale, f"not converged within 60 s of the API's return: {report}"
        return report
    finally:
        op.stop()


# -- scenario: writes refused by admission ------------------------------------------------------------------------


def refusal_policy(name: str, namespace: str, how: str) -> list[dict[str, Any]]:
    """Admission objects that refuse every write of a ModelDeployment's Deployment in *namespace*: a
    ValidatingAdmissionPolicy (the API answers 422) or a webhook nobody serves with failurePolicy Fail (500)."""
    match_ns = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    match_obj = {"matchExpressions": [{"key": MD_OWNER, "operator": "Exists"}]}
    rules = {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"]}
    if how == "policy":
        return [
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicy",
                "metadata": {"name": name},
                "spec": {
                    "failurePolicy": "Fail",
                    "matchConstraints": {
                        "resourceRules": [{**rules, "resources": ["deployments"]}],
                        "namespaceSelector": match_ns,
                        "objectSelector": match_obj,
                    },
                    "validations": [{"expression": "false", "message": "model Deployments are frozen here"}],
                },
            },
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicyBinding",
                "metadata": {"name": name},
                "spec": {"policyName": name, "validationActions": ["Deny"]},
            },
        ]
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [
                {
                    "name": "refuse.faults.plinth.dev",
                    "clientConfig": {"url": "https://127.0.0.1:9/refuse"},  # nothing listens: the call fails
                    "rules": [{**rules, "resources": ["deployments"]}],
                    "namespaceSelector": match_ns,
                    "objectSelector": match_obj,
                    "failurePolicy": "Fail",
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                    "timeoutSeconds": 2,
                }
            ],
        }
    ]


@dataclass
class RefusalReport:
    how: str
    window_seconds: float
    failed_requests: float
    all_requests: float
    reconciles: float
    condition: dict[str, str]
    seconds_to_recover: float


def refused_writes(cluster: Cluster, op: Operator, namespace: str, *, how: str, window: float) -> RefusalReport:
    """A ModelDeployment whose Deployment the API refuses: a condition with a reason, a bounded retry rate (counted
    from the operator's own plinth_adapter_requests_total over *window* seconds), and recovery once writes pass."""
    name = f"refuse-{uuid.uuid4().hex[:6]}"
    policy = refusal_policy(name, namespace, how)
    for obj in policy:
        apply(cluster, obj, manager="faults")
    probe = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "probe", "namespace": namespace, "labels": {MD_OWNER: "probe"}},
        "spec": {
            "selector": {"matchLabels": {"app": "probe"}},
            "template": {
                "metadata": {"labels": {"app": "probe"}},
                "spec": {"containers": [{"name": "c", "image": "registry.example/probe:1"}]},
            },
        },
    }
    # Admission configuration takes effect a moment after it is created: wait until a dry run is refused.
    wait_for(
        lambda: (
            cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(probe), check=False).returncode
            != 0
        ),
        timeout=30,
        what=f"the {how} to refuse Deployments",
    )
    try:
        apply(cluster, model_deployment(namespace, name))

        def failing() -> Any:
            obj = get_object(cluster, "ModelDeployment", namespace, name)
            ready = condition(obj, "Ready")
            current = obj is not None and ready.get("observedGeneration") == obj["metadata"]["generation"]
            blocking = condition(obj, "Stalled") or condition(obj, "Reconciling")
            return current and ready.get("status") == "False" and blocking

        try:
            cond = wait_for(failing, timeout=60, what="a condition saying why the ModelDeployment cannot progress")
        except AssertionError as err:
            obj = get_object(cluster, "ModelDeployment", namespace, name) or {}
            raise AssertionError(f"{err}; status: {obj.get('status')}") from None
        before = op.metrics()
        time.sleep(window)  # the measurement window
        after = op.metrics()
        assert cluster.kubectl("-n", namespace, "get", "deployment", name, check=False).returncode != 0
    finally:
        for obj in reversed(policy):
            cluster.kubectl("delete", obj["kind"], obj["metadata"]["name"], "--ignore-not-found", check=False)
    started = time.monotonic()
    wait_for(
        lambda: ready_now(get_object(cluster, "ModelDeployment", namespace, name)),
        timeout=120,
        what="Ready once writes are accepted again",
    )

    def delta(metric: str, **labels: str) -> float:
        return metric_sum(after, metric, **labels) - metric_sum(before, metric, **labels)

    return RefusalReport(
        how=how,
        window_seconds=window,
        failed_requests=delta("plinth_adapter_requests_total", result="error"),
        all_requests=delta("plinth_adapter_requests_total"),
        reconciles=delta("plinth_reconcile_total", kind="ModelDeployment"),
        condition={k: str(cond.get(k)) for k in ("type", "reason", "message")},
        seconds_to_recover=round(time.monotonic() - started, 1),
    )


# -- the tests (CI-sized) -------------------------------------------------------------------------------------------


@pytest.fixture
def solo(operator: Operator) -> Iterator[None]:
    """The session operator stops for the test and starts again afterwards: one operator per cluster at a time."""
    assert operator.stop() == 0
    try:
        yield
    finally:
        operator.start()


def test_operator_sigkilled_during_a_burst_converges(cluster: Cluster, solo: None, tmp_path: Path) -> None:
    """5 SIGKILLs while all three kinds are created, updated and deleted: then 0 orphans, 0 duplicates, every
    remaining object Ready at its generation, every deleted one gone (the chaos run does 20+)."""
    report = kill_burst(cluster, tmp_path / "operator.log", kills=5, seed=8, model_names=4, previews=3)
    print(report)
    assert report.operations.get("delete", 0) >= 1 and report.operations.get("update", 0) >= 1, report


def test_api_server_and_etcd_restart_under_a_running_operator(tmp_path: Path) -> None:
    """API server and etcd stopped for 15 s right after changes (the chaos run: 60 s): the same operator process
    converges within 60 s of the API's return, and every watch still delivers (drift repaired, new objects
    reconciled). A private control plane, so the drill cannot disturb other tests."""
    with private_cluster(tmp_path / "cluster") as private:
        report = api_outage(private, tmp_path / "operator.log", outage=15)
    print(report)
    assert not report.operator_restarted


def test_drift_is_repaired_from_watches_and_user_metadata_is_kept(cluster: Cluster, operator: Operator) -> None:
    """Children deleted or edited by hand come back within seconds, from watch events; labels and annotations a user
    put on the objects (and on a child) survive every reconcile."""
    rng = random.Random(3)
    work = Workload(cluster, f"d{uuid.uuid4().hex[:6]}", quota_groups=2)
    work.setup()
    try:
        work.put(model_deployment(work.md_namespace, "m0", replicas=2))
        work.put(work.next_preview(rng))
        work.put(namespace_quota(work.quota_name(0)))
        work.converge(120)
        labelled = list(work.live)
        for kind, ns, name in labelled:
            scope = ["-n", ns] if ns else []
            cluster.kubectl("label", *scope, _plural(kind), name, "team.example.com/owner=alice")
            cluster.kubectl("annotate", *scope, _plural(kind), name, "example.com/ticket=OPS-1")

        repairs = prove_watches(work, rng)
        print(repairs)
        md_ns = work.md_namespace
        # A hand-edited replica count goes back to the spec's; a label another tool put on the child stays.
        wait_for(lambda: cluster.get("-n", md_ns, "deployment", "m0")["spec"]["replicas"] == 2, what="settled")
        cluster.kubectl("-n", md_ns, "label", "deployment", "m0", "example.com/scanned=yes")
        timed(
            lambda: cluster.kubectl("-n", md_ns, "scale", "deployment", "m0", "--replicas=5"),
            lambda: cluster.get("-n", md_ns, "deployment", "m0")["spec"]["replicas"] == 2,
            "replicas restored",
        )
        # Spec changes reconcile the same objects again: the user's metadata survives all of it.
        work.put(model_deployment(md_ns, "m0", "1.1.0", replicas=2))
        work.put(namespace_quota(work.quota_name(0), pods=15))
        preview = json.loads(json.dumps(work.live[labelled[1]]))
        preview["spec"]["source"]["commit"] = "ccccccc"
        work.put(preview)
        work.converge(120)
        for kind, ns, name in labelled:
            meta = (get_object(cluster, kind, ns, name) or {})["metadata"]
            assert meta["labels"].get("team.example.com/owner") == "alice", (kind, name, meta["labels"])
            assert meta["annotations"].get("example.com/ticket") == "OPS-1", (kind, name, meta["annotations"])
        child = cluster.get("-n", md_ns, "deployment", "m0")["metadata"]["labels"]
        assert child.get("example.com/scanned") == "yes"
    finally:
        work.teardown()


def test_deletion_while_the_operator_is_down_needs_no_operator(cluster: Cluster, operator: Operator) -> None:
    """ModelDeployment and NamespaceQuota hold no finalizer (their children are owned). Deleted while the operator is
    down they go at once and the garbage collector removes their children; when the operator returns nothing is
    resurrected, a change made meanwhile is applied, and a quota that lost a namespace to the deleted one takes it
    over. (A PreviewEnvironment keeps its finalizer: it deletes a namespace it does not own.)"""
    work = Workload(cluster, f"x{uuid.uuid4().hex[:6]}", quota_groups=1)
    work.setup()
    ns, quota_ns = work.md_namespace, work.quota_name(0)
    newer = f"{work.run}-q0-newer"
    gone = [("ModelDeployment", ns, "m0"), ("NamespaceQuota", "", quota_ns)]
    try:
        work.put(model_deployment(ns, "m0"))
        work.put(model_deployment(ns, "m1"))
        work.put(namespace_quota(quota_ns))
        work.converge(120)
        for key in gone:
            obj = get_object(cluster, *key)
            assert obj is not None and not obj["metadata"].get("finalizers"), key
        apply(cluster, namespace_quota(newer, pods=7, group=quota_ns))
        wait_for(
            lambda: condition(get_object(cluster, "NamespaceQuota", "", newer), "Conflict").get("status") == "True",
            what="the newer quota in Conflict",
        )
        work.live[("NamespaceQuota", "", newer)] = namespace_quota(newer, pods=7, group=quota_ns)

        assert operator.stop() == 0
        try:
            for key in gone:
                work.delete(key)
            work.put(model_deployment(ns, "m1", "3.0.0"))
            wait_for(
                lambda: all(get_object(cluster, *key) is None for key in gone),
                timeout=60,
                what="deletions complete without the operator",
            )
            wait_for(
                lambda: not cluster.get("-n", ns, "deployments", "-l", f"{MD_OWNER}=m0")["items"],
                timeout=60,
                what="m0's Deployment garbage-collected",
            )
        finally:
            operator.start()
        work.converge(120)  # includes: no orphaned children of m0 or the deleted quota
        rq = cluster.get("-n", quota_ns, "resourcequota", "plinth-quota")
        assert rq["metadata"]["labels"][NSQ_OWNER] == newer
        assert rq["spec"]["hard"]["pods"] == "7"
    finally:
        cluster.kubectl("delete", "namespacequota", newer, "--ignore-not-found", "--timeout=60s", check=False)
        work.teardown()


@pytest.mark.parametrize("how", ["policy", "webhook"])
def test_refused_writes_end_in_a_condition_with_bounded_retries(
    cluster: Cluster, operator: Operator, namespace: str, how: str
) -> None:
    """The API refuses the Deployment (a ValidatingAdmissionPolicy: 422; a webhook nobody serves: 500): the object
    says why, the operator retries at a bounded rate rather than in a hot loop, and recovers when writes pass."""
    window = 30.0
    report = refused_writes(cluster, operator, namespace, how=how, window=window)
    print(report)
    assert report.condition["reason"], report
    assert report.failed_requests >= 1, f"no retry at all within {window:.0f}s: {report}"
    # One failed write every 5 s at most (the operator retries after 15 s); a hot loop makes hundreds.
    assert report.failed_requests <= window / 5, report
