#!/usr/bin/env python3
"""Regenerate crds/*.yaml and docs/reference.md from the pydantic models (``--check``: only report stale files).

A thin wrapper so the generator can be run from a checkout without remembering the module path; the logic lives in
``plinth.operator.api.crdgen`` (also reachable as ``python -m plinth.operator.api.crdgen``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from plinth.operator.api.crdgen import main

if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    defaults = ["--crds-dir", str(root / "crds"), "--reference", str(root / "docs" / "reference.md")]
    raise SystemExit(main([*defaults, *sys.argv[1:]]))
