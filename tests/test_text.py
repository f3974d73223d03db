"""Untrusted text on its way to a terminal: escapes made visible, long strings cut."""

from __future__ import annotations

import pytest

from harness.model.text import clipped, message, one_line, printable


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),  # clear the screen, cursor home
        ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),  # retitle the terminal (OSC)
        ("a\rb", "a\\x0db"),  # carriage return: overwrite what the line said
        ("nul\x00", "nul\\x00"),
        ("\x9b31m", "\\x9b31m"),  # C1 control sequence introducer
        ("abc\u202edef", "abc\\u202edef"),  # right-to-left override
        ("zero\u200bwidth", "zero\\u200bwidth"),
    ],
)
def test_control_and_reordering_characters_are_shown_as_escapes(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_newlines_tabs_and_ordinary_unicode_pass_through() -> None:
    text = "line one\n\tline two: 3×3 kernel, µs, π, 日本"  # noqa: RUF001 (a multiplication sign, on purpose)
    assert printable(text) == text


def test_a_long_string_is_cut_and_says_how_much_was_cut() -> None:
    assert clipped("x" * 100_000, 50) == "x" * 50 + "... (99950 more characters)"
    assert clipped("short", 50) == "short"


def test_a_string_kept_on_one_line_shows_its_line_breaks_as_escapes() -> None:
    assert one_line("bad\nFAILED loop [values] forged\r") == "bad\\nFAILED loop [values] forged\\r"


def test_an_exceptions_message_is_its_first_line_even_when_str_raises() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError

    assert message(ValueError("first\nsecond")) == "first"
    assert message(ValueError("x" * 500), 10) == "x" * 10
    assert message(Unprintable()) == "<unprintable Unprintable: str() raised RuntimeError>"
