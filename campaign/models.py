"""Domain objects and the states they move through.

Plain frozen dataclasses and string enums: no database, no network. The store maps rows to these; services
and interfaces pass them around. Instants are timezone-aware datetimes in UTC; an IANA zone name travels
beside them wherever a wall-clock time must be shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from campaign.exceptions import ValidationError


class MessageStatus(StrEnum):
    """States of one outbox row (one recipient of one wave).

    queued → sending (leased by a worker) → sent | deferred (retried later) | bounced | failed | expired;
    ``suppressed`` rows are written at enqueue for recipients who must not be mailed, so that reports
    account for every member of the audience; ``cancelled`` when the campaign is cancelled before sending.
    """

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DEFERRED = "deferred"
    BOUNCED = "bounced"
    FAILED = "failed"
    EXPIRED = "expired"
    SUPPRESSED = "suppressed"
    CANCELLED = "cancelled"


WAITING_MESSAGES: frozenset[MessageStatus] = frozenset({MessageStatus.QUEUED, MessageStatus.DEFERRED})
"""Messages waiting for an attempt: due at their scheduled or retry time, and what a worker claims."""

UNFINISHED_MESSAGES: frozenset[MessageStatus] = WAITING_MESSAGES | {MessageStatus.SENDING}
"""Messages not final yet: waiting, or in a worker's hands. Every other status is where a message ends; a wave is
``done`` and a campaign ``sent`` once none of their messages is in one of these."""

REACHED_MESSAGES: frozenset[MessageStatus] = frozenset({MessageStatus.SENT, MessageStatus.SENDING})
"""Messages that reached (or are reaching) their recipient: what makes a contact ``invited``. One in a worker's hands
counts, so that a notice fired while it is being sent reaches its recipient too; a queued one does not, since it
will carry the event as it then stands."""

GIVEN_UP_MESSAGES: frozenset[MessageStatus] = frozenset({MessageStatus.FAILED, MessageStatus.EXPIRED})
"""Final, but not for good: what ``campaign retry --failed`` queues again on purpose."""


class CampaignStatus(StrEnum):
    """Lifecycle of a campaign; :data:`CAMPAIGN_TRANSITIONS` lists the allowed moves."""

    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    CANCELLED = "cancelled"


CAMPAIGN_TRANSITIONS: Mapping[CampaignStatus, frozenset[CampaignStatus]] = {
    CampaignStatus.DRAFT: frozenset({CampaignStatus.SCHEDULED, CampaignStatus.SENDING, CampaignStatus.CANCELLED}),
    CampaignStatus.SCHEDULED: frozenset(
        {CampaignStatus.SENDING, CampaignStatus.PAUSED, CampaignStatus.CANCELLED, CampaignStatus.SENT}
    ),
    CampaignStatus.SENDING: frozenset(
        {CampaignStatus.SCHEDULED, CampaignStatus.PAUSED, CampaignStatus.SENT, CampaignStatus.CANCELLED}
    ),
    CampaignStatus.PAUSED: frozenset({CampaignStatus.SCHEDULED, CampaignStatus.SENDING, CampaignStatus.CANCELLED}),
    # A sent campaign reopens when failed messages are retried on purpose.
    CampaignStatus.SENT: frozenset({CampaignStatus.SENDING}),
    CampaignStatus.CANCELLED: frozenset(),
}


def check_campaign_transition(current: CampaignStatus, target: CampaignStatus) -> None:
    """Raise :class:`ValidationError` unless a campaign may move from ``current`` to ``target``."""
    if target not in CAMPAIGN_TRANSITIONS[current]:
        if current == target:
            raise ValidationError(f"the campaign is already {current}")
        raise ValidationError(f"a campaign cannot go from {current} to {target}")


class WaveKind(StrEnum):
    """What a wave is for; the invitation is simply the first wave of a campaign."""

    INVITATION = "invitation"
    REMINDER = "reminder"
    # To those who have not registered yet, a few days before.
    LAST_CHANCE = "last-chance"
    # After the session: the recording, the slides.
    FOLLOW_UP = "follow-up"
    # The event changed (time, place, links): to everyone already invited, with the calendar entry updated.
    UPDATE = "update"
    # The event is cancelled: to everyone already invited, with a calendar cancellation (METHOD:CANCEL).
    CANCELLATION = "cancellation"


class WaveStatus(StrEnum):
    """A wave waits, is materialised into outbox rows once, then is done (or cancelled); a wave whose time
    passed while nothing could send it, and which expired meanwhile, is missed (with the reason)."""

    PENDING = "pending"
    ENQUEUED = "enqueued"
    DONE = "done"
    CANCELLED = "cancelled"
    MISSED = "missed"


WAVE_TRANSITIONS: Mapping[WaveStatus, frozenset[WaveStatus]] = {
    WaveStatus.PENDING: frozenset({WaveStatus.ENQUEUED, WaveStatus.CANCELLED, WaveStatus.MISSED}),
    # Done once every message of the wave is final (sent, failed, bounced, expired, ...).
    WaveStatus.ENQUEUED: frozenset({WaveStatus.DONE, WaveStatus.CANCELLED}),
    # A done wave reopens when `campaign retry` queues its failed messages again.
    WaveStatus.DONE: frozenset({WaveStatus.ENQUEUED}),
    WaveStatus.CANCELLED: frozenset(),
    WaveStatus.MISSED: frozenset(),
}


def check_wave_transition(current: WaveStatus, target: WaveStatus) -> None:
    """Raise :class:`ValidationError` unless a wave may move from ``current`` to ``target``."""
    if target not in WAVE_TRANSITIONS[current]:
        raise ValidationError(f"a wave cannot go from {current} to {target}")


class Audience(StrEnum):
    """Which members of the campaign's list a wave goes to."""

    ALL = "all"
    REGISTERED = "registered"
    NOT_REGISTERED = "not-registered"
    OPENED = "opened"
    NOT_OPENED = "not-opened"
    CLICKED = "clicked"
    NOT_CLICKED = "not-clicked"
    # Those the event's attendee report (imported) says joined, and the others: a follow-up's audiences
    # ("thanks for joining", "sorry we missed you").
    ATTENDED = "attended"
    NOT_ATTENDED = "not-attended"
    # Everyone the campaign's invitation reached (:data:`REACHED_MESSAGES`): those whose calendars hold the
    # event, whom an update or cancellation must reach, and nobody the invitation has not reached yet.
    INVITED = "invited"


