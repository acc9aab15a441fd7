"""Kept reports: what the dashboard counted, written to the database so that a restarted server answers its first
page at once from the last count (and counts again in the background), instead of keeping a person waiting the
seconds a campaign of a million messages takes to count.

Contract:

* :class:`Snapshots` keeps values of one frozen dataclass type ``T`` (a report and what its page needs) under
  string keys: :meth:`Snapshots.save` writes one with the instant its counting began, :meth:`Snapshots.load`
  reads it back equal to what was saved (a test compares the two), or None when nothing is kept, when what is
  kept is of another :data:`SHAPE` (written by another version of this program) or cannot be read as ``T``:
  a kept report is only ever a head start, never an error.
* Values go to JSON through the dataclasses' own type hints (:func:`to_json`, :func:`from_json`): no pickle, so a
  row of the database can only ever become data, never code. Instants keep their zone (an hour of the hourly
  series is labelled in the zone it was counted in).
* Snapshots not written for :data:`KEPT_FOR` are deleted when another is written: views nobody opens go away.
* :meth:`Snapshots.clear` deletes every one, after an action that changes what they count (a retry).

Why the database and not a file: every server of an installation (several on PostgreSQL) then starts from the same
counts, and nothing is written outside the configured places. The peers do the same: listmonk keeps its dashboard's
slow counts in materialized views refreshed on a schedule.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import types
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import Enum
from functools import cache
from typing import Any, Generic, TypeVar, Union, get_args, get_origin, get_type_hints
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from campaign.store import report_snapshots as snapshot_store
from campaign.store.engine import Database
from campaign.store.report_snapshots import StoredSnapshot

SHAPE = "campaign-report-snapshot/2"
"""The version of the kept JSON: change it when a dataclass kept changes, and older rows are no longer read."""
KEPT_FOR = timedelta(days=7)
"""How long a snapshot nobody refreshes is kept."""

T = TypeVar("T")
log = logging.getLogger(__name__)


class Snapshots(Generic[T]):
    """Values of the dataclass ``kind`` kept in the database (see the module doc)."""

    def __init__(self, db: Database, kind: type[T]) -> None:
        if not dataclasses.is_dataclass(kind):
            raise TypeError(f"{kind!r} is not a dataclass")
        self.db = db
        self.kind = kind

    def load(self, key: str) -> tuple[T, datetime] | None:
        """The value kept under ``key`` and when its counting began, or None (see the module doc)."""
        with self.db.read() as conn:
            stored = snapshot_store.find(conn, key)
        if stored is None or stored.shape != SHAPE:
            return None
        try:
            return from_json(self.kind, json.loads(stored.body)), stored.computed_at
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("the kept report %r could not be read (%s); it will be counted again", key, exc)
            return None

    def save(self, key: str, value: T, computed_at: datetime) -> None:
        """Keep ``value`` under ``key`` (in place of the one kept before), and forget those :data:`KEPT_FOR` old."""
        body = json.dumps(to_json(value), separators=(",", ":"))
        with self.db.write() as conn:
            snapshot_store.put(conn, key, StoredSnapshot(SHAPE, computed_at, body))
            snapshot_store.forget_older(conn, computed_at - KEPT_FOR)

    def clear(self) -> None:
        """Forget every kept value."""
        with self.db.write() as conn:
            snapshot_store.forget_all(conn)


def to_json(value: Any) -> Any:
    """``value`` (dataclasses, enums, instants, tuples, mappings and plain values) as JSON data."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"a naive instant cannot be kept: {value!r}")
        zone = value.tzinfo.key if isinstance(value.tzinfo, ZoneInfo) else None
        return [value.astimezone(UTC).isoformat(), zone]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        # Pairs, not an object: keys may be enums or numbers, which JSON objects would turn into strings.
        return [[to_json(k), to_json(v)] for k, v in value.items()]
    if isinstance(value, tuple | list):
        return [to_json(item) for item in value]
    raise TypeError(f"{type(value).__name__} cannot be kept as JSON")


def from_json(kind: Any, data: Any) -> Any:
    """The value of type ``kind`` that :func:`to_json` wrote as ``data``; TypeError or ValueError when ``data``
    is not one."""
    origin = get_origin(kind)
    if origin is Union or origin is types.UnionType:
        options = [arg for arg in get_args(kind) if arg is not type(None)]
        if data is None and len(options) < len(get_args(kind)):
            return None
        if len(options) != 1:
            raise TypeError(f"only X | None unions can be read, not {kind!r}")
        return from_json(options[0], data)
    if kind is Any:
        return data
    if origin in (tuple, list):
        args = get_args(kind)
        items = [from_json(args[0], item) for item in _list(data)] if len(args) == 2 and args[1] is Ellipsis else None
        if items is None:
            items = [from_json(arg, item) for arg, item in zip(args, _list(data), strict=True)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping):
        key_kind, value_kind = get_args(kind)
        return {from_json(key_kind, k): from_json(value_kind, v) for k, v in _list(data)}
    if isinstance(kind, type):
        return _plain(kind, data)
    raise TypeError(f"cannot read a {kind!r}")


def _plain(kind: type, data: Any) -> Any:
    """A value of a class: a dataclass, an enum, an instant, or a plain JSON type."""
    if dataclasses.is_dataclass(kind):
        if not isinstance(data, dict):
            raise TypeError(f"a {kind.__name__} is an object, not {type(data).__name__}")
        hints = _hints(kind)
        return kind(**{f.name: from_json(hints[f.name], data[f.name]) for f in dataclasses.fields(kind) if f.init})
    if issubclass(kind, Enum):
        return kind(data)
    if kind is datetime:
        text, zone = _list(data)
        moment = datetime.fromisoformat(text)
        try:
            return moment.astimezone(ZoneInfo(zone)) if zone else moment
        except ZoneInfoNotFoundError:
            return moment  # a zone this machine lacks: the same instant, in UTC
    if kind is float and isinstance(data, int | float) and not isinstance(data, bool):
        return float(data)
    if kind is int and isinstance(data, bool):
        raise TypeError("a number was expected, not true or false")
    if isinstance(data, kind):
        return data
    raise TypeError(f"a {kind.__name__} was expected, not {type(data).__name__}")


def _list(data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise TypeError(f"a list was expected, not {type(data).__name__}")
    return data


@cache
def _hints(kind: type) -> dict[str, Any]:
    """A dataclass's field types, resolved once (its module's names; ``from __future__ import annotations``)."""
    return get_type_hints(kind)
