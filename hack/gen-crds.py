#!/usr/bin/env python3
"""Regenerate crds/*.yaml, docs/reference.md and the chart's copies of the CRDs from the pydantic models
(``--check``: only report stale files).

A thin wrapper so the generator can be run from a checkout without remembering the module path; the logic lives in
``plinth.operator.api.crdgen`` (also reachable as ``python -m plinth.operator.api.crdgen``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from plinth.operator.api.crdgen import main

if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    defaults = ["--crds-dir", str(root / "crds"), "--reference", str(root / "docs" / "reference.md")]
    status = main([*defaults, *sys.argv[1:]])
    sync = [str(root / "hack" / "helm" / "sync-crds.sh"), *(["--check"] if "--check" in sys.argv[1:] else [])]
    raise SystemExit(status or subprocess.run(sync, check=False).returncode)
