"""Torch versions to run the harness under: the tox environments named ``torchX.Y``, made on
request, and the harness run in one of them as a command of its own.

Each torch version lives in its own virtual environment, made by tox from ``tox.ini``
(``.tox/torchX.Y``, the project installed in it), so a version is a Python interpreter and
running the harness under it is running ``python -m harness ...`` with that interpreter.
What such a child prints and writes is untrusted: an implementation under test ran in it.
So its output goes to a file of which only the end is kept (to say why it failed), and its
JSON report is read as a regular file, bounded, and parsed as JSON only: nothing it names
is imported or evaluated here. Nothing here imports torch.
"""

from __future__ import annotations

import configparser
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.model.files import NotRegular, read_regular
from harness.model.text import clipped

TORCH_ENV = re.compile(r"torch(\d+)\.(\d+)")
_PIN = re.compile(r"^\s*(torch\d+\.\d+)\s*:\s*(\S.*?)\s*$")
MAX_REPORT_BYTES = 64 * 2**20  # a campaign's report with every message whole; more is not the harness's
TAIL_BYTES = 2000  # of a child's output, kept to say why it failed
# What creating an env downloads, roughly, by its torch pin (measured on this project's machines:
# a CPU wheel from disk, or a CUDA build from PyPI with its nvidia-* wheels).
CPU_WHEEL_GB, CUDA_BUILD_GB = 0.3, 5


class VersionsError(Exception):
    """tox.ini cannot be read, or names no torch env; the message says which."""


@dataclass(frozen=True)
class Env:
    """A tox env that pins one torch: its name, the requirement it installs, its interpreter."""

    name: str
    pin: str
    python: Path

    @property
    def created(self) -> bool:
        return self.python.is_file()

    @property
    def download_gb(self) -> float:
        return CPU_WHEEL_GB if "+cpu" in self.pin else CUDA_BUILD_GB

    @property
    def order(self) -> tuple[int, int]:
        match = TORCH_ENV.fullmatch(self.name)
        return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def tox_envs(tox_ini: Path) -> list[Env]:
    """Every ``torchX.Y`` env ``tox_ini`` names (in ``env_list``, as a factor of
    ``[testenv]``'s deps, or as a section of its own), oldest torch first, each with the
    torch requirement its deps give it and its interpreter under ``.tox`` beside the file."""
    config = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        with open(tox_ini, encoding="utf-8") as file:
            config.read_file(file)
    except (OSError, UnicodeDecodeError, configparser.Error) as error:
        raise VersionsError(f"{tox_ini}: cannot read it: {clipped(str(error))}") from None
    names = re.split(r"[\s,]+", config.get("tox", "env_list", fallback=""))
    pins = {}
    for section in ("testenv", *(s for s in config.sections() if s.startswith("testenv:"))):
        own = section.removeprefix("testenv:") if section != "testenv" else None
        for line in config.get(section, "deps", fallback="").splitlines():
            match = _PIN.match(line)
            if match:
                pins[match.group(1)] = match.group(2)
            elif own and line.strip().startswith("torch"):
                pins[own] = line.strip()
        names.append(own or "")
    work = tox_ini.resolve().parent / ".tox"
    found = {name for name in [*names, *pins] if TORCH_ENV.fullmatch(name)}
    if not found:
        raise VersionsError(f"{tox_ini}: no torchX.Y environment in it")
    envs = [Env(name, pins.get(name, ""), work / name / "bin" / "python") for name in found]
    return sorted(envs, key=lambda env: env.order)


def _tox() -> list[str] | None:
    if importlib.util.find_spec("tox") is not None:
        return [sys.executable, "-m", "tox"]
    found = shutil.which("tox")
    return None if found is None else [found]


def create(env: Env, tox_ini: Path) -> str:
    """Make ``env`` with ``tox -e NAME --notest``, tox's progress shown on stderr (stdout is
    the matrix's); "" when it was made, else why not."""
    tox = _tox()
    if tox is None:
        return "tox is not installed (pip install tox)"
    done = subprocess.run(
        [*tox, "-c", str(tox_ini), "-e", env.name, "--notest"],
        stdin=subprocess.DEVNULL,
        stdout=sys.stderr,
        stderr=sys.stderr,
        check=False,
    )
    if done.returncode or not env.created:
        return f"tox -e {env.name} --notest exited {done.returncode}"
    return ""


@dataclass(frozen=True)
class Ran:
    """A harness command run under one interpreter: its exit status, how long it took, its
    JSON report if it wrote one (parsed, not yet checked), and the end of its output."""

    status: int
    seconds: float
    report: Any
    tail: str


def run_harness(python: Path, arguments: list[str], report: Path, output: Path) -> Ran:
    """``python -m harness ARGUMENTS --report REPORT``, its output (stdout and stderr) into
    the file ``output``, from this directory and with this environment."""
    report.unlink(missing_ok=True)
    started = time.monotonic()
    with open(output, "wb") as sink:
        status = subprocess.run(
            [str(python), "-m", "harness", *arguments, "--report", str(report)],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
            check=False,
        ).returncode
    seconds = time.monotonic() - started
    with open(output, "rb") as written:
        written.seek(max(0, os.path.getsize(output) - TAIL_BYTES))
        tail = written.read().decode("utf-8", "replace")
    return Ran(status, seconds, read_report(report), tail)


def read_report(path: Path) -> Any:
    """The JSON in ``path``, or None if there is none, it is not a regular file, it is larger
    than any report the harness writes, or it is not JSON."""
    try:
        data = read_regular(path, MAX_REPORT_BYTES + 1)
    except (OSError, NotRegular):
        return None
    if len(data) > MAX_REPORT_BYTES:
        return None
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None
