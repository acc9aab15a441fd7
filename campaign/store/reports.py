"""SQL for reports: what happened to a campaign's messages, and what their recipients did, counted by the database.

Contract:

* Every function aggregates in SQL (GROUP BY; ORDER BY with OFFSET for a percentile) and returns one row per
  group, never one per message: a report of a million messages reads a few hundred rows. Instants come back
  timezone-aware.
* A :class:`Scope` names the messages counted: the campaign's waves (or one of them) and, with ``since`` /
  ``until``, those whose time (their sending; for one not sent, its scheduled time) lies in ``[since, until)``.
  What their recipients did is counted whenever it happened, so every rate is over the same messages.
* A message is *opened by a person* when a person opened it or clicked one of its links (with images blocked no
  open is ever seen: a click implies it, as the ``opened`` audience says); *opened by a machine* when a privacy
  proxy or scanner fetched its pixel; *clicked* by a person or a machine likewise. Each is counted once per
  message however many hits it had.
* A recipient *registered* when a registration of theirs for the campaign's event (any source) dates from their
  first delivered message in scope or later: what the campaign may claim. For one wave, from that wave's message.
  Sources are counted apart (one contact may be known by two).
* A recipient *joined* when a message in scope was delivered to them and the event's attendee report, imported,
  says they attended (:func:`joined`; the event comes after its invitations, so no order is asked).
* One report is one read transaction: :func:`snapshot` first (on PostgreSQL the statements then see one
  snapshot, as SQLite's read transaction does anyway), then :func:`prepare`, which works out once what each
  message's recipient did (one pass over ``message_activity``, which the database keeps from the tracking
  events: see :func:`_facts`) and who registered after the campaign reached them (from the event's registrations,
  each contact's messages found by contact), into temporary tables of this connection, and :func:`release` at
  the end. The functions that say so read those tables: the costly part of a report is done once, not once per
  table of it. The two halves (what recipients did: :data:`FACTS`; who registered: :data:`PAIRS`,
  :data:`PEOPLE`) are independent: two connections reading one snapshot may each prepare one half and read it
  (``prepare(facts=False)`` ...).
* :func:`local_hours` puts people's first opens and registrations into the local hour of the day of each
  contact's own zone: the zones' UTC offsets over the report's activity go into one more temporary table
  (a few rows per zone, :mod:`campaign.rules.zone_offsets`), and each instant is shifted by its zone's offset
  then, in SQL: one row per zone and hour comes back.

``counts`` and ``status_counts`` (the delivery state of each wave, for ``campaign show``, ``status`` and
``send``) are the same kind of question, and live here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    distinct,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
    type_coerce,
)
from sqlalchemy.schema import CreateTable

from campaign.models import CONFIRMED_SOURCES, Breakdown, MessageStatus, RegistrationSource, TrackingKind
from campaign.rules.zone_offsets import OffsetSpan
from campaign.store.dialect import epoch_seconds
from campaign.store.outbox import PENDING
from campaign.store.tables import (
    BigId,
    UTCDateTime,
    attendances,
    contacts,
    due_at,
    links,
    message_activity,
    messages,
    registrations,
    tracking_events,
    waves,
)

QUARTER_HOUR = 900
"""Seconds per time bucket the database counts in: every zone's offset is a whole number of quarter hours
(Asia/Kolkata +05:30, Asia/Kathmandu +05:45), so each bucket lies in one local hour of any zone."""

_SENT = MessageStatus.SENT.value
EXPIRED_AFTER_ATTEMPTS = "expired-after-attempts"
"""The rows of :func:`message_counts` that count, of the ``expired`` messages (counted with the other states),
those that had been tried (deferred, then their lifetime ended): handed to a server, they count among the
messages attempted, where an expired one never tried (its send window never opened before it expired) does not."""
TRIED_AND_EXPIRED = and_(messages.c.status == MessageStatus.EXPIRED.value, messages.c.attempts > 0)
"""The messages :data:`EXPIRED_AFTER_ATTEMPTS` counts. Counted by a query of their own: read beside the states,
``attempts`` made SQLite read every message's row instead of the index that holds its wave and state (0.1 s ->
0.8 s of CPU for the states of ``bench/report.py``'s million messages); alone, only the expired ones' rows."""
_UNDELIVERED = tuple(
    s.value for s in (MessageStatus.DEFERRED, MessageStatus.BOUNCED, MessageStatus.FAILED, MessageStatus.EXPIRED)
)


@dataclass(frozen=True, slots=True)
class Scope:
    """The messages a report counts: those of ``wave_ids`` (a campaign's waves, or one), and with ``since`` /
    ``until`` those whose time lies in ``[since, until)``. ``event_id`` is the campaign's event (registrations
    name it); ``register_link`` the name of the registration link in the ``links`` table."""

    event_id: int
    wave_ids: tuple[int, ...]
    register_link: str
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class By:
    """How rows are grouped: one row for the whole scope (the default), one per wave (``wave``), or one per value
    of a contact's field (``breakdown``; for :attr:`Breakdown.ATTRIBUTE`, the custom ``attribute`` named)."""

    wave: bool = False
    breakdown: Breakdown | None = None
    attribute: str | None = None


