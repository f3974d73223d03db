"""Saved failures and named shape sets: small JSON files that replay without the fuzzer.

Not Hypothesis's example database, which is a cache keyed by test source that forgets
examples once they pass. A corpus entry is keyed by what it found: one file per
(implementation, failure signature), named by a hash of that pair, so the same bug found
on two machines lands in the same file and merging corpora is copying files. When a
smaller case for the same signature turns up it replaces the larger one.

Writes are safe under concurrency (xdist workers, parallel campaigns): each entry is
updated under an exclusive lock on its own lock file, written to a temporary file and
renamed into place, so readers never see a torn file and no smaller case is lost.
Loading only parses JSON: nothing is executed or unpickled.
"""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import json
import os
import platform
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import torch

from harness.case import Case, CaseError
from harness.tensors import GENERATOR

if TYPE_CHECKING:
    from harness.campaign import CampaignResult

SCHEMA = 1
FAILURES, SHAPES = "failures", "shapes"
REQUIRED = {
    "failure": ("schema", "kind", "implementation", "signature", "failure", "case"),
    "shapes": ("schema", "kind", "name", "cases"),
}


class CorpusError(ValueError):
    """A corpus file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Entry:
    """A saved failure: the minimal case, who failed on it, how, and when it was found."""

    case: Case
    implementation: str
    signature: str
    kind: str
    message: str
    found: dict[str, Any] = field(default_factory=dict)
    needs: tuple[str, ...] = ()  # the features the failure needs (see harness.features)

    @property
    def filename(self) -> str:
        """One file per bug: how it fails and what it needs, whatever case shows it."""
        key = json.dumps([self.implementation, self.signature, sorted(self.needs)]).encode()
        return f"{hashlib.sha256(key).hexdigest()[:16]}.json"

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "kind": "failure",
            "implementation": self.implementation,
            "signature": self.signature,
            "needs": sorted(self.needs),
            "failure": {"kind": self.kind, "message": self.message},
            "id": self.case.id,
            "case": self.case.to_dict(),
            "data": {"generator": GENERATOR, "seed": self.case.seed, "kind": self.case.data},
            "found": self.found,
        }


@dataclass(frozen=True)
class ShapeSet:
    """Convolution layers of a real network, replayed like failures (benchdnn's batch files)."""

    name: str
    description: str
    cases: tuple[Case, ...]


@dataclass
class Corpus:
    entries: list[tuple[Path, Entry]] = field(default_factory=list)
    shape_sets: list[tuple[Path, ShapeSet]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def provenance() -> dict[str, Any]:
    from harness import __version__

    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "harness": __version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def size(case: Case) -> tuple[int, ...]:
    """Order cases by how much there is to read: elements first, then the id's length."""
    numel = 1
    for dim in case.input_shape:
        numel *= dim
    weight = 1
    for dim in case.weight_shape:
        weight *= dim
    return (numel + weight, len(case.id), case.seed)


# -- reading -----------------------------------------------------------------------------

def _require(path: Path, data: dict[str, Any], keys: tuple[str, ...]) -> None:
    missing = [key for key in keys if key not in data]
    if missing:
        raise CorpusError(f"{path}: missing field(s) {', '.join(missing)}")


def _case(path: Path, data: Any) -> Case:
    if not isinstance(data, (str, dict)):
        raise CorpusError(f"{path}: 'case' must be an object or a case id")
    try:
        return Case.from_id(data) if isinstance(data, str) else Case.from_dict(data)
    except CaseError as error:
        raise CorpusError(f"{path}: case: {error}") from None


def load_file(path: Path) -> Entry | ShapeSet:
    """Parse one corpus file; raise `CorpusError` naming the file and what is wrong."""
    try:
        data = json.loads(path.read_text())
    except UnicodeDecodeError:
        raise CorpusError(f"{path}: not a text file") from None
    except json.JSONDecodeError as error:
        raise CorpusError(f"{path}: not valid JSON (truncated?): {error}") from None
    except OSError as error:
        raise CorpusError(f"{path}: cannot read: {error.strerror}") from None
    except (ValueError, RecursionError) as error:  # absurd nesting or number sizes
        raise CorpusError(f"{path}: not usable JSON: {type(error).__name__}") from None
    if not isinstance(data, dict):
        raise CorpusError(f"{path}: expected a JSON object")
    if data.get("schema") != SCHEMA:
        raise CorpusError(f"{path}: unknown schema version {data.get('schema')!r} (this harness reads {SCHEMA})")
    kind = data.get("kind")
    if kind not in REQUIRED:
        raise CorpusError(f"{path}: unknown kind {kind!r}; expected 'failure' or 'shapes'")
    _require(path, data, REQUIRED[kind])
    if kind == "shapes":
        if not isinstance(data["cases"], list) or not data["cases"]:
            raise CorpusError(f"{path}: 'cases' must be a non-empty list of case ids")
        cases = tuple(_case(path, item) for item in data["cases"])
        return ShapeSet(str(data["name"]), str(data.get("description", "")), cases)
    failure = data["failure"]
    if not isinstance(failure, dict) or "kind" not in failure:
        raise CorpusError(f"{path}: 'failure' must be an object with a 'kind'")
    found, needs = data.get("found", {}), data.get("needs", [])
    if not isinstance(found, dict):
        raise CorpusError(f"{path}: 'found' must be an object")
    if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
        raise CorpusError(f"{path}: 'needs' must be a list of feature names")
    return Entry(_case(path, data["case"]), str(data["implementation"]), str(data["signature"]),
                 str(failure["kind"]), str(failure.get("message", "")), found, tuple(needs))


def load(directory: Path) -> Corpus:
    """Every corpus file under ``directory``, in a stable order; bad files become errors."""
    corpus = Corpus()
    if not directory.is_dir():
        corpus.errors.append(f"{directory}: no such corpus directory")
        return corpus
    # Dot-files are save()'s temporary files, complete or not: never read them.
    for path in sorted(p for p in directory.rglob("*.json") if not p.name.startswith(".")):
        try:
            item = load_file(path)
        except CorpusError as error:
            corpus.errors.append(str(error))
            continue
        if isinstance(item, Entry):
            corpus.entries.append((path, item))
        else:
            corpus.shape_sets.append((path, item))
    return corpus


# -- writing -----------------------------------------------------------------------------

@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on the folder itself: no lock files left in the corpus."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def _write_atomically(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(handle, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def save(directory: Path, entry: Entry) -> str:
    """Store ``entry`` unless a case at least as small is stored for its signature.

    Returns what happened: "added", "replaced" (a smaller case) or "kept" (not smaller).
    """
    folder = directory / FAILURES
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / entry.filename
    with _locked(folder):
        outcome = "added"
        if path.exists():
            try:
                existing = load_file(path)
            except CorpusError:
                existing = None  # a broken file is replaced by a good one, never merged
            if isinstance(existing, Entry) and size(existing.case) <= size(entry.case):
                return "kept"
            outcome = "replaced"
        _write_atomically(path, json.dumps(entry.to_json(), indent=2) + "\n")
        return outcome


def save_findings(result: CampaignResult, directory: Path) -> list[str]:
    """Save every finding of ``result``; one line per file saying what happened to it."""
    lines = []
    for finding in result.findings:
        entry = Entry(
            finding.case, finding.implementation, finding.verdict.signature,
            str(finding.verdict.kind), finding.diagnosis,
            {**provenance(), "campaign_seed": result.seed, "shrunk": finding.shrunk},
            tuple(sorted(finding.needs)))
        outcome = save(directory, entry)
        lines.append(f"corpus: {outcome} {directory / FAILURES / entry.filename}")
    return lines


def merge(target: Path, sources: list[Path]) -> tuple[dict[str, int], list[str]]:
    """Bring the failures of ``sources`` into ``target``, smallest case per signature wins."""
    counts = {"added": 0, "replaced": 0, "kept": 0}
    errors: list[str] = []
    for source in sources:
        corpus = load(source)
        errors += corpus.errors
        for _, entry in corpus.entries:
            counts[save(target, entry)] += 1
    return counts, errors
