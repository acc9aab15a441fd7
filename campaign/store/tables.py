"""The schema: SQLAlchemy 2 typed models, identical on SQLite and PostgreSQL.

The store runs Core statements against these tables; the ORM classes exist to state the schema once,
with types, for both the code and Alembic. Instants are stored as UTC (``timestamptz`` on PostgreSQL,
ISO text on SQLite) and always come back timezone-aware.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
    literal_column,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from campaign.models import MessageStatus
from campaign.rules.references import MAX_NAME_LENGTH

# Deterministic constraint names, so migrations name the same things on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC that always reads back timezone-aware.

    SQLite has no time zone type: values are stored as naive UTC text (fixed width, so text order is time
    order). Naive datetimes are refused on the way in: a naive instant is a bug waiting for a DST change.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: store timezone-aware instants")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets 64-bit ids for the big tables.
BigId = BigInteger().with_variant(Integer(), "sqlite")
JSONDoc = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    """Declarative base carrying the shared metadata."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


class ContactRow(Base):
    """A contact. ``email_key`` (the case-folded address) is what makes two rows the same person."""

    __tablename__ = "contacts"
    # Firing a wave computes each stored zone's send instant once: their distinct values are read by skipping
    # through this index (one seek per zone, see store.materialise.stored_zones), not by reading every contact.
    # Searching by the start of an address or a name: ix_contacts_name_search and ix_contacts_email_search, below.
    __table_args__ = (Index("ix_contacts_timezone", "timezone"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(300))
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    timezone: Mapped[str | None] = mapped_column(String(64))
    country: Mapped[str | None] = mapped_column(String(2))
    locale: Mapped[str | None] = mapped_column(String(35))
    organisation: Mapped[str | None] = mapped_column(String(300))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ListRow(Base):
    """A named contact list."""

    __tablename__ = "lists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH), unique=True)
    created_at: Mapped[datetime]


class ListMemberRow(Base):
    """Membership of a contact in a list."""

    __tablename__ = "list_members"
    __table_args__ = (
        Index("ix_list_members_contact_id", "contact_id"),
        # The invitation top-up asks every tick who joined a list since it fired: an index range, not the list.
        Index("ix_list_members_list_id_added_at", "list_id", "added_at"),
    )

    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True)
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    added_at: Mapped[datetime]


class EventRow(Base):
    """An event; ``sequence`` is the iCalendar SEQUENCE, raised whenever time or place changes."""

    __tablename__ = "events"
    __table_args__ = (CheckConstraint("ends_at > starts_at", name="ends_after_start"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text, default="")
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    timezone: Mapped[str] = mapped_column(String(64))
    registration_url: Mapped[str | None] = mapped_column(Text)
    join_url: Mapped[str | None] = mapped_column(Text)
    organiser_name: Mapped[str | None] = mapped_column(String(300))
    organiser_email: Mapped[str | None] = mapped_column(String(320))
    language: Mapped[str] = mapped_column(String(35), default="en")
    speakers: Mapped[list[dict[str, Any]]] = mapped_column(JSONDoc, default=list)
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20), default="scheduled")
    # Set only for events made before installation ids existed: the UID their invitations carried.
    calendar_uid: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # When its attendee report was last imported whole (migration 0018): waves to who attended, or not, wait for it.
    attendance_reported_at: Mapped[datetime | None]


