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
            # `from a.b import c` names a.b and, should c be a module, a.b.c
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return found


def test_adapters_never_import_the_operator() -> None:
    """Layers point one way: the operator uses adapters through their small interfaces, never the reverse."""
    offenders = {
        path.name: sorted(m for m in _imports(path) if m.startswith("plinth.operator"))
        for path in sorted((ROOT / "adapters").glob("*.py"))
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}


KIND_MODULES = {
    "modeldeployment": ("reconcilers.modeldeployment", "builders.model"),
    "previewenvironment": ("reconcilers.previewenvironment", "builders.preview"),
    "namespacequota": ("reconcilers.namespacequota", "builders.quota"),
}
#: The one crossing: a preview reads the ResourceQuota its NamespaceQuota made (its name and owner label).
ALLOWED_CROSSINGS = {("previewenvironment", "builders.quota")}


def test_kinds_never_import_each_other() -> None:
    """What kinds share lives in neutral modules (reconcilers/workloads, reconcilers/claims, builders/common), so a
    change to one kind's rules cannot silently change another's."""
    crossings = [
        (module, foreign)
        for kind, modules in KIND_MODULES.items()
        for module in modules
        for other, foreigns in KIND_MODULES.items()
        if other != kind
        for foreign in foreigns
        if f"plinth.operator.{foreign}" in _imports(ROOT / "operator" / f"{module.replace('.', '/')}.py")
        and (kind, foreign) not in ALLOWED_CROSSINGS
    ]
    assert crossings == []
