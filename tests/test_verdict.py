"""A verdict's vocabulary: statuses and kinds are enums whose members are the words reports
and corpus files have always held, checked by raising (an assert would be gone under -O)."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import pytest

from harness.model.verdict import FAILED, KINDS, PASSED, Kind, Status, Verdict, failure


def test_a_verdict_read_back_from_words_holds_the_enums_and_serialises_as_the_words() -> None:
    verdict = Verdict("failed", "values", "wrong", "values:x")  # type: ignore[arg-type]  # words, as read back
    assert verdict.status is Status.FAILED and verdict.kind is Kind.VALUES
    assert verdict == failure("values", "wrong", "x") and verdict.failed
    assert json.loads(json.dumps(verdict.to_dict())) == {
        "status": "failed",
        "kind": "values",
        "message": "wrong",
        "signature": "values:x",
        "noise": None,
    }
    assert pickle.loads(pickle.dumps(verdict)) == verdict
    assert f"{verdict.status} [{verdict.kind}]" == "failed [values]"
    assert set(KINDS) == set(Kind)


@pytest.mark.parametrize("status, kind", [("passd", None), ("failed", "valuez"), (FAILED, None), (PASSED, "values")])
def test_an_unknown_word_or_a_kind_where_none_belongs_is_refused(status: str, kind: str | None) -> None:
    with pytest.raises(ValueError, match=r"^verdict: "):
        Verdict(status, kind)  # type: ignore[arg-type]  # words, as a corpus file holds them


def test_the_check_holds_under_python_dash_o() -> None:
    ran = subprocess.run(
        [
            sys.executable,
            "-O",
            "-c",
            "from harness.model.verdict import Verdict\n"
            "try:\n    Verdict('failed', None)\nexcept ValueError as e:\n    print('refused', e)\n",
        ],
        capture_output=True,
        text=True,
    )
    assert ran.stdout.startswith("refused verdict: "), (ran.stdout, ran.stderr)
