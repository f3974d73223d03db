"""Seeds derived from seeds: the same in every process, so that a campaign draws the same
cases wherever its parts run."""

from __future__ import annotations

import zlib


def derive_seed(*parts: object) -> int:
    """A stable seed for a sub-run: crc32, the same in every process (unlike hash())."""
    return zlib.crc32("/".join(map(str, parts)).encode())
