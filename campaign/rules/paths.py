"""Names that become file names or URL parts: a campaign name, an address, an input file's stem, an event slug.

A name typed by a user may hold ``/``, ``..``, a leading ``/``, NUL, control or bidi characters, or be
longer than a file system allows in one path component (255 bytes on ext4, APFS, NTFS). :func:`slug`
makes any text one safe, readable component: letters, marks and digits of every script are kept (a
Japanese or Hindi name stays readable), everything else becomes ``-``. With ``url_safe=True`` the same
function makes the ASCII lower-case form event slugs take (``/events/<slug>.ics``).
"""

from __future__ import annotations

import re
import string
import unicodedata

MAX_COMPONENT_BYTES = 255
"""The longest path component (file or directory name) common file systems accept, in UTF-8 bytes."""

# Kept as they are besides letters, marks and digits: what addresses and dotted names are made of. None of
# them can make a component special once the edges are stripped (see slug).
_KEPT = frozenset("@._+-")
# What a URL-safe slug is made of (see slug): nothing that a URL path escapes or gives a meaning to.
_URL_SAFE = frozenset(string.ascii_lowercase + string.digits)
_RUNS = re.compile(r"-{2,}")
_DOTS = re.compile(r"\.{2,}")
_EDGES = "-._+@"


def slug(text: str, *, max_bytes: int = MAX_COMPONENT_BYTES, url_safe: bool = False) -> str:
    """``text`` as one safe path component of at most ``max_bytes`` UTF-8 bytes; may be empty.

    Unicode letters (L), marks (M) and digits (N) and ``@ . _ + -`` are kept, after NFC composition;
    any other run of characters (``/``, ``\\``, spaces, NUL, controls, bidi overrides) becomes one ``-``.
    Runs of dots shrink to one, and the edges lose ``- . _ + @``, so the result is never ``.`` or ``..``,
    never hidden, and never looks like an option. Callers add something unique (an id) where two names
    could give the same slug.

    ``url_safe=True`` keeps only ASCII lower-case letters and digits, for names that go into URLs as they
    are (event slugs: ``/events/<slug>.ics``): text is lower-cased and loses its accents first (``Réunion``
    → ``reunion``), and any other run of characters, dots and ``@ _ +`` included, becomes one ``-``. Such a
    slug is its own slug, which is how a slug given by hand is checked.
    """
    if url_safe:
        # NFKD splits "é" into "e" and a combining accent, which goes; letters with no ASCII base become "-".
        folded = unicodedata.normalize("NFKD", text.lower())
        kept = [ch if ch in _URL_SAFE else "-" for ch in folded if not unicodedata.combining(ch)]
    else:
        kept = [
            ch if ch in _KEPT or unicodedata.category(ch)[0] in "LMN" else "-"
            for ch in unicodedata.normalize("NFC", text)
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
