"""`plinth convert`: a Git repository of v1alpha1 manifests rewritten to v1beta1, offline, comments kept."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner
from plinth.operator.api.conversion import ALPHA, BETA, convert
from plinth.operator.cli import main
from plinth.operator.convertfiles import convert_text

MANIFEST = """\
# Team shop's fraud model.
apiVersion: plinth.dev/v1alpha1
kind: ModelDeployment
metadata:
  name: fraud  # the Service name too
  namespace: shop
spec:
  model: {name: fraud, version: 1.4.0, uri: "s3://models/fraud/1.4.0"}
  replicas: 2
  canary:
    version: 1.5.0
    uri: s3://models/fraud/1.5.0
    trafficPercent: 10  # a tenth of the requests
---
apiVersion: v1
kind: ConfigMap
metadata: {name: untouched}  # not Plinth's
data: {a: "1"}
"""


def test_objects_move_and_comments_stay() -> None:
    result = convert_text(MANIFEST, BETA)
    assert result.objects == 1
    for comment in ("# Team shop's fraud model.", "# the Service name too", "# a tenth of the requests"):
        assert comment in result.text
    assert 'metadata: {name: untouched}  # not Plinth\'s\ndata: {a: "1"}\n' in result.text
    before, after = list(yaml.safe_load_all(MANIFEST)), list(yaml.safe_load_all(result.text))
    assert after[0] == convert(before[0], BETA) and after[1] == before[1]
    assert after[0]["spec"]["scaling"] == {"replicas": 2}
    back = convert_text(result.text, ALPHA)
    assert list(yaml.safe_load_all(back.text)) == before


def test_nothing_to_convert_is_left_byte_for_byte() -> None:
    text = "apiVersion: v1\nkind: Namespace\nmetadata:   {name: odd-spacing}\n"
    assert convert_text(text, BETA).text == text
    converted = convert_text(MANIFEST, BETA).text
    assert convert_text(converted, BETA).objects == 0


def test_the_command_checks_and_rewrites_a_repository(tmp_path: Path) -> None:
    (tmp_path / "apps").mkdir()
    model = tmp_path / "apps" / "fraud.yaml"
    model.write_text(MANIFEST)
    other = tmp_path / "README.yml"
    other.write_text("kind: Note\n")
    runner = CliRunner()
    check = runner.invoke(main, ["convert", "--check", str(tmp_path)])
    assert check.exit_code == 1 and "apps/fraud.yaml: 1 object(s) not at plinth.dev/v1beta1" in check.output
    assert model.read_text() == MANIFEST, "--check changes nothing"
    printed = runner.invoke(main, ["convert", str(model)])
    assert printed.exit_code == 0 and "apiVersion: plinth.dev/v1beta1" in printed.output
    written = runner.invoke(main, ["convert", "--write", str(tmp_path)])
    assert written.exit_code == 0, written.output
    assert yaml.safe_load_all(model.read_text()).__next__()["apiVersion"] == BETA
    assert other.read_text() == "kind: Note\n"
    assert runner.invoke(main, ["convert", "--check", str(tmp_path)]).exit_code == 0
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [unclosed\n")
    failed = runner.invoke(main, ["convert", str(broken)])
    assert failed.exit_code == 1 and "broken.yaml" in failed.output
