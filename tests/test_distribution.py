"""What installing the project puts in site-packages: the top-level packages ``harness`` and
``implementations`` and its own metadata, nothing else. Another top-level name (a folder
``adapters/`` matched by the package search, say) would overwrite the files of any other
distribution that installs it, as PyPI's ``adapters`` does; ``docs/coexistence.py`` shows the
two installed side by side."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
# What a checkout holds that is no part of a build: the wheel is built from a copy without
# them, so that the repository is left as it was (setuptools writes build/ and *.egg-info).
NOT_SOURCES = shutil.ignore_patterns(".git", ".tox", ".venv", ".*_cache", "__pycache__", "build", "dist", "*.egg-info")


def _wheel(tmp_path: Path) -> list[str]:
    """The names in the wheel built from a copy of the project as it is now."""
    source = tmp_path / "source"
    shutil.copytree(PROJECT, source, ignore=NOT_SOURCES)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--wheel-dir",
            str(tmp_path / "wheel"),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (built,) = (tmp_path / "wheel").glob("*.whl")
    with zipfile.ZipFile(built) as wheel:
        return wheel.namelist()


def test_the_wheel_installs_harness_and_implementations_and_nothing_beside_them(tmp_path: Path) -> None:
    names = _wheel(tmp_path)
    (metadata,) = {name.split("/")[0] for name in names if name.split("/")[0].endswith(".dist-info")}
    assert {name.split("/")[0] for name in names} == {"harness", "implementations", metadata}  # no .data/ either
    assert {name.split("/")[0] for name in names if name.endswith("/__init__.py")} == {"harness", "implementations"}
    assert "harness/adapters/__init__.py" in names and "harness/py.typed" in names
