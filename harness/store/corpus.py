"""Saved failures and named shape sets: small JSON files that replay without the fuzzer.

Not Hypothesis's example database, which is a cache keyed by test source that forgets
examples once they pass. A corpus entry is a `harness.model.finding.Finding`, kept as JSON, one
file per bug (`Finding.key`: the implementation, how it fails, what it needs), named by a
hash of that, so the same bug found on two machines lands in the same file and merging
corpora is copying files. When a smaller case for the same bug turns up it replaces the
larger one. Nothing else is ever overwritten: a file under a bug's name that is another
bug's (copied there by hand) or no finding at all is left alone, and the bug is stored
under the whole hash instead; a finding that cannot be saved (a full disk) is printed
whole, as its file would hold it, and fails the campaign.

Writes are safe under concurrency (xdist workers, parallel campaigns): each entry is
updated under an exclusive lock on its folder, written to a temporary file and renamed
into place, so readers never see a torn file and no smaller case is lost.

Loading only parses JSON: nothing is executed or unpickled. A corpus may come from anyone
(`corpus merge`), so loading is total: it reads only regular ``*.json`` files directly in
``failures/`` and ``shapes/`` (never the crash journal in ``.inflight/``, a dot-file, a
FIFO, a device, or a link out of the corpus), never blocks, checks every field, and
refuses a case over the size limits before anything is allocated; each bad file is one
error line and the others load.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.generate.tensors import GENERATOR
from harness.model.case import Case, CaseError, Limits
from harness.model.files import NotRegular, read_regular, write_atomically
from harness.model.finding import Finding, identity, size
from harness.model.provenance import provenance
from harness.model.text import clipped
from harness.model.verdict import FAILED, KINDS, Verdict

SCHEMA = 2  # 2: the message as the check said it, symptoms, shrunk and reproducible at the top
FAILURES, SHAPES = "failures", "shapes"


class CorpusError(ValueError):
    """A corpus file that cannot be used; the message names the file and the problem."""


def _names(finding: Finding) -> tuple[str, str]:
    """Where ``finding`` is stored: a short hash of its bug (`Finding.key`), or the whole
    hash when a file that is not this bug's has the short name."""
    digest = hashlib.sha256(json.dumps(finding.key).encode()).hexdigest()
    return f"{digest[:16]}.json", f"{digest}.json"


def filename(finding: Finding) -> str:
    """One file per bug (`Finding.key`): the same bug found twice, anywhere, is one file."""
    return _names(finding)[0]


def to_json(finding: Finding) -> dict[str, Any]:
    """A finding as a corpus file holds it."""
    return {
        "schema": SCHEMA,
        "kind": "failure",
        "implementation": identity(finding.implementation),
        "signature": finding.verdict.signature,
        "needs": sorted(finding.needs),
        "untried": sorted(finding.untried),
        "failure": {"kind": finding.verdict.kind, "message": finding.verdict.message},
        "shrunk": finding.shrunk,
        "reproducible": finding.reproducible,
        "also_seen_as": [
            {"kind": s.verdict.kind, "signature": s.verdict.signature, "message": s.verdict.message, "case": s.case.id}
            for s in finding.symptoms
        ],
        "id": finding.case.id,
        "case": finding.case.to_dict(),
        "data": {"generator": GENERATOR, "seed": finding.case.seed, "kind": finding.case.data},
        "found": finding.found,
    }


@dataclass(frozen=True)
class ShapeSet:
    """Convolution layers of a real network, replayed like failures (benchdnn's batch files)."""

    name: str
    cases: tuple[Case, ...]


@dataclass
class Corpus:
    entries: list[tuple[Path, Finding]] = field(default_factory=list)
    shape_sets: list[tuple[Path, ShapeSet]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


# -- reading -----------------------------------------------------------------------------

_WHOLE, _TEXT, _OBJECT, _LIST, _YES_OR_NO = (int,), (str,), (dict,), (list,), (bool,)
# What a corpus file may hold, by kind: each field's JSON types, and whether it must be there.
FIELDS: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "failure": {
        "schema": (_WHOLE, True),
        "kind": (_TEXT, True),
        "implementation": (_TEXT, True),
        "signature": (_TEXT, True),
        "failure": (_OBJECT, True),
        "case": ((dict, str), True),
        "needs": (_LIST, False),
        "untried": (_LIST, False),
        "shrunk": (_YES_OR_NO, False),
        "reproducible": (_YES_OR_NO, False),
        "also_seen_as": (_LIST, False),
        "id": (_TEXT, False),
        "data": (_OBJECT, False),
        "found": (_OBJECT, False),
    },
    "shapes": {
        "schema": (_WHOLE, True),
        "kind": (_TEXT, True),
        "name": (_TEXT, True),
        "description": (_TEXT, False),
        "cases": (_LIST, True),
    },
}
# The shipped files are 2 kB: a corpus file is never near this, and a larger one is not read.
MAX_FILE_BYTES = 2**20
_JSON_TYPES = {
    dict: "an object",
    list: "a list",
    str: "a string",
    int: "a whole number",
    float: "a number",
    bool: "true or false",
    type(None): "null",
}


