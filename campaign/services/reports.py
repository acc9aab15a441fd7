"""Delivery and engagement reports: the model every report format is built from (the ``campaign report`` table,
CSV and JSON; the HTML file and the dashboard), and its JSON document.

Contract:

* :func:`campaign_report` reads one campaign in one read transaction (one snapshot) and returns a
  :class:`CampaignReport` of plain frozen dataclasses; :func:`campaign_lines` one :class:`CampaignLine` per
  campaign. The counting is the database's (:mod:`campaign.store.reports`, whose module doc defines what is
  counted); here the rows become the model, and rates are taken over the right base (:meth:`Tally.rates`).
* On a SQLite file that read transaction is two, on two connections that see the very same snapshot
  (:meth:`~campaign.store.engine.Database.read_together`): SQLite counts in this process, each statement on one
  core, so the breakdowns' message counts (they read only the messages and contacts) and who registered (one
  half of the store's prepared tables) are counted in a second thread, on the second connection, while the
  first works out what recipients did and reads it. Measured with ``bench/report.py`` (a million messages,
  every breakdown), CPU seconds of each thread: 1.45 on the first and 1.8 on the second, where one connection
  does all of it in 3.0 to 3.3: on two free cores the report takes about the longer of the two. On cores
  busy with other work it gains nothing (at a load of 6 to 8 on two cores: 5 to 8 s either way). With
  people's local hours (the dashboard) who registered is counted on the first (that count reads both halves
  together); on PostgreSQL, which counts in its own processes, everything runs on one connection.
* ``wave`` keeps the report to one wave; ``since`` / ``until`` to the messages whose time (sent, or scheduled
  when not sent) lies in ``[since, until)``, with whatever their recipients did since. Both are ISO dates or
  times: a date is midnight and a time without an offset is wall-clock time, in the report's zone.
* The funnel is one wave's (the invitation's, or the wave asked for), in its recipients: delivered → opened by
  the person → clicked Register → registered after it. One wave's recipients are counted from its own rows; the
  same over several waves would need every recipient's messages de-duplicated, a million rows sorted. A click on
  Register records a registration (the intent), so while nothing else is known "registered" counts them all;
  once the platform's registrations are (its export imported, or its webhook) it counts only those it confirmed
  (:class:`~campaign.models.FunnelRegistrations`), and the step is no longer the click counted twice.
  Once the event's attendee report is imported (``campaign attendees import``: :attr:`CampaignReport.attendees`),
  the funnel gains its last step, ``joined``: the wave's recipients who attended (its rate over the step before
  is over registered).
* The hourly series is in ``zone`` (default: the organiser's): each hour is a local hour there, labelled by its
  start with its UTC offset, so the two 02:00 hours of a night when clocks go back are two rows, and a zone half
  an hour off UTC (Asia/Kolkata) gets hours that start on its own hour. Hours without activity are left out.
* :func:`report_document` and :func:`lines_document` give the JSON documents (``schema`` names their version;
  keys are only ever added within one version). :func:`write_report_csv` and :func:`write_lines_csv` write the
  tables as CSV through the one spreadsheet-safe writer (:mod:`campaign.sources.csv_writer`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from campaign.exceptions import NotFoundError, ValidationError
from campaign.models import (
    Breakdown,
    Campaign,
    Event,
    FunnelRegistrations,
    MessageStatus,
    RegistrationSource,
    Wave,
    WaveKind,
)
from campaign.rules.contact_fields import FieldError, parse_timezone
from campaign.rules.event_fields import local_to_utc
from campaign.rules.zone_offsets import OffsetSpan, offset_spans
from campaign.services.campaigns import find_campaign
from campaign.services.tracking import REGISTER_LINK
from campaign.sources.csv_contacts import attribute_name
from campaign.sources.csv_writer import CsvWriter
from campaign.store import attendances as attendance_store
from campaign.store import campaigns as campaign_store
from campaign.store import events as event_store
from campaign.store import report_cube
from campaign.store import reports as report_store
from campaign.store.engine import Database
from campaign.store.reports import QUARTER_HOUR, TOTAL, WAVES, By, Scope

# Part of the report model (its fields), so named here for those who read it.
from campaign.store.reports import Delays as Delays
from campaign.store.reports import Undelivered as Undelivered

REPORT_SCHEMA = "campaign-report/1"
LINES_SCHEMA = "campaign-report-all/1"
UNDELIVERED_SHOWN = 20
"""How many of the recipients who did not get a message a report lists by default (the latest first)."""

# The statuses that only an attempt gives: what bounce and delivery rates are over.
_ATTEMPTED = (MessageStatus.SENT, MessageStatus.DEFERRED, MessageStatus.BOUNCED, MessageStatus.FAILED)
_UNDELIVERED = (MessageStatus.DEFERRED, MessageStatus.BOUNCED, MessageStatus.FAILED, MessageStatus.EXPIRED)


@dataclass(frozen=True, slots=True)
class Tally:
    """What happened to a set of messages (a campaign's, a wave's, a group's) and what their recipients did.

    ``statuses`` has every :class:`MessageStatus`, in its order; opens and clicks count messages (once each, by
    people and by machines apart; a person's click counts as an open); ``registered`` counts recipients who
    registered after a message reached them, ``registered_by_source`` each source apart (one person known by two
    sources counts in both)."""

    statuses: Mapping[MessageStatus, int]
    human_opened: int = 0
    machine_opened: int = 0
    human_clicked: int = 0
    machine_clicked: int = 0
    register_clicked: int = 0
    registered: int = 0
    registered_by_source: Mapping[RegistrationSource, int] = field(default_factory=dict)
    unsubscribed: int = 0
    registered_confirmed: int = 0
    """Of ``registered``, those the webinar platform confirmed (its export imported, or its webhook)."""
    joined: int = 0
    """Recipients who joined the event, as its attendee report (imported) says: 0 while none is."""

    @property
    def targeted(self) -> int:
        """Every message: each member of each wave's audience, suppressed ones included."""
        return sum(self.statuses.values())

    @property
    def delivered(self) -> int:
        """Messages the receiving server accepted (``sent``): the base of engagement rates."""
        return self.statuses[MessageStatus.SENT]

    @property
    def attempted(self) -> int:
        """Messages handed to a server with an outcome (sent, deferred, bounced, failed): the base of the
        delivery and bounce rates."""
        return sum(self.statuses[s] for s in _ATTEMPTED)

    @property
    def joined_of_registered(self) -> float | None:
        """Recipients who joined over those who registered (None when none registered): how many who meant to
        come did."""
        return rate(self.joined, self.registered)

    def rates(self) -> dict[str, float | None]:
        """Each rate over its base (None when the base is 0): ``delivered``, ``deferred``, ``bounced``,
        ``failed`` over attempted; ``suppressed`` over targeted; opens, clicks, registrations and unsubscribes
        over delivered."""
        s = self.statuses
        over_attempted = {
            "delivered": s[MessageStatus.SENT],
            "deferred": s[MessageStatus.DEFERRED],
            "bounced": s[MessageStatus.BOUNCED],
            "failed": s[MessageStatus.FAILED],
        }
        return {
            **{name: rate(n, self.attempted) for name, n in over_attempted.items()},
            "suppressed": rate(s[MessageStatus.SUPPRESSED], self.targeted),
            **{name: rate(n, self.delivered) for name, n in self._engagement().items()},
            "joined": rate(self.joined, self.delivered),
        }

    def _engagement(self) -> dict[str, int]:
        """What recipients did, by column name, in column order: the counts whose rates are over delivered."""
        return {
            "opened_human": self.human_opened,
            "opened_machine": self.machine_opened,
            "clicked_human": self.human_clicked,
            "clicked_machine": self.machine_clicked,
            "clicked_register": self.register_clicked,
            "registered": self.registered,
            "unsubscribed": self.unsubscribed,
        }

    def columns(self) -> dict[str, int | float | None]:
        """Every count and rate as one flat row (the CSV columns), in a fixed order."""
        counts: dict[str, int | float | None] = {"targeted": self.targeted}
        counts |= {status.value: n for status, n in self.statuses.items()}
        engagement = self._engagement()
        unsubscribed = engagement.pop("unsubscribed")  # last: the registrations by source follow the total
        counts |= {
            "attempted": self.attempted,
            **engagement,
            **{f"registered_{s.value}": self.registered_by_source.get(s, 0) for s in RegistrationSource},
            "registered_confirmed": self.registered_confirmed,
            "unsubscribed": unsubscribed,
        }
        rates = {f"rate_{name}": _rounded(r) for name, r in self.rates().items()}
        # joined came later: its two columns go last, so the columns before keep their places.
        rate_joined = rates.pop("rate_joined")
        return counts | rates | {"joined": self.joined, "rate_joined": rate_joined}


def rate(count: int, base: int) -> float | None:
    """``count / base``, or None when the base is 0."""
    return count / base if base else None


@dataclass(frozen=True, slots=True)
class WaveLine:
    """One wave of the campaign and its tally."""

    wave: Wave
    tally: Tally


@dataclass(frozen=True, slots=True)
class GroupLine:
    """One value of the breakdown (a zone, a country ...; None for contacts without one) and its tally."""

    key: str | None
    tally: Tally


@dataclass(frozen=True, slots=True)
class BreakdownLines:
    """One breakdown of a report (``zone``, ``attr:job_title``): a line per value, largest groups first."""

    by: str
    rows: tuple[GroupLine, ...]


@dataclass(frozen=True, slots=True)
class LinkLine:
    """One link of one wave: messages in which people clicked it, in which machines did, and people's clicks."""

    wave: str
    index: int | None
    name: str | None
    url: str | None
    clicked_human: int
    clicked_machine: int
    clicks_human: int


@dataclass(frozen=True, slots=True)
class HourLine:
    """One local hour: its start (aware, in the report's zone), messages first opened and first clicked by a person
    in it, and recipients registered in it (the first registration :attr:`Tally.registered` counts)."""

    start: datetime
    opened: int = 0
    clicked: int = 0
    registered: int = 0


@dataclass(frozen=True, slots=True)
class ZoneHours:
    """People's activity in one contacts' zone by local hour of the day there (hour 0 first, 24 counts each):
    messages first opened by a person, and recipients registered (as :attr:`Tally.registered` counts them).
    ``zone`` None is the contacts without one, whose hours are the organiser's (as their messages' times are)."""

    zone: str | None
    opened: tuple[int, ...]
    registered: tuple[int, ...]

    @property
    def peak_open_hour(self) -> int | None:
        """The local hour in which most messages were first opened (the earliest of equals), or None."""
        return _peak(self.opened)

    @property
    def peak_registration_hour(self) -> int | None:
        """The local hour in which most recipients registered (the earliest of equals), or None."""
        return _peak(self.registered)


def _peak(counts: Sequence[int]) -> int | None:
    best = max(counts, default=0)
    return counts.index(best) if best else None


@dataclass(frozen=True, slots=True)
class FunnelStep:
    """One step of the funnel: recipients who got that far, the share of those delivered, and of the step before."""

    step: str
    count: int
    of_delivered: float | None
    of_previous: float | None


@dataclass(frozen=True, slots=True)
class ReportFilters:
    """What the report was asked for: one wave, a time window, a breakdown (``zone``, ``attr:job_title``) and
    the zone of the hourly series and of times shown."""

    zone: str
    wave: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    by: str | None = None


@dataclass(frozen=True, slots=True)
class CampaignReport:
    """Everything ``campaign report`` shows of one campaign (see the module doc)."""

    campaign: Campaign
    event: Event
    filters: ReportFilters
    generated_at: datetime
    totals: Tally
    waves: tuple[WaveLine, ...]
    funnel_wave: str | None
    funnel: tuple[FunnelStep, ...]
    links: tuple[LinkLine, ...]
    hourly: tuple[HourLine, ...]
    to_open: Delays
    to_registration: Delays
    undelivered: tuple[Undelivered, ...]
    breakdown: tuple[GroupLine, ...] | None = None
    """The first breakdown asked for (``filters.by``): its rows."""
    local_hours: tuple[ZoneHours, ...] | None = None
    """With ``local_hours=True``: people's activity by their own zone and local hour of the day."""
    funnel_registered: FunnelRegistrations = FunnelRegistrations.ANY
    """Which registrations the funnel's registered step counts."""
    attendees: int = 0
    """Contacts who joined the event (its attendee report imported), recipients or not: 0 while none is known, and
    the funnel then ends at registered."""
    breakdowns: tuple[BreakdownLines, ...] = ()
    """Every breakdown asked for, in the order asked (the first is :attr:`breakdown`)."""

    @property
    def undelivered_total(self) -> int:
        """All the messages that did not reach their recipient (the list holds the latest of them)."""
        return sum(self.totals.statuses[s] for s in _UNDELIVERED)


@dataclass(frozen=True, slots=True)
class CampaignLine:
    """One campaign of ``campaign report --all``: the campaign, its event and its tally."""

    campaign: Campaign
    event: Event
    tally: Tally


def parse_breakdown(text: str) -> tuple[Breakdown, str | None]:
    """``zone``, ``country``, ``organisation``, ``locale`` or ``attr:NAME`` (a custom attribute, named as in the
    CSV header or as templates name it: ``attr:Job Title`` is ``job_title``); ValidationError otherwise."""
    kind, _, name = text.strip().partition(":")
    try:
        breakdown = Breakdown(kind.strip().lower())
    except ValueError:
        choices = ", ".join(b.value if b is not Breakdown.ATTRIBUTE else "attr:NAME" for b in Breakdown)
        raise ValidationError(f"--by {text!r} is not one of {choices}") from None
    if breakdown is not Breakdown.ATTRIBUTE:
        if name:
            raise ValidationError(f"--by {text!r}: only attr takes a name (attr:NAME)")
        return breakdown, None
    attribute = attribute_name(name)
    if not attribute:
        raise ValidationError(f"--by {text!r}: name the custom attribute, like attr:job_title")
    return breakdown, attribute


def parse_moment(text: str, zone: str, what: str) -> datetime:
    """An instant from an ISO date (midnight in ``zone``), a date and time (wall-clock time in ``zone``) or one
    with a UTC offset (``2026-06-19T09:00+02:00``, ``...Z``); ValidationError starting with ``what``."""
    raw = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            day = date.fromisoformat(raw)
            return local_to_utc(datetime(day.year, day.month, day.day), zone, what)
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ValidationError(f"{what} {raw!r} is not a date or time like 2026-06-19 or 2026-06-19T09:00") from None
    if moment.tzinfo is not None:
        return moment.astimezone(UTC)
    return local_to_utc(moment, zone, what)


def _breakdown_name(breakdown: tuple[Breakdown, str | None] | None) -> str | None:
    """``zone``, ``attr:job_title``: how the report names its breakdown."""
    if breakdown is None:
        return None
    kind, attribute = breakdown
    return kind.value if attribute is None else f"{kind.value}:{attribute}"


def report_zone(text: str) -> str:
    """The IANA zone ``text`` names (case-insensitively); ValidationError otherwise."""
    try:
        return parse_timezone(text)
    except FieldError:
        raise ValidationError(f"--zone {text.strip()!r} is not an IANA time zone (e.g. Asia/Kolkata)") from None


def campaign_report(
    db: Database,
    ref: str,
    *,
    wave: str | None = None,
    since: str | None = None,
    until: str | None = None,
    by: str | Sequence[str] | None = None,
    zone: str | None = None,
    undelivered: int = UNDELIVERED_SHOWN,
    local_hours: bool = False,
    now: datetime | None = None,
) -> CampaignReport:
    """The report of campaign ``ref`` (name or id), read in one snapshot; see the module doc for the filters.
    With ``local_hours``, also people's activity by their own zone and local hour (:class:`ZoneHours`). ``by``
    is one breakdown or several (``["zone", "country"]``): several cost about one, counted in one pass
    (:mod:`campaign.store.report_cube`); ``filters.by`` and ``breakdown`` are the first's.
    Raises :class:`NotFoundError` (campaign, wave) and :class:`ValidationError` (a filter)."""
    asked = [by] if isinstance(by, str) else list(by or ())
    breakdowns = [parse_breakdown(b) for b in asked if b]
    with db.read_together() as (conn, beside), ThreadPoolExecutor(max_workers=1) as worker:
        report_store.snapshot(conn)
        campaign = find_campaign(conn, ref)
        event = _event(conn, campaign)
        shown_zone = report_zone(zone) if zone else event.timezone
        filters = ReportFilters(
            zone=shown_zone,
            wave=wave,
            since=parse_moment(since, shown_zone, "--since") if since else None,
            until=parse_moment(until, shown_zone, "--until") if until else None,
            by=_breakdown_name(breakdowns[0]) if breakdowns else None,
        )
        if filters.since and filters.until and filters.until <= filters.since:
            raise ValidationError("--until must be later than --since")
        waves = campaign_store.waves_of(conn, campaign.id)
        if wave is not None:
            waves = [w for w in waves if w.name == wave]
            if not waves:
                raise NotFoundError(f"campaign {campaign.name} has no wave {wave!r} (see `campaign waves list`)")
        scope = Scope(event.id, tuple(w.id for w in waves), REGISTER_LINK, filters.since, filters.until)
        fields = _fields(breakdowns)
        # What reads neither what recipients did nor anything this connection works out (the breakdowns' message
        # counts) and who registered are counted on the second connection, in the same snapshot, meanwhile.
        # People's local hours read who registered and what recipients did together: then both are here.
        split = beside is not None and not local_hours
        aside = worker.submit(_beside, beside, scope, fields, split) if beside is not None else None
        with _prepared(conn, scope, people=not split):
            counts = report_store.message_counts(conn, scope, WAVES)
            acted = report_store.engagement(conn, WAVES)
            attended = report_store.joined(conn, scope, WAVES)
            to_open = report_store.open_delays(conn)
            names = {w.id: w.name for w in waves}
            links = tuple(
                LinkLine(names[c.wave_id], c.link_index, c.name, c.url, c.human, c.machine, c.clicks)
                for c in report_store.links_clicked(conn)
            )
            groups_acted = report_cube.engagement(conn, fields) if fields else []
            groups_attended = report_cube.joined(conn, scope, fields) if fields else []
            quarters = report_store.quarter_hours(conn, ("opened", "clicked"))
            shown_undelivered = tuple(report_store.undelivered(conn, scope, undelivered))
            joined_total = report_store.joined(conn, scope, TOTAL)
            groups_counted, registered = aside.result() if aside is not None else _beside(conn, scope, fields, False)
            if not split:
                registered = _registrations(conn, scope, fields, own=False)
            per_wave = _tallied(counts, acted, registered.per_wave, attended)
            lines = tuple(WaveLine(w, per_wave.get(w.id) or _empty()) for w in waves)
            tables = _breakdowns(breakdowns, groups_counted, groups_acted, registered.groups, groups_attended)
            for quarter, found in registered.quarters.items():
                quarters.setdefault(quarter, {}).update(found)
            funnel_line = _funnel_wave(lines)
            totals = _sum(per_wave.values(), registered.total, joined_total)
            attendees = attendance_store.attendee_count(conn, event.id)
            # Once the platform's registrations are known, a click on Register is only the intent to register.
            funnel_registered = (
                FunnelRegistrations.CONFIRMED if totals.registered_confirmed else FunnelRegistrations.ANY
            )
            return CampaignReport(
                campaign=campaign,
                event=event,
                filters=filters,
                generated_at=now or datetime.now(UTC),
                totals=totals,
                waves=lines,
                funnel_wave=funnel_line.wave.name if funnel_line else None,
                funnel=_funnel(funnel_line.tally, funnel_registered, attendees > 0) if funnel_line else (),
                funnel_registered=funnel_registered,
                attendees=attendees,
                links=links,
                hourly=_local_hours(quarters, ZoneInfo(shown_zone)),
                to_open=to_open,
                to_registration=registered.delays,
                undelivered=shown_undelivered,
                breakdown=tables[0].rows if tables else None,
                breakdowns=tables,
                local_hours=_zone_hours(conn, event.timezone) if local_hours else None,
            )


def campaign_lines(db: Database) -> list[CampaignLine]:
    """Every campaign (newest first) with its tally: ``campaign report --all``."""
    with db.read() as conn:
        report_store.snapshot(conn)
        lines = []
        for campaign in campaign_store.all_campaigns(conn):
            event = _event(conn, campaign)
            waves = campaign_store.waves_of(conn, campaign.id)
            scope = Scope(event.id, tuple(w.id for w in waves), REGISTER_LINK)
            with _prepared(conn, scope):
                per_wave = _tallies(conn, scope, WAVES)
                tally = _sum(
                    per_wave.values(), _registered(conn, TOTAL).get(None), report_store.joined(conn, scope, TOTAL)
                )
            lines.append(CampaignLine(campaign, event, tally))
        return lines


@contextmanager
def _prepared(conn: Connection, scope: Scope, *, people: bool = True) -> Iterator[None]:
    """The store's temporary tables for ``scope`` (without who registered: ``people`` False), for the length of
    the block. Not released after an error: the transaction's rollback takes them away (and PostgreSQL runs
    nothing more in a failed transaction)."""
    report_store.prepare(conn, scope, people=people)
    yield
    report_store.release(conn)


@dataclass(frozen=True, slots=True)
class _Registrations:
    """Who registered after a message reached them, as a report shows it: per wave, over the scope, per group of
    each breakdown (none without), how long after, and by quarter hour (``registered``)."""

    per_wave: list[report_store.Registered]
    total: report_store.Registered | None
    groups: list[list[report_store.Registered]]
    delays: Delays
    quarters: dict[int, dict[str, int]]


def _registrations(conn: Connection, scope: Scope, fields: report_cube.Fields | None, *, own: bool) -> _Registrations:
    """Who registered, from the store's tables of who registered: filled (and dropped) here with ``own``, else
    those of :func:`_prepared`."""
    if own:
        report_store.prepare(conn, scope, facts=False)
    found = _Registrations(
        report_store.registered(conn, WAVES),
        _registered(conn, TOTAL).get(None),
        report_cube.registered(conn, fields) if fields else [],
        report_store.registration_delays(conn),
        report_store.quarter_hours(conn, ("registered",)),
    )
    if own:
        report_store.release(conn)
    return found


_NOBODY = _Registrations([], None, [], Delays(), {})


def _beside(
    conn: Connection, scope: Scope, fields: report_cube.Fields | None, registrations: bool
) -> tuple[list[list[tuple[Any, str, int]]], _Registrations]:
    """The report's work that needs no temporary table of another connection: the breakdowns' message counts, and
    with ``registrations`` who registered (else :data:`_NOBODY`, for the caller to count)."""
    counted = report_cube.message_counts(conn, scope, fields) if fields else []
    return counted, _registrations(conn, scope, fields, own=True) if registrations else _NOBODY


def _event(conn: Connection, campaign: Campaign) -> Event:
    event = event_store.find(conn, str(campaign.event_id))
    assert event is not None  # a campaign's event cannot be deleted (foreign key, RESTRICT)
    return event


def _empty() -> Tally:
    return Tally(dict.fromkeys(MessageStatus, 0))


def _registered(conn: Connection, by: By) -> dict[Any, report_store.Registered]:
    return {r.key: r for r in report_store.registered(conn, by)}


def _tallies(conn: Connection, scope: Scope, by: By) -> dict[Any, Tally]:
    """A tally per group: the messages by status, what their recipients did, who registered, who joined."""
    return _tallied(
        report_store.message_counts(conn, scope, by),
        report_store.engagement(conn, by),
        report_store.registered(conn, by),
        report_store.joined(conn, scope, by),
    )


def _fields(breakdowns: Sequence[tuple[Breakdown, str | None]]) -> report_cube.Fields | None:
    """The contact fields the breakdowns group by (None without a breakdown)."""
    if not breakdowns:
        return None
    return report_cube.Fields(tuple(By(breakdown=kind, attribute=attribute) for kind, attribute in breakdowns))


def _breakdowns(
    breakdowns: Sequence[tuple[Breakdown, str | None]],
    counts: Sequence[Iterable[tuple[Any, str, int]]],
    engagement: Sequence[Iterable[report_store.Engagement]],
    registered: Sequence[Iterable[report_store.Registered]],
    attended: Sequence[Mapping[Any, int]],
) -> tuple[BreakdownLines, ...]:
    """Each breakdown's lines, largest groups first, from its counts (each breakdown's, in the order asked; every
    breakdown counted at once by :mod:`campaign.store.report_cube`, one pass over the messages, one over what
    their recipients did ...): tallied apart."""
    each = zip(breakdowns, counts, engagement, registered, attended, strict=True)
    tables = []
    for breakdown, counted, acted, people, attendees in each:
        tallies = _tallied(counted, acted, people, attendees)
        ordered = sorted(tallies.items(), key=lambda kv: (-kv[1].targeted, kv[0] is None, str(kv[0])))
        rows = tuple(GroupLine(None if key is None else str(key), tally) for key, tally in ordered)
        tables.append(BreakdownLines(_breakdown_name(breakdown) or "", rows))
    return tuple(tables)


def _tallied(
    counts: Iterable[tuple[Any, str, int]],
    engagement: Iterable[report_store.Engagement],
    registered: Iterable[report_store.Registered],
    attended: Mapping[Any, int],
) -> dict[Any, Tally]:
    """A tally per group (every group with messages) from its counts: messages by status, what their recipients
    did, who registered, who joined."""
    statuses: dict[Any, dict[MessageStatus, int]] = {}
    for key, status, count in counts:
        statuses.setdefault(key, dict.fromkeys(MessageStatus, 0))[MessageStatus(status)] = count
    acted = {e.key: e for e in engagement}
    joined = {r.key: r for r in registered}
    tallies = {}
    for key, by_status in statuses.items():
        e = acted.get(key) or report_store.Engagement(key)
        r = joined.get(key) or report_store.Registered(key)
        tallies[key] = Tally(
            by_status,
            human_opened=e.human_opened,
            machine_opened=e.machine_opened,
            human_clicked=e.human_clicked,
            machine_clicked=e.machine_clicked,
            register_clicked=e.register_clicked,
            registered=r.total,
            registered_by_source=dict(r.by_source or {}),
            unsubscribed=e.unsubscribed,
            registered_confirmed=r.confirmed,
            joined=attended.get(key, 0),
        )
    return tallies


def _sum(tallies: Iterable[Tally], registered: report_store.Registered | None, joined: Mapping[Any, int]) -> Tally:
    """The tally of several waves: counts of messages add up (each message is of one wave); registrations and
    attendances do not (one person gets several waves), so they are ``registered`` and ``joined`` (by
    :data:`TOTAL`'s key), counted over the whole scope."""
    found = list(tallies)
    return Tally(
        {s: sum(t.statuses[s] for t in found) for s in MessageStatus},
        human_opened=sum(t.human_opened for t in found),
        machine_opened=sum(t.machine_opened for t in found),
        human_clicked=sum(t.human_clicked for t in found),
        machine_clicked=sum(t.machine_clicked for t in found),
        register_clicked=sum(t.register_clicked for t in found),
        registered=registered.total if registered else 0,
        registered_by_source=dict(registered.by_source or {}) if registered else {},
        unsubscribed=sum(t.unsubscribed for t in found),
        registered_confirmed=registered.confirmed if registered else 0,
        joined=joined.get(None, 0),
    )


def _funnel_wave(lines: Sequence[WaveLine]) -> WaveLine | None:
    """The wave whose funnel the report shows: the invitation (where people meet the registration link), else the
    first wave in the report (the one ``--wave`` chose); None for a campaign without waves (a draft's can all be
    removed)."""
    return next((line for line in lines if line.wave.kind is WaveKind.INVITATION), lines[0] if lines else None)


def _funnel(tally: Tally, registered: FunnelRegistrations, attendance: bool) -> tuple[FunnelStep, ...]:
    """delivered → opened (by the person) → clicked Register → registered (after the message) → joined (once the
    event's attendance is imported: ``attendance``), in recipients of one wave; ``registered`` says which
    registrations the registered step counts."""
    steps = [
        ("delivered", tally.delivered),
        ("opened", tally.human_opened),
        ("clicked_register", tally.register_clicked),
        ("registered", tally.registered_confirmed if registered is FunnelRegistrations.CONFIRMED else tally.registered),
    ]
    if attendance:
        steps.append(("joined", tally.joined))
    return tuple(
        FunnelStep(name, count, rate(count, tally.delivered), rate(count, steps[i - 1][1]) if i else None)
        for i, (name, count) in enumerate(steps)
    )


def _zone_hours(conn: Connection, organiser_zone: str) -> tuple[ZoneHours, ...]:
    """People's first opens and registrations by their zone and local hour there, most opens first: the zones'
    offsets over the activity worked out here (per zone, not per row), the counting done by the database."""
    activity = report_store.activity_range(conn)
    if activity is None:
        return ()
    spans: list[OffsetSpan] = []
    for zone in {*report_store.contact_zones(conn), organiser_zone}:
        with suppress(ValueError):  # a zone this machine's time zone database lacks: counted in UTC
            spans += offset_spans(zone, *activity)
    counts: dict[str | None, tuple[list[int], list[int]]] = {}
    for row in report_store.local_hours(conn, spans, organiser_zone):
        opened, registered = counts.setdefault(row.zone, ([0] * 24, [0] * 24))
        opened[row.hour] += row.opened
        registered[row.hour] += row.registered
    lines = [ZoneHours(zone, tuple(opened), tuple(registered)) for zone, (opened, registered) in counts.items()]
    return tuple(sorted(lines, key=lambda z: (-sum(z.opened), -sum(z.registered), z.zone is None, z.zone or "")))


def _local_hours(quarters: Mapping[int, Mapping[str, int]], zone: ZoneInfo) -> tuple[HourLine, ...]:
    """Quarter hours (UTC) added up into the local hours of ``zone`` that hold them: per bucket, not per row."""
    hours: dict[datetime, dict[str, int]] = {}
    for quarter, counts in quarters.items():
        start = datetime.fromtimestamp(quarter * QUARTER_HOUR, UTC)
        local = start.astimezone(zone)
        # The instant the local hour holding this quarter began: the same offset holds over the hour, as zones
        # change their offset on the hour (Lord Howe's half-hour shift aside).
        hour = start - timedelta(minutes=local.minute, seconds=local.second)
        sums = hours.setdefault(hour, {})
        for name, n in counts.items():
            sums[name] = sums.get(name, 0) + n
    return tuple(HourLine(hour.astimezone(zone), **hours[hour]) for hour in sorted(hours))


# --- JSON ------------------------------------------------------------------------------------------------------


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _instant(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, to the second."""
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def tally_document(tally: Tally) -> dict[str, Any]:
    """A tally as JSON (see README, Reports)."""
    return {
        "messages": {"targeted": tally.targeted, **{s.value: n for s, n in tally.statuses.items()}},
        "attempted": tally.attempted,
        "delivered": tally.delivered,
        "opened": {"human": tally.human_opened, "machine": tally.machine_opened},
        "clicked": {"human": tally.human_clicked, "machine": tally.machine_clicked, "register": tally.register_clicked},
        "registered": {
            "total": tally.registered,
            **{s.value: tally.registered_by_source.get(s, 0) for s in RegistrationSource},
            "confirmed": tally.registered_confirmed,
        },
        "unsubscribed": tally.unsubscribed,
        "rates": {name: _rounded(r) for name, r in tally.rates().items()},
        "joined": tally.joined,
    }


def _campaign_document(campaign: Campaign, event: Event) -> dict[str, Any]:
    return {
        "id": campaign.id,
        "name": campaign.name,
        "status": campaign.status.value,
        "list": campaign.list_name,
        "launched_at": _instant(campaign.launched_at),
        "event": {
            "slug": event.slug,
            "title": event.title,
            "starts_at": _instant(event.starts_at),
            "timezone": event.timezone,
        },
    }


def _delays_document(delays: Delays) -> dict[str, Any]:
    return {"count": delays.count, "median_seconds": delays.median, "p90_seconds": delays.p90}


def report_document(report: CampaignReport) -> dict[str, Any]:
    """The report as a JSON document, shape ``campaign-report/1`` (see README, Reports)."""
    f = report.filters
    return {
        "schema": REPORT_SCHEMA,
        "generated_at": _instant(report.generated_at),
        "campaign": _campaign_document(report.campaign, report.event),
        "filters": {"wave": f.wave, "since": _instant(f.since), "until": _instant(f.until), "by": f.by, "zone": f.zone},
        "totals": tally_document(report.totals),
        "waves": [
            {"name": w.wave.name, "kind": w.wave.kind.value, "status": w.wave.status.value, **tally_document(w.tally)}
            for w in report.waves
        ],
        "funnel_wave": report.funnel_wave,
        "funnel": [
            {
                "step": s.step,
                "count": s.count,
                "of_delivered": _rounded(s.of_delivered),
                "of_previous": _rounded(s.of_previous),
            }
            for s in report.funnel
        ],
        "breakdown": None
        if report.breakdown is None
        else {"by": f.by, "rows": [{"key": g.key, **tally_document(g.tally)} for g in report.breakdown]},
        "links": [
            {
                "wave": link.wave,
                "index": link.index,
                "name": link.name,
                "url": link.url,
                "clicked_human": link.clicked_human,
                "clicked_machine": link.clicked_machine,
                "clicks_human": link.clicks_human,
            }
            for link in report.links
        ],
        "hourly": {
            "zone": f.zone,
            "rows": [
                {
                    "hour": h.start.isoformat(),
                    "opened": h.opened,
                    "clicked": h.clicked,
                    "registered": h.registered,
                }
                for h in report.hourly
            ],
        },
        "timing": {
            "to_open": _delays_document(report.to_open),
            "to_registration": _delays_document(report.to_registration),
        },
        "undelivered": {
            "total": report.undelivered_total,
            "rows": [
                {
                    "email": u.email,
                    "wave": u.wave,
                    "status": u.status,
                    "attempts": u.attempts,
                    "smtp_reply": u.smtp_reply,
                    "error": u.error,
                    "at": _instant(u.at),
                }
                for u in report.undelivered
            ],
        },
        "local_hours": None
        if report.local_hours is None
        else [
            {
                "zone": z.zone,
                "opened": list(z.opened),
                "registered": list(z.registered),
                "peak_open_hour": z.peak_open_hour,
                "peak_registration_hour": z.peak_registration_hour,
            }
            for z in report.local_hours
        ],
        "funnel_registered": report.funnel_registered.value,
        "attendees": report.attendees,
    }


def lines_document(lines: Iterable[CampaignLine], generated_at: datetime) -> dict[str, Any]:
    """``campaign report --all`` as a JSON document, shape ``campaign-report-all/1``."""
    return {
        "schema": LINES_SCHEMA,
        "generated_at": _instant(generated_at),
        "campaigns": [
            {**_campaign_document(line.campaign, line.event), "totals": tally_document(line.tally)} for line in lines
        ],
    }


# --- CSV -------------------------------------------------------------------------------------------------------


def write_report_csv(report: CampaignReport, out: TextIO) -> None:
    """The report's tallies as one CSV table: a row per wave (``section`` wave), the total, then a row per group
    of the breakdown (``section`` the breakdown, e.g. ``zone``); every cell spreadsheet-safe."""
    writer = CsvWriter(out)
    writer.row(["section", "name", *report.totals.columns()])
    for w in report.waves:
        writer.row(["wave", w.wave.name, *w.tally.columns().values()])
    writer.row(["total", report.campaign.name, *report.totals.columns().values()])
    for g in report.breakdown or ():
        writer.row([report.filters.by, g.key, *g.tally.columns().values()])


def write_lines_csv(lines: Iterable[CampaignLine], out: TextIO) -> None:
    """``campaign report --all`` as CSV: a row per campaign."""
    writer = CsvWriter(out)
    writer.row(["campaign", "status", "event", *_empty().columns()])
    for line in lines:
        writer.row([line.campaign.name, line.campaign.status.value, line.event.slug, *line.tally.columns().values()])
