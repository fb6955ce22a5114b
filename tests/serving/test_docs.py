"""docs/serving.md lists every variable the server reads, with its default: the table is checked, not trusted."""

from __future__ import annotations

import re

from plinth.serving.settings import Settings

from tests.conftest import ROOT


def test_every_variable_is_documented_with_its_default() -> None:
    text = (ROOT / "docs" / "serving.md").read_text()
    rows = dict(re.findall(r"^\| `([A-Z0-9_]+)` \| ([^|]*) \|", text, re.MULTILINE))
    for field in Settings.model_fields.values():
        assert field.alias in rows, f"docs/serving.md does not document {field.alias}"
        default = "required" if field.is_required() else ("" if field.default is None else f"`{field.default}`")
        assert rows[field.alias].strip() == default, field.alias
    assert set(rows) <= {f.alias for f in Settings.model_fields.values()}