class TrackingKind(StrEnum):
    """What a recipient (or a machine acting for one) did."""

    OPEN = "open"
    CLICK = "click"
    CALENDAR = "calendar"
    REGISTER = "register"
    UNSUBSCRIBE = "unsubscribe"


class RegistrationSource(StrEnum):
    """How a registration for an event became known: a click on the registration link, an import of the
    webinar platform's registrants, or its webhook. Any of them makes the contact ``registered``."""

    LINK = "link"
    IMPORT = "import"
    WEBHOOK = "webhook"


CONFIRMED_SOURCES = frozenset({RegistrationSource.IMPORT, RegistrationSource.WEBHOOK})
"""The sources that are the webinar platform's own record of a registration. A click on Register is the intent to
register; whether the person finished the platform's form only the platform knows."""


class FunnelRegistrations(StrEnum):
    """Which registrations a report's funnel counts in its last step: those the webinar platform confirmed (once
    any of the campaign's recipients has one: a click on Register is then only the intent), or, while nothing is
    known from the platform, every registration, those a click on Register records included."""

    CONFIRMED = "confirmed"
    ANY = "any"


class Breakdown(StrEnum):
    """What a report's rows can be broken down by (``campaign report --by``): a contact's time zone, country,
    organisation, locale, or a custom attribute (``attr:NAME``, the name travelling beside it)."""

    ZONE = "zone"
    COUNTRY = "country"
    ORGANISATION = "organisation"
    LOCALE = "locale"
    ATTRIBUTE = "attr"


class SuppressionReason(StrEnum):
    """Why an address must not be mailed again."""

    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    MANUAL = "manual"


class CalendarMethod(StrEnum):
    """iTIP methods of calendar invites (RFC 5546): PUBLISH and REQUEST invite (``render.calendar_method``),
    CANCEL cancels."""

    PUBLISH = "PUBLISH"
    REQUEST = "REQUEST"
    CANCEL = "CANCEL"


class SmtpSecurity(StrEnum):
    """How the connection to an SMTP relay is secured (``smtp.security``): STARTTLS after connecting (port 587),
    TLS from the first byte (port 465), or none (a local capture server only)."""

    STARTTLS = "starttls"
    TLS = "tls"
    NONE = "none"


class EventStatus(StrEnum):
    """An event is scheduled until it is cancelled."""

    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"


class Role(StrEnum):
    """What a staff user may do (:func:`campaign.rules.access.may` says which :class:`Permission` each has):
    an admin everything, staff run campaigns, an analyst reads reports only."""

    ADMIN = "admin"
    STAFF = "staff"
    ANALYST = "analyst"


class Permission(StrEnum):
    """What a staff page or action needs (granted per :class:`Role` by :mod:`campaign.rules.access`)."""

    VIEW_REPORTS = "view-reports"
    ACT_ON_CAMPAIGNS = "act-on-campaigns"
    MANAGE_USERS = "manage-users"