class CampaignRow(Base):
    """A campaign: one event, one audience list, and its waves."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH), unique=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="RESTRICT"), index=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="RESTRICT"), index=True)
    template_dir: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="draft")
    status_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    launched_at: Mapped[datetime | None]
    # Privacy: whether the messages carry an open pixel and tracked (redirecting) links. Unsubscribe and the
    # calendar file are served either way.
    track_opens: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    track_clicks: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())


class WaveRow(Base):
    """One mailing of a campaign, timed relative to the event start or at an absolute time."""

    __tablename__ = "waves"
    __table_args__ = (UniqueConstraint("campaign_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    template: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str | None] = mapped_column(Text)
    audience: Mapped[str] = mapped_column(String(20), default="all")
    # Exactly one of the two timings is used: seconds relative to the event start (negative = before), or
    # an absolute instant. Neither means "as soon as the campaign is launched".
    offset_seconds: Mapped[int | None] = mapped_column(Integer)
    send_at: Mapped[datetime | None]
    # Absolute expiry; when the wave fires it is written with the one in force (the instant given, the event start
    # plus ``expires_offset_seconds``, or the kind's default), which the delivery worker then holds it to.
    expires_at: Mapped[datetime | None]
    expires_offset_seconds: Mapped[int | None] = mapped_column(Integer)
    # A send window in each recipient's local time, as ``rules.timing.format_window`` writes it; NULL: none.
    window: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    enqueued_at: Mapped[datetime | None]
    # Why a wave is ``missed``: its time passed while nothing fired it, and it expired meanwhile.
    missed_reason: Mapped[str | None] = mapped_column(Text)
    # An update notice's event as it was before the update, as JSON (store.campaigns.event_before_json): what
    # the notice says changed. NULL for every other wave.
    event_before: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    # When its time was last decided: its creation, an edit of its timing, its event moving (migration 0017). The
    # launch skips a wave planned before it whose own time had passed then (services.scheduling.skipped_at_launch).
    planned_at: Mapped[datetime | None]


FILLFACTOR = 70
"""How full PostgreSQL fills the pages of ``messages`` at insert, in percent (see migration 0012)."""


class MessageRow(Base):
    """The outbox: one row per contact per wave, the unit of truth for delivery and reports."""

    __tablename__ = "messages"
    # Every claim and every result writes a row version whose indexed ``status`` changed (never a HOT update),
    # so each index of this table costs every message two entries: PostgreSQL keeps as few as serve the reads
    # (migration 0012). One unique (contact, wave) index is both the (wave, contact) key and the contacts' look-up;
    # the Message-ID embeds the row id, unique by construction, and nothing looks a message up by it. SQLite
    # keeps the indexes 0001 made: changing a table constraint there means rebuilding ``messages``, which with
    # foreign keys on deletes every row referring to it (see :data:`ONLY_ON`).
    __table_args__ = (
        UniqueConstraint("wave_id", "contact_id").ddl_if(dialect="sqlite"),
        Index("ix_messages_contact_id", "contact_id").ddl_if(dialect="sqlite"),
        UniqueConstraint("message_id").ddl_if(dialect="sqlite"),
        UniqueConstraint("contact_id", "wave_id").ddl_if(dialect="postgresql"),
        # PostgreSQL: room on each page for a row's next version, which then stays on its page (migration 0012).
        {"postgresql_with": {"fillfactor": FILLFACTOR}},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    wave_id: Mapped[int] = mapped_column(ForeignKey("waves.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    # When this recipient should get it (send windows make it differ per recipient).
    scheduled_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None]
    message_id: Mapped[str | None] = mapped_column(String(250))
    smtp_reply: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TrackingEventRow(Base):
    """Something a recipient did with a message: open, click, calendar download, registration, unsubscribe."""

    __tablename__ = "tracking_events"
    # No index on occurred_at: only the purge would read it, and it finds old events in primary-key order
    # (migration 0015).
    __table_args__ = (Index("ix_tracking_events_message_id_kind", "message_id", "kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(BigId, ForeignKey("messages.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    # The link clicked: its index among the wave's links (the ``links`` table), None for other kinds.
    link_index: Mapped[int | None] = mapped_column(Integer)
    url: Mapped[str | None] = mapped_column(Text)
    # Privacy proxies and link scanners open and click too: kept, but reported apart from people, with why.
    is_machine: Mapped[bool] = mapped_column(Boolean, default=False)
    machine_reason: Mapped[str | None] = mapped_column(String(100))
    # As configured (tracking.ip): truncated to its /24 or /48 network, or not stored at all.
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime]


class MessageActivityRow(Base):
    """What a message's recipient did, one row per message with a tracking event: kept up to date by triggers on
    ``tracking_events`` (migration 0013, which says how), read by reports instead of grouping every event."""

    __tablename__ = "message_activity"

    message_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    # A person's first open (or click: a click implies the open), and first click.
    human_opened_at: Mapped[datetime | None]
    human_clicked_at: Mapped[datetime | None]
    machine_opened: Mapped[bool] = mapped_column(Boolean)
    machine_clicked: Mapped[bool] = mapped_column(Boolean)
    # A person clicked the wave's link named ``register``.
    register_clicked: Mapped[bool] = mapped_column(Boolean)
    unsubscribed: Mapped[bool] = mapped_column(Boolean)


class LinkRow(Base):
    """A destination a wave's messages link to, stored once per wave and link: a click token names a message and
    a link index, never a URL, so only what was stored here can ever be reached (no open redirect)."""

    __tablename__ = "links"
    __table_args__ = (
        UniqueConstraint("wave_id", "link_index"),
        # Found again by a digest of (name, url): a URL may be longer than an index entry may hold.
        UniqueConstraint("wave_id", "url_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    wave_id: Mapped[int] = mapped_column(ForeignKey("waves.id", ondelete="CASCADE"))
    link_index: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(Text)
    url_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class RegistrationRow(Base):
    """A contact registered for an event: by the registration link, an import of the webinar platform's
    registrants, or its webhook. It may exist without any message (registered elsewhere); audiences
    ``registered`` and ``not-registered`` read it."""

    __tablename__ = "registrations"
    __table_args__ = (UniqueConstraint("event_id", "contact_id", "source"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(20))
    message_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("messages.id", ondelete="SET NULL"))
    registered_at: Mapped[datetime]
    created_at: Mapped[datetime]


class AttendanceRow(Base):
    """A contact who joined an event, from the webinar platform's attendee report (``campaign attendees
    import``): when they first joined, how many minutes they stayed in all, and what kind of file said so. One
    row per event and contact (a rejoin is the same attendance); audiences ``attended`` and ``not-attended``
    and the report's ``joined`` read it."""

    __tablename__ = "attendances"
    __table_args__ = (UniqueConstraint("event_id", "contact_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    joined_at: Mapped[datetime | None]
    minutes: Mapped[int | None]
    source: Mapped[str] = mapped_column(String(20))
    imported_at: Mapped[datetime]


class EventUnsubscribeRow(Base):
    """An address that asked for no more mail about one event ("from this event only"); the ``suppressions``
    table holds those who asked for no more mail at all."""

    __tablename__ = "event_unsubscribes"
    __table_args__ = (UniqueConstraint("event_id", "email_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    email_key: Mapped[str] = mapped_column(String(320))
    message_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("messages.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]


class SuppressionRow(Base):
    """An address that must never be mailed again (unsubscribed, bounced, complained, or by hand)."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    reason: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("messages.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]


class InstallationRow(Base):
    """This database's random id, one row made by ``campaign init`` and never changed.

    With ``mail.domain`` it names Message-IDs, calendar UIDs and List-Ids: every database numbers its first
    message and event 1, and mail and calendar clients take two things of the same name for one.
    """

    __tablename__ = "installation"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime]


class UserRow(Base):
    """A staff login. ``name_key`` (the name case-folded, :func:`campaign.rules.access.user_name_key`) is what makes
    two names the same user; ``password_hash`` is an argon2id hash in its PHC string form, never a password."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    name_key: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]


class SessionRow(Base):
    """A staff login session. ``id`` is the SHA-256 (hex) of the token in the browser's cookie, never the token:
    a copy of the database opens no session. ``csrf_secret`` is what the session's forms carry."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_secret: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    # The absolute end (login plus web.session_max_hours); the idle end is last_seen_at plus the idle time.
    expires_at: Mapped[datetime]
    # The IANA zone of the browser that logged in (the login form says it), the clock of the staff pages' times;
    # None: UTC.
    timezone: Mapped[str | None] = mapped_column(String(64))


class AuditLogRow(Base):
    """Who did what, to what, when: logins, logouts, user changes, and the staff's actions on campaigns.
    ``user_id`` is None for the command line (the operator of the machine) and for a visitor not logged in."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(50))
    # What was acted on, as people name it (a campaign's or a user's name).
    target: Mapped[str | None] = mapped_column(String(300))
    details: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)


class ReportSnapshotRow(Base):
    """A report the dashboard counted, kept so that a restarted server answers its first page at once:
    ``key`` names the page view (campaign, wave, zone), ``shape`` the version of ``body``'s JSON (a body of an
    older shape is not read), ``computed_at`` when the counting began (what the page says its numbers are as of)."""

    __tablename__ = "report_snapshots"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    shape: Mapped[str] = mapped_column(String(40))
    computed_at: Mapped[datetime]
    body: Mapped[str] = mapped_column(Text)


class WorkerRow(Base):
    """A process that delivers (``role`` ``worker``) or schedules (``role`` ``scheduler``): the registry behind
    ``campaign workers`` and the scheduler leader ``campaign status`` names. ``name`` is the process's lease owner
    (host, pid, a random suffix). A live process renews ``heartbeat_at`` (and, a worker, its messages' leases) every
    ``delivery.heartbeat_seconds``; a row whose heartbeat is older than ``delivery.lease_seconds`` is ``gone``.
    ``state``: a worker is ``alive``, ``stopped`` or ``gone``; a scheduler is ``leader``, ``standby``, ``stopped``
    or ``gone``. The counts are since the process started (``lost``: results not recorded because the lease was lost);
    ``in_hand``: messages leased at the last heartbeat; ``rate``: messages sent a second, recently."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    role: Mapped[str] = mapped_column(String(20))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]
    claimed: Mapped[int] = mapped_column(BigInteger, default=0)
    sent: Mapped[int] = mapped_column(BigInteger, default=0)
    failed: Mapped[int] = mapped_column(BigInteger, default=0)
    lost: Mapped[int] = mapped_column(BigInteger, default=0)
    in_hand: Mapped[int] = mapped_column(Integer, default=0)
    rate: Mapped[float] = mapped_column(Float, default=0.0)


class RateLimitRow(Base):
    """A token bucket of the ``[delivery]`` rate limits, shared by every delivery worker: ``name`` is ``second``,
    ``hour`` or ``domain:<recipient domain>``; ``tokens`` left at ``refilled_at`` (seconds since the epoch, on the
    taking worker's clock); ``granted``: what the last take gave (read back by the same statement)."""

    __tablename__ = "rate_limits"

    name: Mapped[str] = mapped_column(String(300), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    refilled_at: Mapped[float] = mapped_column(Float)
    granted: Mapped[float] = mapped_column(Float, default=0.0)


metadata = Base.metadata

# The tables as Core objects, typed, for the store's SQL.
contacts = cast(Table, ContactRow.__table__)
lists = cast(Table, ListRow.__table__)
list_members = cast(Table, ListMemberRow.__table__)
events = cast(Table, EventRow.__table__)
campaigns = cast(Table, CampaignRow.__table__)
waves = cast(Table, WaveRow.__table__)
messages = cast(Table, MessageRow.__table__)
tracking_events = cast(Table, TrackingEventRow.__table__)
message_activity = cast(Table, MessageActivityRow.__table__)
links = cast(Table, LinkRow.__table__)
registrations = cast(Table, RegistrationRow.__table__)
attendances = cast(Table, AttendanceRow.__table__)
event_unsubscribes = cast(Table, EventUnsubscribeRow.__table__)
suppressions = cast(Table, SuppressionRow.__table__)
installation = cast(Table, InstallationRow.__table__)
users = cast(Table, UserRow.__table__)
sessions = cast(Table, SessionRow.__table__)
audit_log = cast(Table, AuditLogRow.__table__)
report_snapshots = cast(Table, ReportSnapshotRow.__table__)
workers = cast(Table, WorkerRow.__table__)
rate_limits = cast(Table, RateLimitRow.__table__)

due_at = func.coalesce(messages.c.lease_expires_at, messages.c.next_attempt_at, messages.c.scheduled_at)
"""When a message is due: a ``sending`` one when its lease expires (only those hold a lease); a queued or
deferred one at its next attempt, else its scheduled time."""

due_indexed = messages.c.status != literal_column(f"'{MessageStatus.SENT.value}'")
"""The rows ``ix_messages_due`` holds on PostgreSQL: all but the ``sent`` ones, so the result of a delivered
message (the row version the hot path writes most) makes no entry in it. A query reads that index there only
when its conditions imply this one: state it as it stands (a literal, not a parameter, so that a generic plan
proves it too). SQLite's index holds every row (it is the reports' way to a wave's messages there)."""

# Claiming reads the due messages of one wave and status in order of due time and stops at the batch size: a
# range scan of this index, however many messages are queued or in hand (ordering the whole queue by id cost
# time in proportion to it). Reports group by its first two columns (on PostgreSQL, only for the statuses
# other than sent: the sent ones are counted by a scan of the table there).
Index("ix_messages_due", messages.c.wave_id, messages.c.status, due_at, postgresql_where=due_indexed)

# Searching a list by the start of an address or a name reads the contacts whose key or lowercase name has that
# prefix, not every member of the list (store.contacts.list_page; migration 0016). On PostgreSQL in
# text_pattern_ops, whose order is the bytes': a prefix is one range of it whatever the database's collation, so
# a LIKE 'prefix%' reads a range. SQLite compares text by its bytes already: its unique email_key index serves.
Index(
    "ix_contacts_name_search",
    func.lower(contacts.c.name).label("name_lower"),
    postgresql_ops={"name_lower": "text_pattern_ops"},
)
Index("ix_contacts_email_search", contacts.c.email_key, postgresql_ops={"email_key": "text_pattern_ops"}).ddl_if(
    dialect="postgresql"
)

ONLY_ON: dict[str, str] = {
    "ix_contacts_email_search": "postgresql",
    "uq_messages_wave_id_contact_id": "sqlite",
    "ix_messages_contact_id": "sqlite",
    "uq_messages_message_id": "sqlite",
    "uq_messages_contact_id_wave_id": "postgresql",
}
"""Indexes and constraints one backend has and the other not, by name: the backend (see :class:`MessageRow`)."""


def on_this_backend(dialect_name: str) -> Any:
    """An Alembic ``include_object`` hook: compares only what ``dialect_name``'s schema has (see :data:`ONLY_ON`)."""

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        return ONLY_ON.get(name or "", dialect_name) == dialect_name

    return include
