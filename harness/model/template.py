"""An exception message with what changes from case to case taken out: its template.

One raise site raising one message is one bug, however many shapes it is seen on: "shapes
(1,2) and (3,2) not aligned" and "shapes (4,1) and (2,1) not aligned" are the same failure,
and "cannot reshape array of size 0 into shape (0,newaxis)" the same as size 12 into shape
(3,4). So messages are compared by their template: numbers, shapes (a bracketed list of
numbers, of any length, and the sizes written 3x3) and addresses (``0x7f...``) abstracted.
The message itself is kept whole in reports; only the comparison uses the template.

A number inside a word (``float32``, ``conv2d``, ``int64``) is part of the word: messages
that differ in a dtype or a function's name are different messages.
"""

from __future__ import annotations

import re

_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]+\b")
_SIZES = re.compile(r"(?<![\w.])\d+(?:\s*[x\u00d7]\s*\d+)+(?![\w.])")  # 3x3, 2 x 4 x 4
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w])")
# A bracketed list of abstracted numbers and the placeholders shapes are written with.
_ELEMENT = r"(?:#|None|newaxis|\?|\.\.\.|-)"
_SHAPE = re.compile(rf"(?:torch\.Size\()?[\(\[]\s*(?:{_ELEMENT}(?:\s*,\s*{_ELEMENT})*\s*,?)?\s*[\)\]]\)?")


def template(message: str) -> str:
    """``message`` with its numbers, shapes and addresses abstracted (``#``, ``(#)``, ``0x#``)."""
    message = _ADDRESS.sub("0x#", message)
    message = _SIZES.sub("#", message)
    message = _NUMBER.sub("#", message)
    return _SHAPE.sub("(#)", message)