class AuditAction(StrEnum):
    """What an ``audit_log`` row records: who did it, to what (its target) and when are beside it."""

    LOGIN = "login"
    LOGIN_FAILED = "login-failed"
    LOGOUT = "logout"
    USER_ADDED = "user-added"
    USER_DISABLED = "user-disabled"
    PASSWORD_SET = "password-set"  # noqa: S105 - an action's name, not a password
    RETRY_FAILED = "retry-failed"
    RETRY_DEFERRED = "retry-deferred"
    EVENT_ADDED = "event-added"
    EVENT_UPDATED = "event-updated"
    EVENT_CANCELLED = "event-cancelled"
    CONTACTS_IMPORTED = "contacts-imported"
    CONTACT_SUPPRESSED = "contact-suppressed"
    CONTACT_UNSUPPRESSED = "contact-unsuppressed"
    CAMPAIGN_CREATED = "campaign-created"
    CAMPAIGN_LAUNCHED = "campaign-launched"
    CAMPAIGN_PAUSED = "campaign-paused"
    CAMPAIGN_RESUMED = "campaign-resumed"
    CAMPAIGN_CANCELLED = "campaign-cancelled"
    CAMPAIGN_TEST_SENT = "campaign-test-sent"
    CAMPAIGN_WAVE_ADDED = "campaign-wave-added"
    CAMPAIGN_WAVE_EDITED = "campaign-wave-edited"
    CAMPAIGN_WAVE_REMOVED = "campaign-wave-removed"
    CAMPAIGN_TEMPLATE_SAVED = "campaign-template-saved"
    CAMPAIGN_TEMPLATE_REVERTED = "campaign-template-reverted"


@dataclass(frozen=True, slots=True)
class Contact:
    """A person who can be invited. ``email`` is normalised; ``attributes`` holds custom CSV columns."""

    id: int
    email: str
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    timezone: str | None = None
    country: str | None = None
    locale: str | None = None
    organisation: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def display_name(self) -> str | None:
        """The name to show: ``name``, else first and last name joined, else None."""
        if self.name:
            return self.name
        joined = " ".join(part for part in (self.first_name, self.last_name) if part)
        return joined or None


@dataclass(frozen=True, slots=True)
class ContactList:
    """A named set of contacts; a contact can belong to several lists."""

    id: int
    name: str
    size: int = 0
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Speaker:
    """A speaker as shown in the invitation: name, and role or affiliation."""

    name: str
    role: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """A session people are invited to. ``starts_at``/``ends_at`` are UTC; ``timezone`` is the organiser's."""

    id: int
    slug: str
    title: str
    starts_at: datetime
    ends_at: datetime
    timezone: str
    description: str = ""
    registration_url: str | None = None
    join_url: str | None = None
    organiser_name: str | None = None
    organiser_email: str | None = None
    language: str = "en"
    speakers: tuple[Speaker, ...] = ()
    sequence: int = 0
    status: EventStatus = EventStatus.SCHEDULED
    # The local part of the calendar UID of an event made before installation ids (kept by migration 0003, so
    # its entry in people's calendars keeps being updated); None: the usual one (render.identifiers.event_uid).
    calendar_uid: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # When its attendee report was last imported whole; None: none yet (waves to who attended, or not, wait).
    attendance_reported_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Campaign:
    """One event, one audience list, and its waves."""

    id: int
    name: str
    event_id: int
    list_id: int
    list_name: str
    status: CampaignStatus = CampaignStatus.DRAFT
    template_dir: str | None = None
    status_reason: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    launched_at: datetime | None = None
    # Privacy: whether its messages carry an open pixel and tracked (redirecting) links.
    track_opens: bool = True
    track_clicks: bool = True


@dataclass(frozen=True, slots=True)
class EventBefore:
    """An event's time and place as they were before ``campaign events update`` changed them: what its update
    notice says changed. ``changed`` names the fields that did (of ``starts_at``, ``ends_at``, ``timezone``,
    ``join_url``, ``registration_url``); the others hold their values then, which were the same."""

    starts_at: datetime
    ends_at: datetime
    timezone: str
    join_url: str | None = None
    registration_url: str | None = None
    changed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Wave:
    """One mailing of a campaign. ``offset_seconds`` is relative to the event start (negative: before)."""

    id: int
    campaign_id: int
    name: str
    kind: WaveKind
    template: str
    subject: str | None = None
    audience: Audience = Audience.ALL
    offset_seconds: int | None = None
    send_at: datetime | None = None
    expires_at: datetime | None = None
    status: WaveStatus = WaveStatus.PENDING
    enqueued_at: datetime | None = None
    created_at: datetime | None = None
    # An update notice's event as it was before the update (None for every other wave).
    event_before: EventBefore | None = None
    # When its time was last decided: its creation, an edit of its timing, its event moving.
    planned_at: datetime | None = None

    @property
    def offset(self) -> timedelta | None:
        """``offset_seconds`` as a duration (None: timed by ``send_at``, or at launch)."""
        return None if self.offset_seconds is None else timedelta(seconds=self.offset_seconds)


@dataclass(frozen=True, slots=True)
class User:
    """A staff login (``campaign users``). ``name`` as given; it is unique in any letter case. Never carries the
    password hash: only the login service reads that."""

    id: int
    name: str
    role: Role
    created_at: datetime
    # Set when the user was disabled: no login, no session.
    disabled_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One row of the audit log: who (None: the command line, or nobody logged in) did what to which target."""

    id: int
    at: datetime
    user_id: int | None
    user_name: str | None
    action: str
    target: str | None
    details: Mapping[str, object] = field(default_factory=dict)
