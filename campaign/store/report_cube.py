"""SQL for a report's breakdowns, every one asked for in one pass: the counts of :mod:`campaign.store.reports`
grouped by all the contact fields at once (a "cube"), then added up field by field.

Contract:

* Each query groups by every field asked for (a contact's zone, country, organisation, locale, custom
  attributes) together, in one pass over its rows: the messages once (each beside its contact's fields), what
  each message's recipient did (:data:`~campaign.store.reports.FACTS`) once, who registered
  (:data:`~campaign.store.reports.PEOPLE`) once, however many breakdowns the report shows. Its rows are the
  combinations of values the contacts have (thousands, not one per message).
* A group of one field is the sum of the combinations holding its value. That is exact for every count here: a
  message counts in one combination, and so does a person (a contact has one value of each field), so a count of
  people (registered, joined) never counts one person in two combinations of the same group. The adding up is
  the database's too, over those aggregated rows (kept in a temporary table), never over messages.
* On SQLite the messages' counts go into that table row by row, each added to its combination's row
  (``INSERT ... ON CONFLICT DO UPDATE``; :func:`_summed`): SQLite has no hash aggregate, and sorting every row
  by five text fields was the costliest statement of a report (1.1 s of 3 at a million messages).
  Where its CPU goes now (``bench/report.py``'s data, five fields, ~1.0 s in all): grouping the messages by
  contact and status 0.35 s, each of the 600,000 rows finding its contact and its fields 0.15-0.2 s, the upserts
  the rest. Tried and not kept: a ``WITHOUT ROWID`` cube (1.07 s against 1.03); each message upserted with an
  integer key of its combination found in a table of the distinct combinations (1.3 s for the upserts alone,
  0.3 s more for the table); a row per contact with one sum per status instead of grouping by status too (1.55 s:
  the nine CASEs a message cost more than the sort they save).
* The numbers are those the functions of the same names in :mod:`campaign.store.reports` give one field at a
  time, with the same keys (the same SQL expression of each field). :func:`engagement` and :func:`registered`
  read :func:`~campaign.store.reports.prepare`'s tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    case,
    distinct,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from campaign.models import CONFIRMED_SOURCES, RegistrationSource

# The same expressions and columns the one-field queries use: the keys and numbers are theirs.
from campaign.store.reports import (
    _FLAGS,
    _SENT,
    EXPIRED_AFTER_ATTEMPTS,
    FACTS,
    PEOPLE,
    TRIED_AND_EXPIRED,
    By,
    Engagement,
    Registered,
    Scope,
    _key,
    _scoped,
)
from campaign.store.tables import attendances, contacts, messages


@dataclass(frozen=True, slots=True)
class Fields:
    """The breakdowns asked for (each a :class:`~campaign.store.reports.By` naming a contact field), and the
    distinct SQL expressions they group by (``attr:Job Title`` and ``attr:job_title`` are one)."""

    wanted: tuple[By, ...]

    @property
    def distinct(self) -> tuple[By, ...]:
        """Each field once, in the order first asked for."""
        return tuple(dict.fromkeys(self.wanted))

    def columns(self) -> list[Any]:
        """The grouping expressions of :attr:`distinct`, labelled ``k0``, ``k1`` ...: they need ``contacts``."""
        return [_key(by).label(f"k{i}") for i, by in enumerate(self.distinct)]

    def positions(self) -> list[int]:
        """For each field wanted, the position of its expression among :meth:`columns`."""
        order = {by: i for i, by in enumerate(self.distinct)}
        return [order[by] for by in self.wanted]


def _cube(
    conn: Connection, stmt: Any, contact_id: Any, fields: Fields, extra: Sequence[Any] = ()
) -> list[dict[tuple[Any, ...], list[int]]]:
    """``stmt`` (integer aggregates that add up over disjoint sets of contacts, selected from a source holding
    ``contact_id``) grouped by every field at once and by ``extra``; then, for each field wanted, its groups:
    (the field's value, *the extra values) → the aggregates added up over the combinations with that value.

    With one field the grouping is the answer. With several, the combinations go into a temporary table and each
    field's groups are added up from it by the database: the combinations are as many as the contacts at worst
    (an organisation of its own each), too many to add up in Python."""
    keys = fields.columns()
    # On SQLite, unary + keeps the planner from reading every contact in the order of an index on a field (to
    # group without sorting) and looking each up in the source: the source's rows are fewer, each finds its contact.
    if conn.dialect.name == "sqlite":
        contact_id = literal_column(f"+{contact_id.table.name}.{contact_id.name}")
    extras = [e.label(f"e{i}") for i, e in enumerate(extra)]
    values = [c.label(f"v{i}") for i, c in enumerate(stmt.selected_columns)]
    grouped = (
        stmt.join(contacts, contacts.c.id == contact_id)
        .with_only_columns(*keys, *extras, *values)
        .group_by(*(c.element for c in (*keys, *extras)))
    )
    if len(keys) == 1:
        return [_groups(conn.execute(grouped), len(extras))] * len(fields.wanted)
    cube = Table(
        "report_cube",
        MetaData(),
        *(Column(c.name, String()) for c in (*keys, *extras)),
        *(Column(c.name, BigInteger()) for c in values),
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DROP",
    )
    cube.drop(conn, checkfirst=True)
    cube.create(conn)
    conn.execute(insert(cube).from_select([c.name for c in cube.columns], grouped))
    each = []
    for key in keys:
        by = [cube.c[key.name], *(cube.c[e.name] for e in extras)]
        rolled = select(*by, *(func.sum(cube.c[v.name]) for v in values)).group_by(*by)
        each.append(_groups(conn.execute(rolled), len(extras)))
    cube.drop(conn)
    return [each[at] for at in fields.positions()]


# No field's value (text or a number) equals a blob: on SQLite, the key of contacts without a value in the cube.
_NONE: Any = literal_column("X'00'")


def _summed(
    conn: Connection, source: Any, contact_id: Any, fields: Fields, values: Sequence[Any], extra: Sequence[Any] = ()
) -> list[dict[tuple[Any, ...], list[int]]]:
    """What :func:`_cube` gives for the sums of ``values`` (integers, one per row of ``source``, which holds
    ``contact_id``), counted differently on SQLite: there each row is added into its combination's row of the
    cube as it comes (``INSERT ... ON CONFLICT DO UPDATE``, a B-tree of the few combinations searched per row)
    rather than every row sorted by the combination first, as a GROUP BY of SQLite does (it has no hash
    aggregate). Measured on the breakdowns' message counts of ``bench/report.py`` (650,000 rows per contact and
    status, five fields): 1.45 s of CPU instead of 1.9 s on a busy machine."""
    if conn.dialect.name != "sqlite":
        return _cube(conn, select(*(func.sum(v) for v in values)).select_from(source), contact_id, fields, extra)
    keys = fields.columns()
    # Unary +: each row finds its contact by key (see _cube).
    found: Any = literal_column(f"+{contact_id.table.name}.{contact_id.name}")
    # NULL keys would never conflict (each its own row): the key of a missing value is _NONE until the rollup.
    by = [
        *(func.coalesce(k.element, _NONE).label(k.name) for k in keys),
        *(func.coalesce(e, _NONE).label(f"e{i}") for i, e in enumerate(extra)),
    ]
    sums = [v.label(f"v{i}") for i, v in enumerate(values)]
    cube = Table(
        "report_cube",
        MetaData(),
        *(Column(c.name, String()) for c in by),
        *(Column(c.name, BigInteger()) for c in sums),
        UniqueConstraint(*(c.name for c in by)),
        prefixes=["TEMPORARY"],
    )
    cube.drop(conn, checkfirst=True)
    cube.create(conn)
    # WHERE true: SQLite's parser needs a WHERE between a join and ON CONFLICT.
    rows = select(*by, *sums).select_from(source.join(contacts, contacts.c.id == found)).where(true())
    upsert = sqlite_insert(cube).from_select([c.name for c in cube.columns], rows)
    conn.execute(
        upsert.on_conflict_do_update(
            index_elements=[cube.c[c.name] for c in by],
            set_={c.name: cube.c[c.name] + upsert.excluded[c.name] for c in sums},
        )
    )
    each = []
    for key in keys:
        grouped = [cube.c[key.name], *(cube.c[f"e{i}"] for i in range(len(extra)))]
        rolled = select(*(func.nullif(c, _NONE) for c in grouped), *(func.sum(cube.c[c.name]) for c in sums)).group_by(
            *grouped
        )
        each.append(_groups(conn.execute(rolled), len(extra)))
    cube.drop(conn)
    return [each[at] for at in fields.positions()]


def _groups(rows: Iterable[Any], extras: int) -> dict[tuple[Any, ...], list[int]]:
    """Rows of (a field's value, *``extras`` values, *aggregates) as (value, *extra values) → aggregates."""
    width = 1 + extras
    return {tuple(row[:width]): [int(n or 0) for n in row[width:]] for row in rows}


def message_counts(conn: Connection, scope: Scope, fields: Fields) -> list[list[tuple[Any, str, int]]]:
    """For each field wanted, the scope's messages counted by its value and status, as (key, status, count), and
    the expired that had been tried as (key, ``EXPIRED_AFTER_ATTEMPTS``, count), as
    :func:`campaign.store.reports.message_counts` counts them: one
    pass over the messages whatever the number of fields. They are counted by contact and status first (narrow
    rows, quick to sort), so the contacts' fields are read, and the wide rows of every field sorted, once per
    contact rather than once per message (a third less work with two waves, more with more)."""
    per_contact = (
        select(messages.c.contact_id, messages.c.status, func.count().label("n"))
        .where(*_scoped(scope))
        .group_by(messages.c.contact_id, messages.c.status)
        .subquery("per_contact")
    )
    # The expired ones that had been tried, apart (see campaign.store.reports.TRIED_AND_EXPIRED): a few rows.
    tried = (
        select(messages.c.contact_id, func.count().label("n"))
        .where(*_scoped(scope), TRIED_AND_EXPIRED)
        .group_by(messages.c.contact_id)
        .subquery("tried")
    )
    states = _summed(conn, per_contact, per_contact.c.contact_id, fields, [per_contact.c.n], [per_contact.c.status])
    expired = _summed(conn, tried, tried.c.contact_id, fields, [tried.c.n], [])
    return [
        [(key, status, counts[0]) for (key, status), counts in found.items()]
        + [(key, EXPIRED_AFTER_ATTEMPTS, counts[0]) for (key,), counts in also.items() if counts[0]]
        for found, also in zip(states, expired, strict=True)
    ]


def engagement(conn: Connection, fields: Fields) -> list[list[Engagement]]:
    """For each field wanted, what the recipients of the scope's messages did, by its value. Reads
    :func:`~campaign.store.reports.prepare`'s tables."""
    return [
        [Engagement(key, *counts) for (key,), counts in found.items()]
        for found in _summed(conn, FACTS, FACTS.c.contact_id, fields, [FACTS.c[c] for c in _FLAGS])
    ]


def registered(conn: Connection, fields: Fields) -> list[list[Registered]]:
    """For each field wanted, recipients who registered after their first message in scope, by its value. Reads
    :func:`~campaign.store.reports.prepare`'s tables."""
    sources = list(RegistrationSource)
    confirmed = [s.value for s in CONFIRMED_SOURCES]
    values = [
        literal(1),
        *(PEOPLE.c[s.value] for s in sources),
        case((or_(*(PEOPLE.c[s] == 1 for s in confirmed)), 1), else_=0),
    ]
    return [
        [_registered(key, sources, counts) for (key,), counts in found.items()]
        for found in _summed(conn, PEOPLE, PEOPLE.c.contact_id, fields, values)
    ]


def _registered(key: Any, sources: Iterable[RegistrationSource], counts: list[int]) -> Registered:
    total, *by_source, confirmed = counts
    return Registered(key, total, dict(zip(sources, by_source, strict=True)), confirmed)


def joined(conn: Connection, scope: Scope, fields: Fields) -> list[dict[Any, int]]:
    """For each field wanted, recipients of the scope's delivered messages who joined the event, by its value
    (as :func:`~campaign.store.reports.joined` counts them: each contact once). Groups without any are absent."""
    stmt = (
        select(func.count(distinct(attendances.c.contact_id)))
        .select_from(attendances.join(messages, messages.c.contact_id == attendances.c.contact_id))
        # On SQLite the scope's waves are kept off ix_messages_due (unary +): from the event's attendances (an
        # index range), each contact's messages found by contact, not every sent message of the campaign read.
        .where(
            attendances.c.event_id == scope.event_id,
            messages.c.status == _SENT,
            *_scoped(scope, indexed=conn.dialect.name != "sqlite"),
        )
    )
    return [
        {key: counts[0] for (key,), counts in found.items()}
        for found in _cube(conn, stmt, attendances.c.contact_id, fields)
    ]
