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

# The most of one untrusted message (an exception's, a plugin's load error) a text line
# shows: every message the harness writes fits, the 100 kB an implementation may raise
# does not. The JSON report keeps it whole.
MESSAGE_LIMIT = 1000

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


def type_name(thing: object) -> str:
    """The name of ``thing``'s class. Its class may be the code under test's, with a
    metaclass whose ``__name__`` raises (anything, SystemExit included) or is no plain str."""
    try:
        name = type(thing).__name__
    except BaseException:  # not even SystemExit may leave: the caller is reporting
        return "?"
    return name if type(name) is str else "?"


def message(error: BaseException, limit: int = 200, every_line: bool = False) -> str:
    """The first line of ``str(error)``, at most ``limit`` characters (``every_line``: all its
    lines on one, breaks escaped, clipped at ``limit`` saying how much more there was): an
    exception raised by code under test, whose ``__str__`` is that code too, and may itself
    raise anything (SystemExit included: it is a message being read, not a request to
    leave) or return a str subclass whose own methods misbehave. ``str()`` is called once:
    after a time limit went off inside it, a second call would run unbounded."""
    try:
        text = str(error)
        text = text if type(text) is str else str.__str__(text)  # a plain copy of a subclass
    except BaseException as unprintable:  # anything at all: see above
        return f"<unprintable {type_name(error)}: str() raised {type_name(unprintable)}>"
    if every_line:
        return one_line(clipped(text.strip(), limit))
    return (text.strip().splitlines() or [""])[0][:limit]


def clipped(text: str, limit: int = 200) -> str:
    """At most ``limit`` characters of ``text``, saying how many more there were."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"
