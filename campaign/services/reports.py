"""Delivery and engagement reports: the report model (:mod:`campaign.services.report_model`) built from the
database's counts, for every report format (the ``campaign report`` table, CSV and JSON, written by
:mod:`campaign.services.report_documents`; the HTML file and the dashboard).

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
  once the platform's registrations for the event are (its export imported, or its webhook: whatever wave or
  dates the report is kept to) it counts only those it confirmed (:class:`~campaign.models.FunnelRegistrations`),
  and the step is no longer the click counted twice. Each step is part of the one before (an analyst saw 150% of
  the step before): registered counts those who clicked Register in the wave, joined those of them who attended
  (:func:`campaign.store.reports.registered_through_link`); who did either without the click is
  :attr:`CampaignReport.funnel_elsewhere`, beside the funnel.
  Once the event's attendee report is imported (``campaign attendees import``: :attr:`CampaignReport.attendees`),
  the funnel gains its last step, ``joined``.
* The hourly series is in ``zone`` (default: the organiser's): each hour is a local hour there, labelled by its
  start with its UTC offset, so the two 02:00 hours of a night when clocks go back are two rows, and a zone half
  an hour off UTC (Asia/Kolkata) gets hours that start on its own hour. Hours without activity are left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from campaign.exceptions import ValidationError
from campaign.models import (
    Breakdown,
    Campaign,
    Event,
    FunnelRegistrations,
    MessageStatus,
    WaveKind,
)
from campaign.rules.contact_fields import FieldError, parse_timezone
from campaign.rules.event_fields import local_to_utc
from campaign.rules.zone_offsets import OffsetSpan, offset_spans
from campaign.services.campaigns import find_campaign, no_such_wave
from campaign.services.report_model import (
    BreakdownLines,
    CampaignLine,
    CampaignReport,
    FunnelStep,
    GroupLine,
    HourLine,
    LinkLine,
    ReportFilters,
    Tally,
    WaveLine,
    ZoneHours,
    rate,
)
from campaign.services.tracking import REGISTER_LINK
from campaign.sources.csv_contacts import attribute_name
from campaign.store import attendances as attendance_store
from campaign.store import campaigns as campaign_store
from campaign.store import events as event_store
from campaign.store import registrations as registration_store
from campaign.store import report_cube
from campaign.store import reports as report_store
from campaign.store.engine import Database
from campaign.store.reports import QUARTER_HOUR, TOTAL, WAVES, By, Delays, Scope

UNDELIVERED_SHOWN = 20
"""How many of the recipients who did not get a message a report lists by default (the latest first)."""


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
            moment = datetime(day.year, day.month, day.day)
        else:
            moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ValidationError(f"{what} {raw!r} is not a date or time like 2026-06-19 or 2026-06-19T09:00") from None
    return local_to_utc(moment, zone, what)  # an instant with an offset too: its year is checked there


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
        # Worded for the command line's --zone and the dashboard's zone field alike.
        raise ValidationError(f"zone {text.strip()!r} is not an IANA time zone (e.g. Asia/Kolkata)") from None


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
            chosen = [w for w in waves if w.name == wave]
            if not chosen:
                raise no_such_wave(campaign, wave, [w.name for w in waves])
            waves = chosen
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
            lines = tuple(WaveLine(w, per_wave.get(w.id) or Tally.empty()) for w in waves)
            tables = _breakdowns(breakdowns, groups_counted, groups_acted, registered.groups, groups_attended)
            for quarter, found in registered.quarters.items():
                quarters.setdefault(quarter, {}).update(found)
            funnel_line = _funnel_wave(lines)
            totals = _sum(per_wave.values(), registered.total, joined_total)
            attendees = attendance_store.attendee_count(conn, event.id)
            # Once the platform's registrations are known (for the event: the same whatever wave or dates the
            # report is kept to), a click on Register is only the intent to register.
            funnel_registered = (
                FunnelRegistrations.CONFIRMED
                if registration_store.any_confirmed(conn, event.id)
                else FunnelRegistrations.ANY
            )
            through = registered.through_link.get(funnel_line.wave.id) if funnel_line else None
            funnel = _funnel(funnel_line.tally, through, funnel_registered, attendees > 0) if funnel_line else ()
            return CampaignReport(
                campaign=campaign,
                event=event,
                filters=filters,
                generated_at=now or datetime.now(UTC),
                totals=totals,
                waves=lines,
                funnel_wave=funnel_line.wave.name if funnel_line else None,
                funnel=funnel,
                funnel_elsewhere=_elsewhere(funnel_line.tally, funnel, funnel_registered) if funnel_line else (0, 0),
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
    through_link: dict[int, report_store.ThroughLink]


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
        report_store.registered_through_link(conn, scope.event_id),
    )
    if own:
        report_store.release(conn)
    return found


_NOBODY = _Registrations([], None, [], Delays(), {}, {})


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
    tried: dict[Any, int] = {}  # of the expired messages, those that had been attempted
    for key, status, count in counts:
        if status == report_store.EXPIRED_AFTER_ATTEMPTS:
            tried[key] = tried.get(key, 0) + count
        else:
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
            expired_after_attempts=tried.get(key, 0),
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
        expired_after_attempts=sum(t.expired_after_attempts for t in found),
    )


def _funnel_wave(lines: Sequence[WaveLine]) -> WaveLine | None:
    """The wave whose funnel the report shows: the invitation (where people meet the registration link), else the
    first wave in the report (the one ``--wave`` chose); None for a campaign without waves (a draft's can all be
    removed)."""
    return next((line for line in lines if line.wave.kind is WaveKind.INVITATION), lines[0] if lines else None)


def _funnel(
    tally: Tally, through: report_store.ThroughLink | None, registered: FunnelRegistrations, attendance: bool
) -> tuple[FunnelStep, ...]:
    """delivered → opened (by the person) → clicked Register → registered (after the message) → joined (once the
    event's attendance is imported: ``attendance``), in recipients of one wave, each step part of the one before:
    registered counts those who clicked Register (``through``), joined those of them who attended, so no step is
    over 100% of the one before; ``registered`` says which registrations the registered step counts. Who reached
    a step another way is :func:`_elsewhere`'s."""
    through = through or report_store.ThroughLink(0)
    confirmed = registered is FunnelRegistrations.CONFIRMED
    steps = [
        ("delivered", tally.delivered),
        ("opened", tally.human_opened),
        ("clicked_register", tally.register_clicked),
        ("registered", through.confirmed if confirmed else through.registered),
    ]
    if attendance:
        steps.append(("joined", through.confirmed_joined if confirmed else through.joined))
    return tuple(
        FunnelStep(name, count, rate(count, tally.delivered), rate(count, steps[i - 1][1]) if i else None)
        for i, (name, count) in enumerate(steps)
    )


def _elsewhere(tally: Tally, funnel: Sequence[FunnelStep], registered: FunnelRegistrations) -> tuple[int, int]:
    """The funnel wave's recipients who registered after it (as its registered step counts them) without clicking
    its registration link, and who joined the event without being in its registered step: beside the funnel."""
    steps = {step.step: step.count for step in funnel}
    everyone = tally.registered_confirmed if registered is FunnelRegistrations.CONFIRMED else tally.registered
    return max(0, everyone - steps.get("registered", 0)), max(0, tally.joined - steps.get("joined", 0))


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
