"""Mapping rows to domain dataclasses."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Row, false

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


def reference_condition(id_column: Any, name_column: Any, ref: str) -> ColumnElement[bool]:
    """The WHERE condition for a command-line reference: the id when ``ref`` is ASCII digits, else the name
    (:mod:`campaign.rules.references`). Spaces around ``ref`` do not count, as names never have them; an id
    too large for the database names nothing (rather than overflowing the driver)."""
    ref = ref.strip()
    if not is_id_reference(ref):
        by_name: ColumnElement[bool] = name_column == ref
        return by_name
    by_id: ColumnElement[bool] = id_column == int(ref) if int(ref) <= MAX_ID else false()
    return by_id