TOTAL = By()
WAVES = By(wave=True)

_CONTACT_FIELDS = {
    Breakdown.ZONE: contacts.c.timezone,
    Breakdown.COUNTRY: contacts.c.country,
    Breakdown.ORGANISATION: contacts.c.organisation,
    Breakdown.LOCALE: contacts.c.locale,
}


@dataclass(frozen=True, slots=True)
class Engagement:
    """What the recipients of one group's messages did: messages opened, clicked, the registration link clicked
    (by people), opened and clicked by machines, and unsubscribed from."""

    key: Any
    human_opened: int = 0
    machine_opened: int = 0
    human_clicked: int = 0
    machine_clicked: int = 0
    register_clicked: int = 0
    unsubscribed: int = 0


@dataclass(frozen=True, slots=True)
class Registered:
    """Recipients of one group who registered after a message reached them: in all, by source, and those the
    webinar platform confirmed (by one of :data:`~campaign.models.CONFIRMED_SOURCES`)."""

    key: Any
    total: int = 0
    by_source: dict[RegistrationSource, int] | None = None
    confirmed: int = 0


@dataclass(frozen=True, slots=True)
class LinkClicks:
    """Clicks on one link of one wave: messages it was clicked in by people and by machines, and people's clicks."""

    wave_id: int
    link_index: int | None
    name: str | None
    url: str | None
    human: int
    machine: int
    clicks: int


@dataclass(frozen=True, slots=True)
class Delays:
    """How long after delivery something first happened, in seconds: how many, the median and the 90th
    percentile (nearest rank: values that occurred; None when none did)."""

    count: int = 0
    median: int | None = None
    p90: int | None = None


@dataclass(frozen=True, slots=True)
class Undelivered:
    """A message that did not reach its recipient (deferred, bounced, failed, expired), with the server's reply."""

    email: str
    wave: str
    status: str
    attempts: int
    smtp_reply: str | None
    error: str | None
    at: datetime


def snapshot(conn: Connection) -> None:
    """Make the rest of this transaction read one snapshot (PostgreSQL; SQLite's read transactions already do).
    Call it first in the transaction."""
    if conn.dialect.name == "postgresql":
        # Not READ ONLY: PostgreSQL refuses to create even a temporary table in a read-only transaction.
        conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        # Compiling a report's few big statements costs more than it saves (a quarter of a second measured).
        conn.execute(text("SET LOCAL jit = off"))


def _scoped(scope: Scope, message: Any = messages, *, indexed: bool = True) -> list[Any]:
    """The conditions that keep ``message``'s rows to the scope: a range of ``ix_messages_due`` per wave (on
    PostgreSQL that index leaves sent messages out, migration 0012, so there the planner may scan instead), or
    with ``indexed`` False (for messages looked up by their key) a plain test SQLite's planner does not read that
    index for (unary ``+``)."""
    wave = message.c.wave_id if indexed else literal_column(f"+{message.name}.wave_id")
    conditions = [wave.in_(scope.wave_ids)]
    when = type_coerce(func.coalesce(message.c.sent_at, message.c.scheduled_at), UTCDateTime())
    if scope.since is not None:
        conditions.append(when >= scope.since)
    if scope.until is not None:
        conditions.append(when < scope.until)
    return conditions


def _key(by: By) -> Any:
    """The grouping expression of ``by`` (None for one row); a contact's field needs ``contacts`` joined."""
    if by.wave:
        return messages.c.wave_id
    if by.breakdown is Breakdown.ATTRIBUTE:
        return contacts.c.attributes[by.attribute or ""].as_string()
    if by.breakdown is not None:
        return _CONTACT_FIELDS[by.breakdown]
    return None


