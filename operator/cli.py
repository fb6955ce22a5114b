"""The ``plinth`` command: run the operator, manage the local control plane, generate CRDs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from plinth.operator import devcluster, devnode
from plinth.operator.previewcli import preview

REPO_ROOT = Path(__file__).resolve().parent.parent


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="plinth")
def main() -> None:
    """Plinth: a declarative platform API (ModelDeployment, PreviewEnvironment, NamespaceQuota) for Kubernetes."""


main.add_command(preview)


@main.command()
@click.option("-n", "--namespace", "namespaces", multiple=True, help="Watch only this namespace (repeatable).")
@click.option("-A", "--all-namespaces", is_flag=True, help="Watch every namespace (the default).")
@click.option("--metrics-port", type=int, default=8080, show_default=True, help="Port of /metrics and /healthz.")
@click.option(
    "--standalone/--no-standalone",
    default=True,
    show_default=True,
    envvar="PLINTH_STANDALONE",
    help="Run without peering (one replica). --no-standalone (or PLINTH_STANDALONE=false): replicas peer through "
    "the ClusterKopfPeering PLINTH_PEERING_NAME and only the oldest live one works (docs/operator.md).",
)
def run(namespaces: tuple[str, ...], all_namespaces: bool, metrics_port: int, standalone: bool) -> None:
    """Run the operator against the cluster of the current kubeconfig (or in-cluster credentials)."""
    if namespaces and all_namespaces:
        raise click.UsageError("--namespace and --all-namespaces exclude each other")
    from plinth.operator.runtime import run_operator

    sys.exit(run_operator(namespaces=list(namespaces), metrics_port=metrics_port, standalone=standalone))


@main.command("migrate-storage")
def migrate_storage() -> None:
    """Rewrite every stored Plinth object once at the storage version (plinth.dev/v1beta1) and trim each CRD's
    status.storedVersions to it (docs/api-versions.md). Safe to run again, and while the operator runs."""
    from plinth.adapters.kubernetes import load_config
    from plinth.operator import migrate

    try:
        for result in migrate.migrate_storage(load_config()):
            click.echo(result.describe())
    except Exception as err:  # the API server's refusal, in its words
        raise click.ClickException(f"storage migration failed: {err}") from err


@main.command()
@click.option("--metrics-port", type=int, default=0, help="Port of /metrics and /healthz (0: not served).")
def webhook(metrics_port: int) -> None:
    """Serve only the conversion webhook (PLINTH_WEBHOOK_* settings, as `plinth run` does), and write its CA into
    the Plinth CRDs: for a cluster whose operator runs elsewhere or is stopped, as the tests run it."""
    import signal
    import threading

    from plinth.adapters.kubernetes import load_config
    from plinth.operator import logging as plinth_logging
    from plinth.operator import metrics as plinth_metrics
    from plinth.operator.runtime import start_conversion_webhook
    from plinth.operator.settings import Settings

    settings = Settings.from_env()
    plinth_logging.configure(settings.log_level)
    metrics = plinth_metrics.Metrics()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        start_conversion_webhook(load_config(), settings, metrics)
    except Exception as err:  # no certificate, the port taken, the CRDs not writable: said once, exit 2
        raise click.ClickException(f"cannot serve conversions: {err}") from err
    if metrics_port:
        ready = threading.Event()
        ready.set()
        plinth_metrics.serve(metrics, ready, metrics_port)
    stop.wait()


@main.command()
@click.option("--check", is_flag=True, help="Only report generated files that are out of date (exit 1 if any).")
@click.option("--crds-dir", type=click.Path(path_type=Path), default=REPO_ROOT / "crds", show_default=True)
@click.option(
    "--reference", type=click.Path(path_type=Path), default=REPO_ROOT / "docs" / "reference.md", show_default=True
)
def crds(check: bool, crds_dir: Path, reference: Path) -> None:
    """Generate crds/*.yaml and docs/reference.md from the pydantic models."""
    from plinth.operator.api import crdgen

    args = ["--crds-dir", str(crds_dir), "--reference", str(reference)]
    sys.exit(crdgen.main([*args, "--check"] if check else args))


@main.command()
@click.argument("target", required=False, metavar="[KIND/NAME]")
@click.option("-n", "--namespace", default="default", show_default=True, help="Namespace of the object.")
@click.option("-A", "--all-namespaces", is_flag=True, help="Without KIND/NAME: look in every namespace.")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def explain(target: str | None, namespace: str, all_namespaces: bool, output: str) -> None:
    """Why a Plinth object is (not) Ready: the object, its children and their Pods as a tree, the blocker marked,
    with what to do. KIND is md, pe or nsq. Without KIND/NAME: every Plinth object that is not Ready."""
    from plinth.operator import explain as explaining
    from plinth.operator.previewcli import api_error, kube_client

    try:
        kube = kube_client()
        if target is None:
            trees = explaining.not_ready(kube, None if all_namespaces else namespace)
        else:
            kind, name = explaining.parse_target(target)
            trees = [explaining.gather(kube, kind, name, namespace)]
    except (ValueError, LookupError) as err:
        raise click.ClickException(str(err)) from err
    except Exception as err:  # the API server's refusal (403, 404 of the CRD, ...) in its own words
        raise click.ClickException(api_error(err)) from err
    if output == "json":
        click.echo(json.dumps([explaining.as_json(tree) for tree in trees], indent=2))
        return
    if not trees:
        click.echo("every Plinth object is Ready")
    click.echo("\n".join(explaining.render(tree) for tree in trees), nl=False)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, dir_okay=True, path_type=Path))
@click.option(
    "--to",
    "api_version",
    type=click.Choice(["v1beta1", "v1alpha1"]),
    default="v1beta1",
    show_default=True,
    help="The API version to write.",
)
@click.option("-w", "--write", is_flag=True, help="Rewrite the files in place instead of printing them.")
@click.option("--check", is_flag=True, help="Change nothing; exit 1 if any object is not at --to yet (for CI).")
def convert(paths: tuple[Path, ...], api_version: str, write: bool, check: bool) -> None:
    """Rewrite the Plinth objects in YAML manifests (files, or every *.yaml/*.yml under a directory; stdin without
    PATHS) to another API version, offline and exactly, keeping comments and everything that is not Plinth's."""
    from plinth.operator.convertfiles import convert_text

    target = f"plinth.dev/{api_version}"
    files = [f for p in paths for f in (sorted([*p.rglob("*.yaml"), *p.rglob("*.yml")]) if p.is_dir() else [p])]
    sources = [(f, f.read_text()) for f in files] if paths else [(None, sys.stdin.read())]
    pending = 0
    for path, text in sources:
        try:
            result = convert_text(text, target)
        except Exception as err:  # not YAML, or an object neither version can hold
            raise click.ClickException(f"{path or 'stdin'}: {err}") from err
        pending += result.objects
        if check:
            if result.objects:
                click.echo(f"{path or 'stdin'}: {result.objects} object(s) not at {target}", err=True)
        elif write and path is not None:
            if result.objects:
                path.write_text(result.text)
                click.echo(f"{path}: {result.objects} object(s) converted to {target}", err=True)
        else:
            click.echo(result.text, nl=False)
    if check and pending:
        sys.exit(1)


@main.group()
def cluster() -> None:
    """The local, Docker-free control plane (etcd, kube-apiserver, controller-manager, scheduler) with simulated or
    real nodes."""


_name = click.option("--name", default="dev", show_default=True, help="Cluster name; several can run side by side.")
_dir = click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=None,
    help="Directory for the cluster's state (default ~/.cache/plinth/clusters/NAME).",
)


@cluster.command("up")
@_name
@_dir
@click.option(
    "--nodes",
    default="simulated",
    show_default=True,
    metavar="real|simulated|N",
    help="`real`: one real node (kubelet, containerd, runc; Pods run, an ingress answers on 127.0.0.1). "
    "`simulated` or a number N: N simulated nodes (default 1; Pods are marked Running, for scale).",
)
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Wait until /readyz answers and every node is Ready (the only mode: kept for scripts).",
)
@click.option("--timeout", default=devcluster.BOOT_TIMEOUT, show_default=True, help="Seconds to wait for readiness.")
def cluster_up(name: str, directory: Path | None, nodes: str, wait: bool, timeout: float) -> None:
    """Build (once, cached) and start a local cluster; prints its kubeconfig path."""
    del wait  # startup always waits: state.json only appears once the cluster is usable
    if nodes not in ("real", "simulated") and not (nodes.isdigit() and int(nodes) > 0):
        raise click.BadParameter(
            f"{nodes!r}: want `real`, `simulated` or a number of simulated nodes", param_hint="--nodes"
        )
    try:
        if nodes == "real":
            running = devnode.up(name, directory=directory, timeout=timeout)
        else:
            count = 1 if nodes == "simulated" else int(nodes)
            running = devcluster.up(name, directory=directory, nodes=count, timeout=timeout)
    except devcluster.ClusterError as err:
        raise click.ClickException(str(err)) from err
    click.echo(
        f"cluster {name!r} ready: {running.server} ({running.version}, nodes: {', '.join(running.nodes)})", err=True
    )
    click.echo(f"export KUBECONFIG={running.kubeconfig}", err=True)
    if running.real:
        click.echo(f"ingress: {running.ingress}  (curl -H 'Host: <host>' {running.ingress}/)", err=True)
    click.echo(str(running.kubeconfig))


@cluster.command("down")
@_name
@_dir
@click.option("--keep", is_flag=True, help="Keep the cluster's directory (logs) after stopping it.")
def cluster_down(name: str, directory: Path | None, keep: bool) -> None:
    """Stop a local cluster and remove its state."""
    stopped = devcluster.down(name, directory=directory, keep=keep)
    click.echo(f"cluster {name!r} {'stopped' if stopped else 'was not running'}", err=True)


@cluster.command("env")
@_name
@_dir
def cluster_env(name: str, directory: Path | None) -> None:
    """Print shell exports for a running cluster: eval "$(plinth cluster env)"."""
    running = devcluster.status(name, directory)
    if running is None:
        raise click.ClickException(f"cluster {name!r} is not running: start it with `plinth cluster up --name {name}`")
    for key, value in running.env().items():
        click.echo(f"export {key}={value}")


@cluster.command("model-store")
@_name
@_dir
@click.option("--namespace", "-n", required=True, help="Namespace to run the store in (created if missing).")
@click.option(
    "--reader",
    "readers",
    multiple=True,
    metavar="NAMESPACE",
    help="Also write the store's Secret into this namespace (created if missing) for its readers; repeatable.",
)
def cluster_model_store(name: str, directory: Path | None, namespace: str, readers: tuple[str, ...]) -> None:
    """Run an S3 model store with the sample models (iris 1.0.0 and 1.1.0) in NAMESPACE of a real-node cluster, and
    print the name of the Secret that spec.storage.secretRef names to read them."""
    from plinth.operator import devmodels  # trains the models: scikit-learn is imported only here

    running = devcluster.status(name, directory)
    if running is None or not running.real:
        raise click.ClickException(f"no real-node cluster {name!r}: start one with `plinth cluster up --nodes real`")
    try:
        for each in (namespace, *readers):
            manifest = devnode.kubectl(running, "create", "namespace", each, "--dry-run=client", "-o", "yaml")
            devnode.kubectl(running, "apply", "-f", "-", input=manifest)
        secret = devnode.model_store(running, namespace, devmodels.samples(), readers=readers)
    except devcluster.ClusterError as err:
        raise click.ClickException(str(err)) from err
    click.echo(
        f"model store: http://{devnode.MODEL_STORE}.{namespace}.svc.cluster.local, bucket {devmodels.SAMPLES_BUCKET}",
        err=True,
    )
    click.echo(secret)


@cluster.command("build")
@click.option(
    "--real-node",
    is_flag=True,
    help="Also build the real node's parts and images (containerd, CoreDNS, Traefik, the model server and store).",
)
def cluster_build(real_node: bool) -> None:
    """Build (or find in the cache) the control-plane binary and print its path."""
    try:
        click.echo(str(devcluster.ensure_binary()))
        if real_node:
            devnode.ensure_parts(check=False)  # building needs no root; running the node does
            devnode.versitygw()  # the model store's server, built now so no test's timeout pays for it
    except devcluster.ClusterError as err:
        raise click.ClickException(str(err)) from err
