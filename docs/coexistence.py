"""Install PyPI's ``adapters`` and this project into one fresh virtual environment, and check
that neither touches the other's files.

    python docs/coexistence.py                      # this checkout; needs PyPI (or a mirror)
    python docs/coexistence.py --project ../old     # another checkout of the project

The project installs the top-level packages ``harness`` and ``implementations`` only; its
adapters of real libraries are ``harness.adapters`` (tests/test_distribution.py checks the
wheel's file list). A top-level ``adapters`` of its own would overwrite the PyPI library of
that name (AdapterHub's, for transformers) file by file, and uninstalling the project would
then delete them. The steps, in a temporary virtual environment without the system's packages:

1. ``pip install adapters`` (with its dependencies, transformers among them; not torch,
   which it imports but does not require: the import check below borrows the torch of the
   interpreter running this script, last on its path, so that no second torch is installed);
2. ``pip install --no-deps PROJECT``, not editable, so that its files land in site-packages
   as a user's would: every file ``adapters``'s RECORD lists still has its hash, no file
   of the project's is under ``adapters/``, ``import adapters`` is PyPI's library and
   ``import harness.adapters`` the project's;
3. ``pip uninstall im2col-harness``: every file of ``adapters`` is still there, intact.

A manual check, not a test: it downloads about 60 MB and takes a minute or so. It prints
what it finds and exits 0 when the two coexist, 1 when not, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.metadata
import importlib.util
import json
import subprocess
import sys
import tempfile
import venv
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent
LIBRARY = "adapters"  # PyPI's distribution and top-level package of that name
DISTRIBUTION = "im2col-harness"


def _intact(distribution: str) -> tuple[int, list[str]]:
    """How many of ``distribution``'s files its RECORD gives a hash for, and those whose
    content no longer has it (changed or gone)."""
    checked, broken = 0, []
    for file in importlib.metadata.distribution(distribution).files or []:
        if file.hash is None:  # RECORD itself, and the .pyc files pip wrote
            continue
        checked += 1
        path = Path(str(file.locate()))
        try:
            digest = hashlib.new(file.hash.mode, path.read_bytes()).digest()
        except OSError:
            broken.append(f"{file} (missing)")
            continue
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != file.hash.value:
            broken.append(f"{file} (changed)")
    return checked, broken


def inspect(borrowed: str) -> dict[str, Any]:
    """Run in the virtual environment: what is installed there, as JSON-ready data."""
    found: dict[str, Any] = {}
    installed = {dist.metadata["Name"] for dist in importlib.metadata.distributions()}
    found["library_files"], found["library_broken"] = _intact(LIBRARY)
    spec = importlib.util.find_spec(LIBRARY)
    found["library_origin"] = None if spec is None else spec.origin
    if DISTRIBUTION in installed:
        files = importlib.metadata.distribution(DISTRIBUTION).files or []
        found["project_top_level"] = sorted(
            {file.parts[0] for file in files if file.parts[0] != ".." and not file.parts[0].endswith(".dist-info")}
        )
        found["project_outside"] = sorted(str(file) for file in files if file.parts[0] == "..")  # its script
        found["harness_adapters"] = _imported("harness.adapters")  # no torch needed to import the package
    sys.path.append(borrowed)  # torch, which PyPI's adapters imports; last, so that it shadows nothing
    found["library_imported"] = _imported(LIBRARY)
    return found


def _imported(name: str) -> str:
    """Module ``name``, imported: its version, if it has one, and its file; or how it failed."""
    try:
        module = importlib.import_module(name)
    except Exception as error:  # what the report says; the check fails on it
        return f"FAILED: {type(error).__name__}: {error}"
    version = getattr(module, "__version__", None)
    return f"{name}{'' if version is None else ' ' + str(version)} from {module.__file__}"


def _pip(python: Path, *arguments: str) -> None:
    print(f"$ pip {' '.join(arguments)}", flush=True)
    subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", "--quiet", *arguments], check=True)


def _look(python: Path, borrowed: str) -> dict[str, Any]:
    ran = subprocess.run([str(python), __file__, "--inspect", borrowed], check=True, capture_output=True, text=True)
    found: dict[str, Any] = json.loads(ran.stdout)
    return found


def _report(found: dict[str, Any], site: Path, project_installed: bool) -> list[str]:
    """One line per thing checked, and the problems found."""
    problems = [f"{LIBRARY}: {broken}" for broken in found["library_broken"]]
    origin = found["library_origin"]
    if origin != str(site / LIBRARY / "__init__.py"):
        problems.append(f"import {LIBRARY} finds {origin}, not PyPI's package in {site}")
    if found["library_imported"].startswith("FAILED"):
        problems.append(f"import {LIBRARY}: {found['library_imported']}")
    print(
        f"  {LIBRARY}: {found['library_files']} files, each as its RECORD says: "
        f"{'yes' if not found['library_broken'] else 'NO, ' + str(len(found['library_broken'])) + ' not'}"
    )
    print(f"  import {LIBRARY}: {found['library_imported']}")
    if project_installed:
        print(
            f"  {DISTRIBUTION} installs the top-level names: {', '.join(found['project_top_level'])}; "
            f"beside site-packages: {', '.join(found['project_outside']) or 'nothing'}"
        )
        print(f"  import harness.adapters: {found['harness_adapters']}")
        if found["harness_adapters"].startswith("FAILED"):
            problems.append(f"import harness.adapters: {found['harness_adapters']}")
        if LIBRARY in found["project_top_level"]:
            problems.append(f"{DISTRIBUTION} installs files under {LIBRARY}/")
    for problem in problems:
        print(f"  PROBLEM: {problem}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=PROJECT, help="the checkout to install (default: this one)")
    parser.add_argument("--inspect", metavar="PATH", help=argparse.SUPPRESS)  # run inside the virtual environment
    args = parser.parse_args()
    if args.inspect is not None:
        print(json.dumps(inspect(args.inspect)))
        return 0
    import torch  # only to be borrowed, by path

    borrowed = str(Path(torch.__file__).resolve().parent.parent)
    problems = []
    with tempfile.TemporaryDirectory(prefix="coexistence-") as folder:
        environment = Path(folder) / "venv"
        venv.create(environment, with_pip=True)
        python = environment / "bin" / "python"
        site = Path(
            subprocess.run(
                [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
        )
        print(f"a fresh virtual environment: {environment} (torch borrowed from {borrowed} to import {LIBRARY})")
        _pip(python, "install", LIBRARY)
        problems += _report(_look(python, borrowed), site, project_installed=False)
        _pip(python, "install", "--no-deps", str(args.project.resolve()))
        problems += _report(_look(python, borrowed), site, project_installed=True)
        _pip(python, "uninstall", "--yes", DISTRIBUTION)
        problems += _report(_look(python, borrowed), site, project_installed=False)
    print(
        f"{LIBRARY} and {DISTRIBUTION} coexist"
        if not problems
        else f"{LIBRARY} and {DISTRIBUTION} do NOT coexist: {len(problems)} problem(s)"
    )
    return 0 if not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
