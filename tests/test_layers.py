"""The declared layers (`.importlinter`) hold on the package, and `lint-imports` (run by
`make lint`) fails on an upward import or a cycle, even one hidden inside a function."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed")


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT), "--no-cache", "--config", str(tree / ".importlinter")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the package and its contracts, to break on purpose."""
    ignore = shutil.ignore_patterns("__pycache__", "*.gz", "*.png")
    shutil.copytree(REPO / "ka_ml", tmp_path / "ka_ml", ignore=ignore)
    shutil.copy(REPO / ".importlinter", tmp_path / ".importlinter")
    return tmp_path


def append(path: Path, code: str) -> None:
    path.write_text(path.read_text() + "\n\n" + code + "\n")


def test_the_package_keeps_its_layers(tree: Path) -> None:
    res = lint(tree)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "2 kept, 0 broken" in res.stdout


def test_an_upward_import_inside_a_function_fails_the_lint(tree: Path) -> None:
    append(
        tree / "ka_ml" / "modeling" / "metrics.py",
        "def _sneaky() -> None:\n    from ka_ml.jobs import train  # noqa: F401",
    )
    res = lint(tree)
    assert res.returncode != 0
    assert "Layers point down" in res.stdout and "BROKEN" in res.stdout
    assert "ka_ml.modeling.metrics -> ka_ml.jobs.train" in res.stdout


def test_a_cycle_between_two_modules_of_a_package_fails_the_lint(tree: Path) -> None:
    # scoring.lifecycle is imported by scoring.score; importing back closes a cycle
    append(tree / "ka_ml" / "scoring" / "lifecycle.py", "import ka_ml.scoring.score  # noqa: F401")
    res = lint(tree)
    assert res.returncode != 0
    assert "No cycles" in res.stdout and "BROKEN" in res.stdout