def _grouped(stmt: Any, by: By, key: Any) -> Any:
    """``stmt`` selecting ``key`` first and grouped by it (or one row with a NULL key)."""
    if key is None:
        return stmt.add_columns(literal(None).label("key"))
    return stmt.add_columns(key.label("key")).group_by(key)


def message_counts(conn: Connection, scope: Scope, by: By) -> list[tuple[Any, str, int]]:
    """The scope's messages counted by group and status, as (key, status, count), and as (key,
    :data:`EXPIRED_AFTER_ATTEMPTS`, count) those of the expired that had been tried."""
    key = _key(by)
    source: Any = messages
    if by.breakdown is not None:
        source = messages.join(contacts, contacts.c.id == messages.c.contact_id)
    stmt = select(messages.c.status, func.count()).select_from(source).where(*_scoped(scope))
    stmt = _grouped(stmt, by, key).group_by(messages.c.status)
    counts = [(row.key, row.status, row[1]) for row in conn.execute(stmt)]
    tried = _grouped(select(func.count()).select_from(source).where(*_scoped(scope), TRIED_AND_EXPIRED), by, key)
    return counts + [(row.key, EXPIRED_AFTER_ATTEMPTS, row[0]) for row in conn.execute(tried) if row[0]]


def _flag(condition: Any) -> Any:
    return func.max(case((condition, 1), else_=0))


# Per message with a tracking event in scope: its wave and contact, 0/1 flags, when a person first opened (or
# clicked) it and first clicked it, and how long after its delivery they opened it; instants as seconds since 1970
# (UTC), which buckets and delays are computed from. Temporary: each connection has its own.
_temporary = MetaData()
_FLAGS = ("human_opened", "machine_opened", "human_clicked", "machine_clicked", "register_clicked", "unsubscribed")
FACTS = Table(
    "report_facts",
    _temporary,
    Column("message_id", BigId, primary_key=True),  # on SQLite the rowid: no second B-tree to fill
    Column("wave_id", Integer()),
    Column("contact_id", BigInteger()),
    *(Column(name, Integer()) for name in _FLAGS),
    Column("opened_epoch", BigInteger()),
    Column("clicked_epoch", BigInteger()),
    Column("open_seconds", BigInteger()),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)
# Each registration for the event beside each delivered message in scope to the same contact: what both the
# registrations per wave and per person are counted from (a few rows per registration); with whether a person
# clicked that message's registration link (1 or 0), for the funnel that goes through it.
PAIRS = Table(
    "report_pairs",
    _temporary,
    Column("contact_id", BigInteger()),
    Column("wave_id", Integer()),
    Column("source", String(20)),
    Column("registered_at", UTCDateTime()),
    Column("sent_at", UTCDateTime()),
    Column("register_clicked", Integer()),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)
# Per contact registered for the event at or after their first delivered message in scope: their first
# registration since (seconds since 1970) and how long after that message, and a 0/1 flag per source.
PEOPLE = Table(
    "report_people",
    _temporary,
    Column("contact_id", BigId, primary_key=True),
    Column("registered_epoch", BigInteger()),
    Column("register_seconds", BigInteger()),
    *(Column(s.value, Integer()) for s in RegistrationSource),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)
_TEMPORARY = (FACTS, PAIRS, PEOPLE)
# The UTC offset of each zone over the report's activity (:func:`local_hours`): a few rows per zone.
ZONE_SPANS = Table(
    "report_zone_spans",
    _temporary,
    Column("zone", String(100), primary_key=True),
    Column("since_epoch", BigInteger(), primary_key=True),
    Column("until_epoch", BigInteger()),
    Column("offset_seconds", Integer()),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)
# Made once the rows are in (cheaper than kept up row by row): SQLite reads medians by walking them.
_DELAY_INDEXES = (
    Index("ix_report_facts_open_seconds", FACTS.c.open_seconds, sqlite_where=FACTS.c.open_seconds.is_not(None)),
    Index("ix_report_people_register_seconds", PEOPLE.c.register_seconds),
)


