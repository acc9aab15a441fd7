"""The report model written out: the JSON documents (``schema`` names their version; keys are only ever added
within one version) and the CSV tables, through the one spreadsheet-safe writer
(:mod:`campaign.sources.csv_writer`). The model is :mod:`campaign.services.report_model`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

from campaign.models import Campaign, Event, RegistrationSource
from campaign.services.report_model import CampaignLine, CampaignReport, Delays, GroupLine, Tally, rounded
from campaign.sources.csv_writer import CsvWriter

REPORT_SCHEMA = "campaign-report/1"
LINES_SCHEMA = "campaign-report-all/1"

# --- JSON ------------------------------------------------------------------------------------------------------


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
        "rates": {name: rounded(r) for name, r in tally.rates().items()},
        "joined": tally.joined,
        "expired_after_attempts": tally.expired_after_attempts,  # of the expired, those counted as attempted
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
                "of_delivered": rounded(s.of_delivered),
                "of_previous": rounded(s.of_previous),
            }
            for s in report.funnel
        ],
        "breakdown": None if report.breakdown is None else _breakdown_document(str(f.by), report.breakdown),
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
        # Every breakdown asked for, in the order asked ("breakdown" above is the first, kept as it was).
        "breakdowns": [_breakdown_document(b.by, b.rows) for b in report.breakdowns],
        # Beside the funnel, whose steps are each part of the one before: who registered, and joined, without
        # clicking the wave's Register link. Last: the keys before keep their places.
        "funnel_elsewhere": {"registered": report.funnel_elsewhere[0], "joined": report.funnel_elsewhere[1]},
    }


def _breakdown_document(by: str, rows: Iterable[GroupLine]) -> dict[str, Any]:
    return {"by": by, "rows": [{"key": g.key, **tally_document(g.tally)} for g in rows]}


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
    of each breakdown (``section`` the breakdown, e.g. ``zone``), in the order asked; every cell
    spreadsheet-safe."""
    writer = CsvWriter(out)
    writer.row(["section", "name", *report.totals.columns()])
    for w in report.waves:
        writer.row(["wave", w.wave.name, *w.tally.columns().values()])
    writer.row(["total", report.campaign.name, *report.totals.columns().values()])
    for breakdown in report.breakdowns:
        for g in breakdown.rows:
            writer.row([breakdown.by, g.key, *g.tally.columns().values()])


def write_lines_csv(lines: Iterable[CampaignLine], out: TextIO) -> None:
    """``campaign report --all`` as CSV: a row per campaign."""
    writer = CsvWriter(out)
    writer.row(["campaign", "status", "event", *Tally.empty().columns()])
    for line in lines:
        writer.row([line.campaign.name, line.campaign.status.value, line.event.slug, *line.tally.columns().values()])