def _read(path: Path) -> bytes:
    """The bytes of the regular file at ``path`` (`harness.model.files.read_regular`: no FIFO
    waited on, no device opened, nothing read past the bound)."""
    try:
        data = read_regular(path, MAX_FILE_BYTES + 1)
    except NotRegular as error:
        raise CorpusError(f"{path}: skipped: {error}") from None
    except OSError as error:
        raise CorpusError(f"{path}: cannot read: {error.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise CorpusError(f"{path}: larger than {MAX_FILE_BYTES:,} bytes, too large for a corpus file")
    return data


def _shown(value: Any) -> str:
    return clipped(repr(value))


def _parse(path: Path, raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise CorpusError(f"{path}: not a text file") from None
    except json.JSONDecodeError as error:
        raise CorpusError(f"{path}: not valid JSON (truncated?): {error}") from None
    except ValueError:  # int() refuses over 4,300 digits
        raise CorpusError(f"{path}: not usable JSON: a number too long to read") from None
    except RecursionError:
        raise CorpusError(f"{path}: not usable JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise CorpusError(f"{path}: expected a JSON object")
    return data


def _check_fields(path: Path, data: dict[str, Any]) -> str:
    """The file's kind, once its schema and kind are known and every field it must have is
    there, none unknown, each of its JSON type; one line naming the first that is not."""
    schema, kind = data.get("schema"), data.get("kind")
    if type(schema) is not int or schema != SCHEMA:  # JSON's true is not 1 here
        raise CorpusError(f"{path}: unknown schema version {_shown(schema)} (this harness reads {SCHEMA})")
    if not isinstance(kind, str) or kind not in FIELDS:
        raise CorpusError(f"{path}: unknown kind {_shown(kind)}; expected 'failure' or 'shapes'")
    spec = FIELDS[kind]
    missing = [key for key, (_, required) in spec.items() if required and key not in data]
    if missing:
        raise CorpusError(f"{path}: missing field(s) {', '.join(missing)}")
    unknown = sorted(set(data) - set(spec))
    if unknown:
        raise CorpusError(f"{path}: unknown field(s) {_shown(unknown)}; a {kind} file has {', '.join(spec)}")
    for key, value in data.items():
        allowed = spec[key][0]
        if type(value) not in allowed:  # not isinstance: JSON's true is no whole number
            wanted = " or ".join(_JSON_TYPES[t] for t in allowed)
            raise CorpusError(f"{path}: {key!r} must be {wanted}, not {_JSON_TYPES[type(value)]}")
    return kind


def _case(path: Path, where: str, data: Any, limits: Limits) -> Case:
    """The case at ``where`` (an id or an object), valid and within ``limits``."""
    if not isinstance(data, (str, dict)):
        raise CorpusError(f"{path}: {where} must be a case id or an object, not {_JSON_TYPES[type(data)]}")
    try:
        case = Case.from_id(data) if isinstance(data, str) else Case.from_dict(data)
        limits.check(case)
    except CaseError as error:
        raise CorpusError(f"{path}: {where}: {error}") from None
    return case


def _finding(path: Path, data: dict[str, Any], limits: Limits) -> Finding:
    failure, needs, untried = data["failure"], data.get("needs", []), data.get("untried", [])
    if (
        set(failure) - {"kind", "message"}
        or failure.get("kind") not in KINDS
        or not isinstance(failure.get("message", ""), str)
    ):
        raise CorpusError(
            f"{path}: 'failure' must be an object with a 'kind' (one of harness.model.verdict.KINDS) "
            "and a 'message', a string"
        )
    if not all(isinstance(need, str) for need in (*needs, *untried)):
        raise CorpusError(f"{path}: 'needs' and 'untried' must be lists of feature names")
    case = _case(path, "case", data["case"], limits)
    if data.get("id", case.id) != case.id:
        raise CorpusError(f"{path}: 'id' {_shown(data['id'])} does not match 'case' ({case.id})")
    made = {"generator": GENERATOR, "seed": case.seed, "kind": case.data}
    if data.get("data", made) != made:
        raise CorpusError(
            f"{path}: 'data' {_shown(data['data'])} does not match the case and this "
            f"harness ({made}): its tensors would not be the ones it was found with"
        )
    implementation = data["implementation"]
    verdict = Verdict(FAILED, failure["kind"], failure.get("message", ""), data["signature"])
    return Finding(
        implementation,
        case,
        verdict,
        data.get("shrunk", True),
        frozenset(needs),
        data.get("reproducible", True),
        tuple(_symptom(path, implementation, item, limits) for item in data.get("also_seen_as", [])),
        data.get("found", {}),
        frozenset(untried),
    )


def _symptom(path: Path, implementation: str, data: Any, limits: Limits) -> Finding:
    fields = {"kind": str, "signature": str, "message": str, "case": str}
    if (
        not isinstance(data, dict)
        or set(data) != set(fields)
        or not all(isinstance(data[key], wanted) for key, wanted in fields.items())
        or data["kind"] not in KINDS
    ):
        raise CorpusError(
            f"{path}: each of 'also_seen_as' must be an object with a 'kind', 'signature', "
            "'message' and 'case', all strings"
        )
    case = _case(path, "also_seen_as", data["case"], limits)
    verdict = Verdict(FAILED, data["kind"], data["message"], data["signature"])
    return Finding(implementation, case, verdict, shrunk=False)


def _shape_set(path: Path, data: dict[str, Any], limits: Limits) -> ShapeSet:
    if not data["cases"]:
        raise CorpusError(f"{path}: 'cases' must be a non-empty list of case ids")
    cases = tuple(_case(path, f"cases[{index}]", item, limits) for index, item in enumerate(data["cases"]))
    return ShapeSet(data["name"], cases)


def load_file(path: Path, limits: Limits = Limits()) -> Finding | ShapeSet:
    """Parse one corpus file; raise `CorpusError`, one line naming the file and what is wrong
    (the field, for a field), for anything but a valid entry or shape set within ``limits``."""
    data = _parse(path, _read(path))
    if _check_fields(path, data) == "shapes":
        return _shape_set(path, data, limits)
    return _finding(path, data, limits)


def _listed(directory: Path, errors: list[str]) -> list[Path]:
    """The ``*.json`` names directly in the corpus folders, dot-files (a save's temporary
    file) left out, in a stable order; nothing else in ``directory`` (the crash journal in
    ``.inflight/``, say) is a corpus file."""
    paths = []
    for folder in (directory / FAILURES, directory / SHAPES):
        try:
            names = sorted(os.listdir(folder))
        except FileNotFoundError:
            continue
        except OSError as error:
            errors.append(f"{folder}: cannot read: {error.strerror}")
            continue
        paths += [folder / name for name in names if name.endswith(".json") and not name.startswith(".")]
    return paths


def load(directory: Path, limits: Limits = Limits()) -> Corpus:
    """Every corpus file in ``directory``, in a stable order; a bad file, or anything that is
    not a regular file inside the corpus (a link out of it included), becomes one error line
    and the others still load."""
    corpus = Corpus()
    if not directory.is_dir():
        corpus.errors.append(f"{directory}: no such corpus directory")
        return corpus
    root = Path(os.path.realpath(directory))
    for path in _listed(directory, corpus.errors):
        try:
            target = Path(os.path.realpath(path))
            if not target.is_relative_to(root):
                raise CorpusError(f"{path}: skipped: a symbolic link out of the corpus (to {clipped(str(target))})")
            item = load_file(path, limits)
        except CorpusError as error:
            corpus.errors.append(str(error))
            continue
        if isinstance(item, Finding):
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


def _stored(path: Path, finding: Finding) -> Finding | str:
    """What ``path`` holds for ``finding``: this bug's stored finding; "free" (nothing, or
    no file: renamed over, or an error if it cannot be, as a directory); or "taken" (a
    regular file that is not this bug's: another bug's, one that is no finding, a newer
    harness's), which is never overwritten."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return "free"
    except FileNotFoundError:
        return "free"
    try:
        existing = load_file(path)
    except CorpusError:
        return "taken"
    return existing if isinstance(existing, Finding) and existing.key == finding.key else "taken"


def _same_bug_interrupted(folder: Path, finding: Finding) -> list[tuple[Path, Finding]]:
    """Stored findings of ``finding``'s bug where one of the two was kept not shrunk from an
    interrupted run: for such a ``finding``, the stored reports that explain it (its case
    has what they need, and it fails their way); for any other, the stored interrupted
    ones it explains."""
    mine = [(path, f) for path, f in _stored_failures(folder) if f.implementation == identity(finding.implementation)]
    if finding.interrupted:
        return [(path, f) for path, f in mine if not f.interrupted and f.explains(finding.verdict, finding.case)]
    return [(path, f) for path, f in mine if f.interrupted and finding.explains(f.verdict, f.case)]


def _stored_failures(folder: Path) -> list[tuple[Path, Finding]]:
    """Each failure file of ``folder`` that can be read, and its finding."""
    found = []
    for path in _listed(folder.parent, []):
        if path.parent == folder:
            try:
                stored = load_file(path)
            except CorpusError:
                continue
            if isinstance(stored, Finding):
                found.append((path, stored))
    return found


def _store(directory: Path, finding: Finding) -> tuple[str, Path, list[Path]]:
    """`save`, the file it kept ``finding`` in, and the files of the same bug kept from an
    interrupted run that it was merged with (removed: ``finding`` is that bug's report)."""
    folder = directory / FAILURES
    names = [folder / name for name in _names(finding)]
    path, text = names[0], json.dumps(to_json(finding), indent=2) + "\n"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with _locked(folder):
            same = _same_bug_interrupted(folder, finding)
            if finding.interrupted and same:
                return "kept", same[0][0], []  # its bug's report is stored: nothing new
            merged = [old for old, _ in same if old not in names]
            for old in merged:
                old.unlink(missing_ok=True)
            held = {name: _stored(name, finding) for name in names}
            for path, stored in held.items():  # this bug's own file, if it has one
                if isinstance(stored, Finding):
                    if size(stored.case) <= size(finding.case) and not stored.interrupted:
                        return "kept", path, merged
                    write_atomically(path, text)
                    return "replaced", path, merged
            free = [name for name, stored in held.items() if stored == "free"]
            if not free:
                raise CorpusError(
                    f"{names[0]}: cannot save: it and {names[1].name} hold other files "
                    "(another bug's, or no finding), which are never overwritten"
                )
            path = free[0]
            outcome = "replaced" if os.path.lexists(path) else "added"
            write_atomically(path, text)
            return outcome, path, merged
    except OSError as error:
        raise CorpusError(f"{path}: cannot save: {error.strerror}") from None


def save(directory: Path, finding: Finding) -> str:
    """Store ``finding`` unless a case at least as small is stored for its bug.

    Returns what happened: "added", "replaced" (a smaller case) or "kept" (not smaller).
    Only this bug's own file is ever replaced: another bug's file under its name, or one
    that is no finding, is left as it is and ``finding`` stored under its longer name.
    Raises `CorpusError`, one line naming the file, when it cannot be written (a directory
    in its place, a full disk), so that the caller can carry on with the next entry.
    """
    return _store(directory, finding)[0]


NOT_SAVED = "corpus: NOT saved: "


def save_findings(findings: Iterable[Finding], seed: int, directory: Path) -> list[str]:
    """Save each of ``findings`` (of the campaign seeded ``seed``) with where and when it was
    found; one line per file saying what happened to it. A finding that could not be saved
    is a line starting `NOT_SAVED` (`unsaved` picks them out) that goes on to the whole
    finding as its corpus file would hold it: printed, it is not lost."""
    lines = []
    found = {**provenance(), "campaign_seed": seed}
    for finding in findings:
        finding = replace(finding, found=found)
        try:
            outcome, path, merged = _store(directory, finding)
            lines.append(f"corpus: {outcome} {path}")
            lines += [f"corpus: merged {stored} (kept from an interrupted run) into it" for stored in merged]
        except CorpusError as error:
            lines.append(f"{NOT_SAVED}{error}\n    as its corpus file would hold it: {json.dumps(to_json(finding))}")
    return lines


def unsaved(lines: Iterable[str]) -> list[str]:
    """The lines of `save_findings` saying that a finding could not be saved."""
    return [line for line in lines if line.startswith(NOT_SAVED)]


def merge(target: Path, sources: list[Path]) -> tuple[dict[str, int], list[str]]:
    """Bring the failures of ``sources`` into ``target``, smallest case per signature wins;
    a file that cannot be read or written is an error, and the others are still merged."""
    counts = {"added": 0, "replaced": 0, "kept": 0}
    errors: list[str] = []
    for source in sources:
        corpus = load(source)
        errors += corpus.errors
        for _, finding in corpus.entries:
            try:
                counts[save(target, finding)] += 1
            except CorpusError as error:
                errors.append(str(error))
    return counts, errors
