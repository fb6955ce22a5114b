"""Fixtures the packaging tests share."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.e2e.test_chart import ROOT, _run


@pytest.fixture(scope="session")
def helm() -> Path:
    """helm, built once from hack/helm (go.mod pins the version) into the same cache as the control plane."""
    env = {**os.environ, "PYTHONSAFEPATH": "1"}
    path = Path(_run(sys.executable, ROOT / "hack" / "helm" / "ensure_helm.py", env=env).stdout.strip())
    assert "v3.22.0" in _run(path, "version", "--short").stdout
    return path
