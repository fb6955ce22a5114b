"""``plinth preview``: what a CI job runs for a pull request. ``up`` server-side-applies a PreviewEnvironment built from
flags and (with ``--wait``) follows it until Ready, printing progress and the URL; ``down`` deletes it; ``list`` shows
them. Exit codes: 0 ready/done, 1 the preview is blocked (Stalled, QuotaExceeded: the reason is printed), 2 timeout,
3 the API refused the manifest (the field-level message is printed)."""

from __future__ import annotations

import json
import re
import sys
import time
from typing import Any

import click
from plinth.operator.api.conversion import INTERNAL, convert
from plinth.operator.api.served import STORED_API_VERSION as API_VERSION

EXIT_BLOCKED, EXIT_TIMEOUT, EXIT_REFUSED = 1, 2, 3
FIELD_MANAGER = "plinth-preview"
KIND = "PreviewEnvironment"
_BLOCKING = ("Stalled", "QuotaExceeded")


def parse_service(text: str) -> dict[str, Any]:
    """``NAME=IMAGE[:PORT]``. A trailing ``:PORT`` counts only after a tag or digest (``web=img:v1:3000``), so that
    ``web=img:3000`` stays an image tagged 3000."""
    name, sep, image = text.partition("=")
    if not sep or not name or not image:
        raise click.BadParameter(f"{text!r}: expected NAME=IMAGE[:PORT], e.g. web=ghcr.io/acme/web:pr-1:8080")
    service: dict[str, Any] = {"name": name, "image": image}
    match = re.fullmatch(r"(?P<image>.+[:@][^/]+):(?P<port>\d{1,5})", image)
    if match:
        service.update(image=match["image"], port=int(match["port"]))
    return service


def default_name(repository: str, pull_request: int) -> str:
    """``<repository basename>-pr<N>``: one preview per pull request in a team namespace."""
    base = re.sub(r"[^a-z0-9-]", "-", repository.rstrip("/").rsplit("/", 1)[-1].lower()).strip("-") or "preview"
    suffix = f"-pr{pull_request}"
    return f"{base[: 40 - len(suffix)].rstrip('-')}{suffix}"


def build_manifest(
    *,
    name: str,
    namespace: str,
    repository: str,
    pull_request: int,
    commit: str | None,
    team: str,
    services: list[dict[str, Any]],
    ttl: str | None,
    sleep_after: str | None,
    domain: str | None,
    copy_secrets: list[str],
) -> dict[str, Any]:
    source: dict[str, Any] = {"repository": repository, "pullRequest": pull_request}
    if commit:
        source["commit"] = commit
    spec: dict[str, Any] = {"source": source, "team": team, "services": services}
    if ttl:
        spec["ttl"] = ttl
    if sleep_after:
        spec["sleepAfter"] = sleep_after
    if domain:
        spec["ingress"] = {"domain": domain}
    secrets = []
    for ref in copy_secrets:
        ns, sep, secret = ref.rpartition("/")
        secrets.append({"copyFrom": {"name": secret, **({"namespace": ns} if sep else {})}})
    if secrets:
        spec["secrets"] = secrets
    built = {"apiVersion": INTERNAL, "kind": KIND, "metadata": {"name": name, "namespace": namespace}, "spec": spec}
    return convert(built, API_VERSION)


def summary(obj: dict[str, Any]) -> dict[str, Any]:
    """What CI needs from a PreviewEnvironment: where it runs, whether it is Ready, and what blocks it."""
    status = obj.get("status") or {}
    conditions = {c["type"]: c for c in status.get("conditions") or []}
    ready = conditions.get("Ready") or {}
    current = status.get("observedGeneration") == obj["metadata"].get("generation")
    blocked = next((conditions[t] for t in _BLOCKING if (conditions.get(t) or {}).get("status") == "True"), None)
    return {
        "name": obj["metadata"]["name"],
        "namespace": obj["metadata"]["namespace"],
        "previewNamespace": status.get("namespace"),
        "url": status.get("url"),
        "ready": current and ready.get("status") == "True",
        "reason": ready.get("reason"),
        "message": ready.get("message"),
        "blocked": current and blocked is not None,
        "services": status.get("services") or [],
        "expiresAt": status.get("expiresAt"),
    }


def _progress_line(info: dict[str, Any]) -> str:
    services = ", ".join(f"{s['name']} {s.get('readyReplicas', 0)}/{s.get('replicas', 0)}" for s in info["services"])
    return f"{info['reason'] or 'Pending'}: {info['message'] or 'waiting for the operator'}" + (
        f" [{services}]" if services else ""
    )


def kube_client() -> Any:
    from plinth.adapters.calls import NoRecorder
    from plinth.adapters.kubernetes import DynamicKubernetes, load_config

    return DynamicKubernetes(load_config(), NoRecorder(), FIELD_MANAGER)


def api_error(err: Exception) -> str:
    body = getattr(err, "body", None)
    try:
        return str(json.loads(body)["message"]) if body else str(err)
    except (ValueError, KeyError, TypeError):
        return str(err)


@click.group()
def preview() -> None:
    """Preview environments for pull requests, from CI."""


