"""Packaging: a built wheel and the editable install both import as plinth.*, never shadow the stdlib `operator`,
and the `plinth` console script runs."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import plinth.operator
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run from a neutral directory with PYTHONSAFEPATH: `python -m ...` in the checkout would put ./operator first."""
    env = {**os.environ, "PYTHONSAFEPATH": "1"}
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd or tempfile.gettempdir(),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"{' '.join(map(str, args))}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--wheel", "--outdir", out, ROOT)
    (built,) = out.glob("plinth-*.whl")
    yield built


def test_wheel_contents(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "plinth/operator/cli.py" in names
    assert "plinth/operator/api/v1alpha1/namespacequota.py" in names
    assert "plinth/adapters/kubernetes.py" in names
    # Every package of the checkout is in the wheel (pyproject.toml lists them one by one).
    mapped = {"operator": "plinth/operator", "adapters": "plinth/adapters", "serving": "plinth/serving"}
    for top, inside in mapped.items():
        for init in (ROOT / top).rglob("__init__.py"):
            assert f"{inside}/{init.relative_to(ROOT / top).as_posix()}" in names, init
    assert not [n for n in names if n.startswith("operator/")], "a top-level operator package would shadow stdlib"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "plinth = plinth.operator.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_wheel_installs_imports_and_runs(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    _run(python, "-m", "pip", "install", "-q", wheel)
    # Run from an unrelated directory: what is imported must come from the installed wheel.
    probe = (
        "import operator, plinth.operator, plinth.adapters, plinth.operator.runtime;"
        "print(operator.__file__); print(plinth.operator.__file__); print(plinth.adapters.__file__)"
    )
    stdlib_op, pkg_op, pkg_adapters = _run(python, "-c", probe, cwd=tmp_path).stdout.split()
    site = str(venv)
    assert not stdlib_op.startswith(str(ROOT)) and "site-packages" not in stdlib_op
    assert pkg_op.startswith(site) and pkg_op.endswith("plinth/operator/__init__.py")
    assert pkg_adapters.startswith(site)
    help_text = _run(venv / "bin" / "plinth", "--help", cwd=tmp_path).stdout
    assert "cluster" in help_text and "run" in help_text


def test_editable_install_points_at_the_checkout() -> None:
    assert Path(plinth.operator.__file__).resolve() == ROOT / "operator" / "__init__.py"
    import operator

    assert not Path(operator.__file__).resolve().is_relative_to(ROOT)
    result = _run(Path(sys.executable).parent / "plinth", "cluster", "--help")
    assert "up" in result.stdout and "down" in result.stdout
