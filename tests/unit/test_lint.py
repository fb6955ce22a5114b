"""ruff, mypy and the direction of imports are part of the test suite, so "lint clean" and "layers point one way"
are enforced by `make test`, not only promised."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    # PYTHONSAFEPATH: run from the repository root, ./operator must not shadow the standard library's module.
    env = {**os.environ, "PYTHONSAFEPATH": "1"}
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=300)


def test_ruff_check() -> None:
    result = _run(str(BIN / "ruff"), "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = _run(str(BIN / "ruff"), "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    result = _run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_adapters_never_import_the_operator() -> None:
    """Layers point one way: the operator uses adapters through their small interfaces, never the reverse."""
    offenders = {
        path.name: sorted(m for m in _imports(path) if m.startswith("plinth.operator"))
        for path in sorted((ROOT / "adapters").glob("*.py"))
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}
