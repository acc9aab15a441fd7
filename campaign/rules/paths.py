"""Names that become file names: a campaign name, an address, an input file's stem.

A name typed by a user may hold ``/``, ``..``, a leading ``/``, NUL, control or bidi characters, or be
longer than a file system allows in one path component (255 bytes on ext4, APFS, NTFS). :func:`slug`
makes any text one safe, readable component: letters, marks and digits of every script are kept (a
Japanese or Hindi name stays readable), everything else becomes ``-``.
"""

from __future__ import annotations

import re
import unicodedata

MAX_COMPONENT_BYTES = 255
"""The longest path component (file or directory name) common file systems accept, in UTF-8 bytes."""

# Kept as they are besides letters, marks and digits: what addresses and dotted names are made of. None of
# them can make a component special once the edges are stripped (see slug).
_KEPT = frozenset("@._+-")
_RUNS = re.compile(r"-{2,}")
_DOTS = re.compile(r"\.{2,}")
_EDGES = "-._+@"


def slug(text: str, *, max_bytes: int = MAX_COMPONENT_BYTES) -> str:
    """``text`` as one safe path component of at most ``max_bytes`` UTF-8 bytes; may be empty.

    Unicode letters (L), marks (M) and digits (N) and ``@ . _ + -`` are kept, after NFC composition;
    any other run of characters (``/``, ``\\``, spaces, NUL, controls, bidi overrides) becomes one ``-``.
    Runs of dots shrink to one, and the edges lose ``- . _ + @``, so the result is never ``.`` or ``..``,
    never hidden, and never looks like an option. Callers add something unique (an id) where two names
    could give the same slug.
    """
    kept = [
        ch if ch in _KEPT or unicodedata.category(ch)[0] in "LMN" else "-" for ch in unicodedata.normalize("NFC", text)
    ]
    made = _DOTS.sub(".", _RUNS.sub("-", "".join(kept))).strip(_EDGES)
    return _cut(made, max_bytes).rstrip(_EDGES)


def numbered_slug(number: int, text: str) -> str:
    """``<number>-<slug of text>`` within one component: a readable name that stays unique when ``number`` is
    (a campaign's id: two names that slug alike, or an all-punctuation one, still get their own)."""
    prefix = str(number)
    made = slug(text, max_bytes=MAX_COMPONENT_BYTES - len(prefix) - 1)
    return f"{prefix}-{made}" if made else prefix


def file_name(stem: str, suffix: str) -> str:
    """``stem + suffix``, the stem shortened (on a character boundary) so the whole fits in one component.

    For names already safe as a component (an input file's own name); use :func:`slug` for anything else.
    """
    return _cut(stem, MAX_COMPONENT_BYTES - len(suffix.encode())) + suffix


def _cut(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes, never inside a character."""
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    return encoded[: max(max_bytes, 0)].decode(errors="ignore")
