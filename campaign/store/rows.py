"""Mapping rows to domain dataclasses."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from sqlalchemy import Connection, Row, Select

from campaign.rules.references import MAX_ID, is_id_reference

T = TypeVar("T")


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def from_row(cls: type[T], row: Row[Any], **converted: Any) -> T:
    """An instance of the dataclass ``cls`` from the row's columns of the same names.

    ``converted`` gives the fields that need more than a copy (an enum from its text, a tuple from JSON);
    fields the row does not have keep their defaults.
    """
    m = row._mapping
    values = {name: m[name] for name in _field_names(cls) if name in m}
    values.update(converted)
    return cls(**values)


def find_by_reference(
    conn: Connection, query: Select[Any], id_column: Any, name_column: Any, ref: str
) -> Row[Any] | None:
    """The row a command-line reference names: by id when ``ref`` is ASCII digits, else by name
    (:mod:`campaign.rules.references`); spaces around ``ref`` do not count, as names never have them.

    All-digit names are refused since ids and names could be confused; one made before that (an upgraded
    database) is still found by its name when no row has that id. An id too large for the database names
    nothing, rather than overflowing the driver.
    """
    ref = ref.strip()
    if is_id_reference(ref) and int(ref) <= MAX_ID:
        row = conn.execute(query.where(id_column == int(ref))).first()
        if row is not None:
            return row
    return conn.execute(query.where(name_column == ref)).first()
