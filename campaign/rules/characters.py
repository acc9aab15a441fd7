"""Control characters: the one definition that settings, names, attributes and headers are checked against.

A control character never belongs in text a person reads: C0 controls (NUL, tab, CR, LF, ESC...) and DEL break
headers and files, C1 controls (U+0080-U+009F) include NEL, a line break for some readers, and CSI (U+009B), a
terminal escape that recolours or rewrites a table; U+2028 and U+2029 are line breaks to Unicode readers.
Settings refuse them (:mod:`campaign.config`), names turn them into spaces (``clean_text``), message headers
too (:mod:`campaign.render.mime`), and custom attributes drop them but keep their layout (tab, CR, LF).
"""

from __future__ import annotations

import re

CONTROL_CHARACTERS = frozenset(chr(c) for c in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029))
"""C0 controls, DEL, C1 controls, and the Unicode line and paragraph separators."""

LAYOUT_CHARACTERS = frozenset("\t\n\r")
"""The controls that lay text out: a custom attribute (an address, a note) keeps them."""


def _character_class(characters: frozenset[str]) -> str:
    """A regular-expression character class matching exactly ``characters``."""
    return "[" + "".join(re.escape(ch) for ch in sorted(characters)) + "]"


CONTROL_CLASS = _character_class(CONTROL_CHARACTERS)
""":data:`CONTROL_CHARACTERS` as a character class, for patterns built on it (``CONTROL_CLASS + "+"``)."""

CONTROL = re.compile(CONTROL_CLASS)
"""Matches one control character."""

ATTRIBUTE_CONTROL = re.compile(_character_class(CONTROL_CHARACTERS - LAYOUT_CHARACTERS))
"""Matches one control character that a custom attribute drops: any but tab, CR and LF."""
