"""How counts are worded in what people read (the command line's lines, errors and warnings): ``1 row``,
``2 rows``, never ``1 row(s)`` or ``1 rows``."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun`` in the number it takes: ``1 row``, ``2 rows``; ``plural`` when it is not the noun and
    an s (``counted(2, "not a contact", "not contacts")``)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