def prepare(conn: Connection, scope: Scope, *, facts: bool = True, people: bool = True) -> None:
    """Fill this connection's temporary tables for ``scope`` (see the module doc); :func:`release` drops them.
    They live in the transaction: a rollback takes them away, and on PostgreSQL so does the commit.

    ``facts`` False leaves out :data:`FACTS` (what recipients did), ``people`` False :data:`PAIRS` and
    :data:`PEOPLE` (who registered): the two halves are independent, so two connections reading one snapshot
    can each fill and read one (:meth:`campaign.store.engine.Database.read_together`)."""
    release(conn)
    dialect = conn.dialect.name
    filled = [(FACTS, _facts(scope, dialect))] if facts else []
    if people:
        filled += [(PAIRS, _pairs(scope)), (PEOPLE, _people(dialect))]
    for table, rows in filled:
        conn.execute(CreateTable(table))  # without its indexes: see _DELAY_INDEXES
        conn.execute(insert(table).from_select([c.name for c in table.columns], rows))
    if dialect == "sqlite":  # PostgreSQL has percentile_disc: see _percentiles
        made = {table for table, _ in filled}
        for index in _DELAY_INDEXES:
            if index.table in made:
                index.create(conn)


def release(conn: Connection) -> None:
    """Drop this connection's temporary tables, if any (a report that failed may have left them)."""
    for table in (*_TEMPORARY, ZONE_SPANS):
        table.drop(conn, checkfirst=True)


def _after(dialect: str, later: Any, earlier: Any) -> Any:
    """Whole seconds from ``earlier`` to ``later`` (instants), none below 0: a hit recorded a moment before its
    250 was (the sender commits results in groups) took no time; none (NULL) when either is. SQLite's two-argument
    ``max`` reads each instant once, where ``CASE`` reads it twice (and PostgreSQL's ``greatest`` skips NULLs)."""
    gap = epoch_seconds(dialect, later) - epoch_seconds(dialect, earlier)
    return func.max(gap, 0) if dialect == "sqlite" else case((gap < 0, 0), else_=gap)


def _facts(scope: Scope, dialect: str) -> Any:
    """The rows of :data:`FACTS`: the messages' rows of ``message_activity`` (what each recipient did, kept up to
    date from the tracking events by the database's triggers: migration 0013), each beside its message (looked up
    by its key) for the scope, its wave, contact and delivery time. The cost follows the messages with activity,
    not the campaign's messages: on SQLite the scope's wave condition is kept off ``ix_messages_due`` (unary
    ``+``), which would have the planner read every message of the campaign and look for its activity instead.

    Measured (``bench/report.py``'s data, 300,000 events on as many messages, on a busy machine): 0.30 s of CPU
    against 0.67 s for grouping every tracking event by message (beside its message and, for a click, its link)
    as this did before, with the same rows; the whole report on one database, old and new interleaved (medians of
    four): 1.55 -> 1.17 s of CPU, with every breakdown 3.36 -> 2.86 s, every number the same. The registration
    link is the one the triggers know: the wave's link named ``register`` (``scope.register_link`` is that
    name)."""
    a = message_activity
    sqlite = dialect == "sqlite"

    # On SQLite, unary + keeps the planner from reading every message of the scope and looking up its activity
    # (as it chose on a small database): each row of the activity finds its message by key.
    activity_id = literal_column(f"+{a.name}.message_id") if sqlite else a.c.message_id

    def number(flag: Any) -> Any:  # booleans are 0 and 1 on SQLite already
        return type_coerce(flag, Integer()) if sqlite else flag.cast(Integer())

    return (
        select(
            messages.c.id,
            messages.c.wave_id,
            messages.c.contact_id,
            case((a.c.human_opened_at.is_not(None), 1), else_=0),
            number(a.c.machine_opened),
            case((a.c.human_clicked_at.is_not(None), 1), else_=0),
            number(a.c.machine_clicked),
            number(a.c.register_clicked),
            number(a.c.unsubscribed),
            epoch_seconds(dialect, a.c.human_opened_at),
            epoch_seconds(dialect, a.c.human_clicked_at),
            _after(dialect, a.c.human_opened_at, messages.c.sent_at),
        )
        .select_from(a.join(messages, messages.c.id == activity_id))
        .where(*_scoped(scope, indexed=not sqlite))
    )


def _pairs(scope: Scope) -> Any:
    """The rows of :data:`PAIRS`: from the event's registrations (an index range), each contact's messages in scope
    found by contact, and each message's activity by its key. Its cost follows the registrations, not the
    messages."""
    a = message_activity
    return (
        select(
            registrations.c.contact_id,
            messages.c.wave_id,
            registrations.c.source,
            registrations.c.registered_at,
            messages.c.sent_at,
            case((a.c.register_clicked.is_(True), 1), else_=0),
        )
        .select_from(
            registrations.join(messages, messages.c.contact_id == registrations.c.contact_id).outerjoin(
                a, a.c.message_id == messages.c.id
            )
        )
        .where(registrations.c.event_id == scope.event_id, messages.c.status == _SENT, *_scoped(scope))
    )


