"""A record's version as an edit form carries it: a digest of the stored values the form shows and saves.

Contract:

* :func:`version_of` is a short hex digest of a mapping of plain values (text, numbers, None, instants, lists
  of these): the same values give the same version in every process and on either database, other values
  another one.
* A version is of values, not of a time: a record changed and changed back is the same version again, and
  rightly so (saving over it loses nothing), and a record needs no column of its own for it (a wave has no
  ``updated_at``). What the mapping holds is the caller's choice: the values its form edits, nothing else (an
  attendee report imported meanwhile must not refuse an event's edit).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime

VERSION_LENGTH = 32
"""Hex digits a version keeps: 128 bits, far past any chance of two versions of one record colliding."""


def version_of(values: Mapping[str, object]) -> str:
    """The version of a record whose edited values are ``values``; see the module doc."""
    text = json.dumps(values, sort_keys=True, ensure_ascii=True, separators=(",", ":"), default=_plain)
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:VERSION_LENGTH]


def _plain(value: object) -> object:
    """An instant as its UTC text (one text for one instant); a naive one, or anything else, is a bug."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).isoformat()
    raise TypeError(f"not a value a version is made of: {value!r}")
