"""How a command-line reference to a stored thing is read: ASCII digits are an id, anything else a name.

``campaign show 12`` is campaign 12 and ``campaign show webinar-2020`` the one named so. Names (and event
slugs) of ASCII digits only are refused when they are created, so that every reference means one thing.
Other digits (``²``, ``١٢``) are names: ``int()`` would refuse some of them and read others.
"""

from __future__ import annotations

from campaign.exceptions import ValidationError

# The largest id SQLite and PostgreSQL (bigint) hold; a longer number names nothing (and would overflow).
MAX_ID = 2**63 - 1
# The longest campaign or list name (their columns' size): a name is something people type and read in
# tables; SQLite would store any length, and a campaign's name also becomes its List-Id description.
MAX_NAME_LENGTH = 200


def is_id_reference(ref: str) -> bool:
    """Whether ``ref`` is read as an id: ASCII digits only."""
    return ref.isascii() and ref.isdigit()


def refuse_all_digit_name(name: str, *, what: str, thing: str, fix: str) -> None:
    """Raise :class:`ValidationError` when a new name would be read as an id (:func:`is_id_reference`).

    ``what`` names the value ("campaign name"), ``thing`` what the ids are of ("a campaign"), ``fix`` what to do.
    """
    if is_id_reference(name):
        raise ValidationError(f"{what} {name!r} is all digits, which commands read as {thing} id; {fix}")


def refuse_long_name(name: str, *, what: str) -> None:
    """Raise :class:`ValidationError` when ``name`` is longer than :data:`MAX_NAME_LENGTH` characters."""
    if len(name) > MAX_NAME_LENGTH:
        raise ValidationError(f"{what} is {len(name)} characters long; give one of at most {MAX_NAME_LENGTH}")