def _people(dialect: str) -> Any:
    """The rows of :data:`PEOPLE`, from :data:`PAIRS`. A registration dates from a contact's first delivery or
    later exactly when some delivery precedes it, and then the first delivery does too: so the pairs where the
    message came first hold each such registration beside the contact's first delivery, and one grouping finds
    both, without looking for each contact's first delivery apart."""
    firsts = (
        select(
            PAIRS.c.contact_id,
            func.min(PAIRS.c.sent_at).label("first_sent"),
            func.min(PAIRS.c.registered_at).label("registered_at"),
            *(_flag(PAIRS.c.source == s.value).label(s.value) for s in RegistrationSource),
        )
        .where(PAIRS.c.registered_at >= PAIRS.c.sent_at)
        .group_by(PAIRS.c.contact_id)
        .subquery("firsts")
    )
    return select(
        firsts.c.contact_id,
        epoch_seconds(dialect, firsts.c.registered_at),
        _after(dialect, firsts.c.registered_at, firsts.c.first_sent),
        *(firsts.c[s.value] for s in RegistrationSource),
    )


def engagement(conn: Connection, by: By) -> list[Engagement]:
    """What the recipients of the scope's messages did, by group (see the module doc). Reads :func:`prepare`'s
    tables."""
    source: Any = FACTS
    key = _key(by)
    if by.wave:
        key = FACTS.c.wave_id
    elif by.breakdown is not None:
        source = FACTS.join(contacts, contacts.c.id == FACTS.c.contact_id)
    stmt = _grouped(select(*(func.sum(FACTS.c[c]) for c in _FLAGS)).select_from(source), by, key)
    return [Engagement(row.key, *(int(n or 0) for n in row[: len(_FLAGS)])) for row in conn.execute(stmt)]


def registered(conn: Connection, by: By) -> list[Registered]:
    """Recipients who registered after a message in scope reached them, by group: for the whole scope or a
    contact's field, after their first such message; for each wave, after that wave's message. Reads
    :func:`prepare`'s tables."""
    sources = list(RegistrationSource)
    confirmed = [s.value for s in CONFIRMED_SOURCES]
    if by.wave:
        people = PAIRS.c.contact_id
        stmt = (
            select(
                PAIRS.c.wave_id.label("key"),
                func.count(distinct(people)).label("total"),
                *(func.count(distinct(case((PAIRS.c.source == s.value, people)))).label(s.value) for s in sources),
                func.count(distinct(case((PAIRS.c.source.in_(confirmed), people)))).label("confirmed"),
            )
            .where(PAIRS.c.registered_at >= PAIRS.c.sent_at)
            .group_by(PAIRS.c.wave_id)
        )
    else:
        source: Any = PEOPLE
        if by.breakdown is not None:
            source = PEOPLE.join(contacts, contacts.c.id == PEOPLE.c.contact_id)
        columns = [
            func.count().label("total"),
            *(func.sum(PEOPLE.c[s.value]).label(s.value) for s in sources),
            func.sum(case((or_(*(PEOPLE.c[s] == 1 for s in confirmed)), 1), else_=0)).label("confirmed"),
        ]
        stmt = _grouped(select(*columns).select_from(source), by, _key(by))
    return [
        Registered(row.key, row.total, {s: int(row._mapping[s.value] or 0) for s in sources}, int(row.confirmed or 0))
        for row in conn.execute(stmt)
    ]


@dataclass(frozen=True, slots=True)
class ThroughLink:
    """Of one wave's recipients who clicked its registration link (a person's click), those who registered after
    the message (any source), those the webinar platform confirmed, and of each, those who joined the event: the
    steps of a funnel where each is part of the one before."""

    wave_id: int
    registered: int = 0
    confirmed: int = 0
    joined: int = 0
    confirmed_joined: int = 0