@preview.command("up")
@click.option("--repo", "repository", required=True, help="Repository, e.g. github.com/acme/shop.")
@click.option("--pr", "pull_request", type=int, required=True, help="Pull request number.")
@click.option("--commit", help="Commit SHA being previewed.")
@click.option("--service", "services", multiple=True, required=True, help="NAME=IMAGE[:PORT] (repeatable).")
@click.option("--team", required=True, help="Team owning the preview (selects its NamespaceQuota).")
@click.option("-n", "--namespace", default="default", show_default=True, help="Namespace of the PreviewEnvironment.")
@click.option("--name", help="Name of the PreviewEnvironment [default: <repo basename>-pr<N>].")
@click.option("--ttl", help="Lifetime after the last push, e.g. 72h.")
@click.option("--sleep-after", help="Scale to zero after this long without a push, e.g. 8h.")
@click.option("--domain", help="Public parent domain: the URL is https://<name>-<pr>.<domain>.")
@click.option("--copy-secret", "copy_secrets", multiple=True, help="[NAMESPACE/]SECRET to copy in (repeatable).")
@click.option("--wait/--no-wait", default=False, help="Wait until Ready (or blocked, or --timeout).")
@click.option("--timeout", type=float, default=600, show_default=True, help="Seconds to wait with --wait.")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def up(
    *,
    repository: str,
    pull_request: int,
    commit: str | None,
    services: tuple[str, ...],
    team: str,
    namespace: str,
    name: str | None,
    ttl: str | None,
    sleep_after: str | None,
    domain: str | None,
    copy_secrets: tuple[str, ...],
    wait: bool,
    timeout: float,
    output: str,
) -> None:
    """Create or update the preview of a pull request (server-side apply), optionally waiting for it."""
    manifest = build_manifest(
        name=name or default_name(repository, pull_request),
        namespace=namespace,
        repository=repository,
        pull_request=pull_request,
        commit=commit,
        team=team,
        services=[parse_service(s) for s in services],
        ttl=ttl,
        sleep_after=sleep_after,
        domain=domain,
        copy_secrets=list(copy_secrets),
    )
    kube = kube_client()
    try:
        applied = kube.apply(manifest)
    except Exception as err:
        click.echo(f"error: the API server refused the PreviewEnvironment: {api_error(err)}", err=True)
        sys.exit(EXIT_REFUSED)
    meta = applied["metadata"]
    click.echo(
        f"previewenvironment {meta['namespace']}/{meta['name']} applied (generation {meta['generation']})", err=True
    )
    info = summary(applied)
    code = 0
    if wait:
        info, code = _wait(kube, meta["namespace"], meta["name"], timeout)
    if output == "json":
        click.echo(json.dumps(info, indent=2))
    elif info.get("ready"):
        click.echo(info["url"] or f"ready in namespace {info['previewNamespace']}")
    sys.exit(code)


def _wait(kube: Any, namespace: str, name: str, timeout: float) -> tuple[dict[str, Any], int]:
    """Follow the object until Ready (0), blocked (1) or timeout (2). Progress goes to stderr: one line per change
    in CI logs, an updating line on a terminal."""
    tty = sys.stderr.isatty()
    deadline = time.monotonic() + timeout
    last = ""
    info: dict[str, Any] = {}
    while True:
        obj = kube.get(API_VERSION, KIND, name, namespace=namespace)
        if obj is None:
            click.echo(f"error: previewenvironment {namespace}/{name} was deleted", err=True)
            return {"name": name, "namespace": namespace, "ready": False, "reason": "Deleted"}, EXIT_BLOCKED
        info = summary(obj)
        line = _progress_line(info)
        if line != last:
            click.echo(f"\r\033[K{line}" if tty else line, err=True, nl=not tty)
            last = line
        if info["ready"]:
            if tty:
                click.echo("", err=True)
            return info, 0
        if info["blocked"]:
            click.echo(f"\nerror: preview blocked: {info['reason']}: {info['message']}", err=True)
            return info, EXIT_BLOCKED
        if time.monotonic() >= deadline:
            click.echo(f"\nerror: timed out after {timeout:.0f}s: {info['reason']}: {info['message']}", err=True)
            return info, EXIT_TIMEOUT
        time.sleep(1)


@preview.command("down")
@click.option("--repo", "repository", help="Repository (with --pr, derives the default name).")
@click.option("--pr", "pull_request", type=int, help="Pull request number.")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--name", help="Name of the PreviewEnvironment.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until everything is gone.")
@click.option("--timeout", type=float, default=300, show_default=True)
def down(
    *, repository: str | None, pull_request: int | None, namespace: str, name: str | None, wait: bool, timeout: float
) -> None:
    """Delete the preview of a pull request (the operator removes its namespace first)."""
    if name is None:
        if repository is None or pull_request is None:
            raise click.UsageError("give --name, or --repo and --pr")
        name = default_name(repository, pull_request)
    kube = kube_client()
    if not kube.delete(API_VERSION, KIND, name, namespace=namespace):
        click.echo(f"previewenvironment {namespace}/{name} not found (nothing to delete)", err=True)
        return
    click.echo(f"previewenvironment {namespace}/{name} deleting", err=True)
    deadline = time.monotonic() + timeout
    while wait and kube.get(API_VERSION, KIND, name, namespace=namespace) is not None:
        if time.monotonic() >= deadline:
            click.echo(f"error: still deleting after {timeout:.0f}s", err=True)
            sys.exit(EXIT_TIMEOUT)
        time.sleep(1)
    if wait:
        click.echo(f"previewenvironment {namespace}/{name} deleted", err=True)


@preview.command("list")
@click.option("-n", "--namespace", default=None, help="Only this namespace [default: all].")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def list_previews(namespace: str | None, output: str) -> None:
    """List preview environments: name, pull request, URL, Ready and expiry."""
    items = [
        summary(o) | {"pullRequest": o["spec"]["source"]["pullRequest"]}
        for o in kube_client().list(API_VERSION, KIND, namespace=namespace)
    ]
    if output == "json":
        click.echo(json.dumps(items, indent=2))
        return
    rows = [("NAMESPACE", "NAME", "PR", "READY", "URL", "EXPIRES")]
    rows += [
        (i["namespace"], i["name"], str(i["pullRequest"]), str(i["ready"]), i["url"] or "-", i["expiresAt"] or "-")
        for i in items
    ]
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
