"""Text that came from outside the harness, made safe to show a person.

Exception messages come from the code under test, file names and fields from corpus files,
case ids from the command line: all untrusted. On a terminal, an escape sequence in one of
them can move the cursor, clear the screen, retitle the window or recolour everything
after it; a bidirectional override can make a line read differently from what it says;
and a 100 kB id echoed in an error message buries the message. So every such string is
shown through `printable` (and `clipped` where it may be long) on its way to a terminal.
JSON output needs neither: ``json.dumps`` escapes control characters itself.
"""

from __future__ import annotations

import re

# C0 and C1 control characters except tab and newline, DEL, and the Unicode format
# characters that reorder or hide text (bidirectional embeddings, overrides and isolates;
# zero-width characters).
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every control or reordering character written as a visible escape
    (``\\x1b``, ``\\u202e``); newlines and tabs stay as they are."""
    return _UNPRINTABLE.sub(_escaped, text)


def one_line(text: str) -> str:
    """``text`` with its line breaks written as escapes: for a string that must stay on its
    line, a file name or an error, so that it cannot make up lines of a report of its own."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def message(error: BaseException, limit: int = 200) -> str:
    """The first line of ``str(error)``, at most ``limit`` characters: an exception raised by
    code under test, whose ``__str__`` is that code too, and may itself raise."""
    try:
        text = str(error)
    except Exception as unprintable:
        return f"<unprintable {type(error).__name__}: str() raised {type(unprintable).__name__}>"
    return (text.strip().splitlines() or [""])[0][:limit]


def clipped(text: str, limit: int = 200) -> str:
    """At most ``limit`` characters of ``text``, saying how many more there were."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"