def registered_through_link(conn: Connection, event_id: int) -> dict[int, ThroughLink]:
    """:class:`ThroughLink` per wave with any (others have none), from :data:`PAIRS` (rows of people who
    registered: few) and the event's attendances, looked up by their unique (event, contact) index. Reads
    :func:`prepare`'s tables."""
    people = PAIRS.c.contact_id
    confirmed = PAIRS.c.source.in_([s.value for s in CONFIRMED_SOURCES])
    attended = (
        select(attendances.c.id)
        .where(attendances.c.event_id == event_id, attendances.c.contact_id == PAIRS.c.contact_id)
        .exists()
    )
    stmt = (
        select(
            PAIRS.c.wave_id,
            func.count(distinct(people)),
            func.count(distinct(case((confirmed, people)))),
            func.count(distinct(case((attended, people)))),
            func.count(distinct(case((and_(confirmed, attended), people)))),
        )
        .where(PAIRS.c.registered_at >= PAIRS.c.sent_at, PAIRS.c.register_clicked == 1)
        .group_by(PAIRS.c.wave_id)
    )
    return {row[0]: ThroughLink(*row) for row in conn.execute(stmt)}


def joined(conn: Connection, scope: Scope, by: By) -> dict[Any, int]:
    """Recipients of the scope's delivered messages who joined the event (an attendance of theirs, from the
    platform's attendee report), by group: each contact once per group; for each wave, those who got it. From the
    event's attendances (an index range), each contact's messages found by contact: its cost follows the
    attendees, not the messages. Groups without any are absent."""
    source: Any = attendances.join(messages, messages.c.contact_id == attendances.c.contact_id)
    if by.breakdown is not None:
        source = source.join(contacts, contacts.c.id == attendances.c.contact_id)
    stmt = (
        select(func.count(distinct(attendances.c.contact_id)))
        .select_from(source)
        # On SQLite the waves are kept off ix_messages_due (unary +), or the planner reads every sent message of
        # the campaign (0.15 s at a million, without a single attendee) rather than starting from the attendances.
        .where(
            attendances.c.event_id == scope.event_id,
            messages.c.status == _SENT,
            *_scoped(scope, indexed=conn.dialect.name != "sqlite"),
        )
    )
    return {row.key: int(row[0]) for row in conn.execute(_grouped(stmt, by, _key(by)))}


def links_clicked(conn: Connection) -> list[LinkClicks]:
    """Every link clicked in the scope's messages, per wave and link, in wave then link order. Reads
    :func:`prepare`'s tables (which messages are in scope, and their waves)."""
    t = tracking_events
    human = t.c.is_machine.is_(False)
    clicks = (
        select(
            FACTS.c.wave_id,
            t.c.link_index,
            func.count(distinct(case((human, t.c.message_id)))).label("human"),
            func.count(distinct(case((~human, t.c.message_id)))).label("machine"),
            func.sum(case((human, 1), else_=0)).label("clicks"),
        )
        .select_from(FACTS.join(t, t.c.message_id == FACTS.c.message_id))
        .where(t.c.kind == TrackingKind.CLICK.value, or_(FACTS.c.human_clicked == 1, FACTS.c.machine_clicked == 1))
        .group_by(FACTS.c.wave_id, t.c.link_index)
        .subquery("clicks")
    )
    stmt = (
        select(clicks, links.c.name, links.c.url)
        .select_from(
            clicks.outerjoin(
                links, and_(links.c.wave_id == clicks.c.wave_id, links.c.link_index == clicks.c.link_index)
            )
        )
        .order_by(clicks.c.wave_id, clicks.c.link_index)
    )
    return [
        LinkClicks(r.wave_id, r.link_index, r.name, r.url, r.human, r.machine, int(r.clicks or 0))
        for r in conn.execute(stmt)
    ]


QUARTER_SERIES = ("opened", "clicked", "registered")


