"""How a command-line reference to a stored thing is read: ASCII digits are an id, anything else a name.

``campaign show 12`` is campaign 12 and ``campaign show webinar-2020`` the one named so. Names (and event
slugs) of ASCII digits only are refused when they are created, so that every reference means one thing.
Other digits (``²``, ``١٢``) are names: ``int()`` would refuse some of them and read others.
"""

from __future__ import annotations

# The largest id SQLite and PostgreSQL (bigint) hold; a longer number names nothing (and would overflow).
MAX_ID = 2**63 - 1


def is_id_reference(ref: str) -> bool:
    """Whether ``ref`` is read as an id: ASCII digits only."""
    return ref.isascii() and ref.isdigit()
