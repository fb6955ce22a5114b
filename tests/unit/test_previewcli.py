"""``plinth preview``'s pure parts: flag parsing, names, the manifest it applies, and the summary CI reads."""

from __future__ import annotations

import click
import pytest
from plinth.operator.api.conversion import internal
from plinth.operator.api.v1alpha1 import PreviewEnvironmentSpec
from plinth.operator.previewcli import build_manifest, default_name, parse_service, summary


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("web=ghcr.io/acme/web:pr-1", {"name": "web", "image": "ghcr.io/acme/web:pr-1"}),
        ("web=ghcr.io/acme/web:pr-1:3000", {"name": "web", "image": "ghcr.io/acme/web:pr-1", "port": 3000}),
        ("web=ghcr.io/acme/web:3000", {"name": "web", "image": "ghcr.io/acme/web:3000"}),
        ("web=localhost:5000/web:8080", {"name": "web", "image": "localhost:5000/web:8080"}),
        ("web=localhost:5000/web:v2:8080", {"name": "web", "image": "localhost:5000/web:v2", "port": 8080}),
        ("api=r.example/a@sha256:abc:9000", {"name": "api", "image": "r.example/a@sha256:abc", "port": 9000}),
    ],
)
def test_parse_service(text: str, expected: dict[str, object]) -> None:
    assert parse_service(text) == expected


@pytest.mark.parametrize("text", ["web", "=img:1", "web="])
def test_parse_service_rejects_malformed(text: str) -> None:
    with pytest.raises(click.BadParameter):
        parse_service(text)


def test_default_name_is_a_short_dns_label_per_pull_request() -> None:
    assert default_name("github.com/acme/Shop_Web", 42) == "shop-web-pr42"
    long = default_name("github.com/acme/" + "x" * 80, 2147483647)
    assert len(long) <= 40 and long.endswith("-pr2147483647")


def test_manifest_is_a_valid_spec() -> None:
    manifest = build_manifest(
        name="shop-pr7",
        namespace="team-shop",
        repository="github.com/acme/shop",
        pull_request=7,
        commit="abcdef1",
        team="shop",
        services=[parse_service("web=ghcr.io/acme/web:pr-7:3000")],
        ttl="24h",
        sleep_after="2h",
        domain="preview.example.com",
        copy_secrets=["db", "shared/registry"],
    )
    assert manifest["apiVersion"] == "plinth.dev/v1beta1"
    assert manifest["spec"]["lifecycle"] == {"ttl": "24h", "sleepAfter": "2h"}
    spec = PreviewEnvironmentSpec.model_validate(internal(manifest)["spec"])
    assert spec.services[0].port == 3000
    assert [s.copy_from.namespace for s in spec.secrets if s.copy_from] == [None, "shared"]
    assert spec.ingress is not None and spec.ingress.domain == "preview.example.com"


def test_summary_is_ready_only_at_the_current_generation_and_names_the_blocker() -> None:
    obj = {
        "metadata": {"name": "p", "namespace": "n", "generation": 2},
        "status": {
            "observedGeneration": 1,
            "url": "https://p-1.example.com",
            "conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "ok"}],
        },
    }
    assert summary(obj)["ready"] is False
    obj["status"]["observedGeneration"] = 2
    assert summary(obj)["ready"] is True
    obj["status"]["conditions"] = [
        {"type": "Ready", "status": "False", "reason": "SecretCopyRefused", "message": "Secret x/y may not be copied"},
        {"type": "Stalled", "status": "True", "reason": "SecretCopyRefused", "message": "Secret x/y may not be copied"},
    ]
    info = summary(obj)
    assert (info["ready"], info["blocked"], info["reason"]) == (False, True, "SecretCopyRefused")