def quarter_hours(conn: Connection, names: Sequence[str] = QUARTER_SERIES) -> dict[int, dict[str, int]]:
    """Activity by quarter hour (the number of quarter hours since 1970, UTC; see :data:`QUARTER_HOUR`): messages
    first opened and first clicked by a person, and recipients registered (their first registration counted in
    :func:`registered`); or only the series ``names`` of these (``opened`` and ``clicked`` read :data:`FACTS`,
    ``registered`` :data:`PEOPLE`). Quarters without activity are absent. Reads :func:`prepare`'s tables."""
    series = {
        "opened": FACTS.c.opened_epoch,
        "clicked": FACTS.c.clicked_epoch,
        "registered": PEOPLE.c.registered_epoch,
    }
    result: dict[int, dict[str, int]] = {}
    for name in names:
        epoch = series[name]
        buckets = select((epoch // QUARTER_HOUR).label("quarter")).where(epoch.is_not(None)).subquery("buckets")
        stmt = select(buckets.c.quarter, func.count()).group_by(buckets.c.quarter)
        for quarter, count in conn.execute(stmt):
            result.setdefault(int(quarter), {})[name] = count
    return result


@dataclass(frozen=True, slots=True)
class ZoneHour:
    """In one contacts' zone (None: without one), one local hour of the day (0 to 23): messages first opened by a
    person then, and recipients registered then (their first registration counted in :func:`registered`)."""

    zone: str | None
    hour: int
    opened: int = 0
    registered: int = 0


def _zone_series() -> dict[str, tuple[Any, Any]]:
    """Each series of :func:`local_hours`: its instants (Unix seconds) and the contact they are of."""
    return {
        "opened": (FACTS.c.opened_epoch, FACTS.c.contact_id),
        "registered": (PEOPLE.c.registered_epoch, PEOPLE.c.contact_id),
    }


def activity_range(conn: Connection) -> tuple[int, int] | None:
    """The first and last instant (Unix seconds) of a person's first open or a registration in scope, or None
    when there is none: what :func:`local_hours` needs zones' offsets over. Reads :func:`prepare`'s tables."""
    found = [conn.execute(select(func.min(epoch), func.max(epoch))).one() for epoch, _ in _zone_series().values()]
    firsts = [int(first) for first, _ in found if first is not None]
    lasts = [int(last) for _, last in found if last is not None]
    return (min(firsts), max(lasts)) if firsts else None


def contact_zones(conn: Connection) -> list[str]:
    """Every time zone a contact has (read from its index)."""
    stmt = select(contacts.c.timezone).where(contacts.c.timezone.is_not(None)).distinct()
    return list(conn.scalars(stmt))


def local_hours(conn: Connection, spans: Sequence[OffsetSpan], fallback: str) -> list[ZoneHour]:
    """People's first opens and registrations by contacts' zone and local hour of the day there: each instant
    shifted by its zone's offset at that instant (``spans``, covering :func:`activity_range` for every zone of
    :func:`contact_zones` and ``fallback``, the zone of contacts without one), then counted by hour, in SQL; an
    instant no span covers counts in UTC. Reads :func:`prepare`'s tables."""
    ZONE_SPANS.drop(conn, checkfirst=True)
    ZONE_SPANS.create(conn)
    if spans:
        rows = [
            {"zone": s.zone, "since_epoch": s.since, "until_epoch": s.until, "offset_seconds": s.offset} for s in spans
        ]
        conn.execute(insert(ZONE_SPANS), rows)
    found: dict[tuple[str | None, int], dict[str, int]] = {}
    for name, (epoch, contact) in _zone_series().items():
        # LEFT JOINs (every row has its contact): SQLite keeps the written order for them, so each row of the
        # series seeks its contact, then its zone's span by the primary key (zone, since), rather than the planner
        # scanning every contact, or pairing every span with every row.
        span = and_(
            ZONE_SPANS.c.zone == func.coalesce(contacts.c.timezone, fallback),
            ZONE_SPANS.c.since_epoch <= epoch,
            ZONE_SPANS.c.until_epoch > epoch,
        )
        hour = (((epoch + func.coalesce(ZONE_SPANS.c.offset_seconds, 0)) // 3600) % 24).label("hour")
        source = epoch.table.outerjoin(contacts, contacts.c.id == contact).outerjoin(ZONE_SPANS, span)
        counted = (
            select(contacts.c.timezone.label("zone"), hour).select_from(source).where(epoch.is_not(None)).subquery()
        )
        stmt = select(counted.c.zone, counted.c.hour, func.count()).group_by(counted.c.zone, counted.c.hour)
        for zone, at, count in conn.execute(stmt):
            found.setdefault((zone, int(at)), {})[name] = count
    ZONE_SPANS.drop(conn)
    return [ZoneHour(zone, hour, **counts) for (zone, hour), counts in found.items()]


def _percentiles(conn: Connection, seconds: Any) -> Delays:
    """Count, median and 90th percentile (nearest rank: the ceil(p * n)-th value) of a column of
    :func:`prepare`'s tables: PostgreSQL's ``percentile_disc``; on SQLite the database counts them, then walks
    the column's index to each rank (ORDER BY, OFFSET)."""
    if conn.dialect.name == "postgresql":
        stmt = select(
            func.count(seconds),
            func.percentile_disc(0.5).within_group(seconds),
            func.percentile_disc(0.9).within_group(seconds),
        )
        count, median, p90 = conn.execute(stmt).one()
        return Delays(count, median, p90) if count else Delays()
    count = conn.scalar(select(func.count(seconds))) or 0
    if not count:
        return Delays()

    def ranked(rank: int) -> int:
        stmt = select(seconds).where(seconds.is_not(None)).order_by(seconds).limit(1).offset(rank - 1)
        return int(conn.scalar(stmt) or 0)

    return Delays(count, ranked((count + 1) // 2), ranked((count * 9 + 9) // 10))


def delays(conn: Connection) -> tuple[Delays, Delays]:
    """How long after delivery a person first opened a message (over the messages opened), and how long after
    their first delivered message a recipient registered (over those :func:`registered` counts). Reads
    :func:`prepare`'s tables."""
    return open_delays(conn), registration_delays(conn)


def open_delays(conn: Connection) -> Delays:
    """The first of :func:`delays`: reads :data:`FACTS` only."""
    return _percentiles(conn, FACTS.c.open_seconds)


def registration_delays(conn: Connection) -> Delays:
    """The second of :func:`delays`: reads :data:`PEOPLE` only."""
    return _percentiles(conn, PEOPLE.c.register_seconds)


def undelivered(conn: Connection, scope: Scope, limit: int) -> list[Undelivered]:
    """The scope's messages that did not reach their recipient (deferred, bounced, failed, expired), latest
    first, at most ``limit``: address, wave, status, attempts, the server's reply and the error recorded. The
    latest are chosen first, then only they are joined to their contacts (not the tens of thousands sorted)."""
    order = (messages.c.updated_at.desc(), messages.c.id.desc())
    latest = (
        select(messages.c.id)
        .where(*_scoped(scope), messages.c.status.in_(_UNDELIVERED))
        .order_by(*order)
        .limit(limit)
        .subquery("latest")
    )
    stmt = (
        select(
            contacts.c.email,
            waves.c.name,
            messages.c.status,
            messages.c.attempts,
            messages.c.smtp_reply,
            messages.c.last_error,
            messages.c.updated_at,
        )
        .select_from(
            latest.join(messages, messages.c.id == latest.c.id)
            .join(contacts, contacts.c.id == messages.c.contact_id)
            .join(waves, waves.c.id == messages.c.wave_id)
        )
        .order_by(*order)
    )
    return [Undelivered(*row) for row in conn.execute(stmt)]


def counts(conn: Connection, campaign_id: int) -> dict[str, dict[str, int]]:
    """Message counts by wave name and status."""
    stmt = (
        select(waves.c.name, messages.c.status, func.count())
        .join(waves, waves.c.id == messages.c.wave_id)
        .where(waves.c.campaign_id == campaign_id)
        .group_by(waves.c.name, messages.c.status)
    )
    result: dict[str, dict[str, int]] = {}
    for wave_name, status, count in conn.execute(stmt):
        result.setdefault(wave_name, {})[status] = count
    return result


@dataclass(frozen=True, slots=True)
class StatusCount:
    """How many messages of one wave are in one status; for queued and deferred ones, also when they are due."""

    wave_id: int
    status: str
    count: int
    due_now: int = 0
    next_due: datetime | None = None
    """The earliest due time of those not due yet (None when all are due, or for a final status)."""


def status_counts(conn: Connection, campaign_id: int, now: datetime) -> list[StatusCount]:
    """The campaign's messages counted by wave and status, with when the queued and deferred ones are due.

    A report, not the delivery path: one GROUP BY over the campaign's rows (ranges of ``ix_messages_due`` on
    SQLite; on PostgreSQL, where that index leaves sent messages out, a scan: 25-39 ms for 250,000 messages).
    """
    pending = messages.c.status.in_(PENDING)
    stmt = (
        select(
            messages.c.wave_id,
            messages.c.status,
            func.count(),
            func.sum(case((and_(pending, due_at <= now), 1), else_=0)),
            type_coerce(func.min(case((and_(pending, due_at > now), due_at))), UTCDateTime()),
        )
        .where(messages.c.wave_id.in_(select(waves.c.id).where(waves.c.campaign_id == campaign_id).scalar_subquery()))
        .group_by(messages.c.wave_id, messages.c.status)
    )
    return [StatusCount(w, s, n, int(due or 0), later) for w, s, n, due, later in conn.execute(stmt)]
