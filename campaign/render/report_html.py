"""One campaign's report as a self-contained HTML file (``campaign report --format html``): readable offline, in
a browser, printed, or attached to an email.

Contract:

* :func:`report_html` lays out the report's JSON document (``campaign-report/1``, made by
  :func:`campaign.services.report_documents.report_document`): the file shows the numbers the JSON holds and computes
  none but their presentation (percentages, durations, bar lengths). The document itself travels in the file, in
  the JSON data island ``report-data``, for tools that read the file back.
* Nothing is fetched: the chart library, the chart script and the stylesheet are inlined (:mod:`.charts`), and
  no element names another resource (no ``src``, ``href``; no ``url()`` in the style). The file's
  Content-Security-Policy allows its inline scripts and its style by their SHA-256 hashes and nothing else
  (``default-src 'none'``): a value that slipped through escaping could neither run nor load anything.
* Data are text. The template is autoescaped, addresses (links of the waves) are shown as text, never as links,
  and JSON data islands escape every ``<``, ``>``, ``&`` and ``'`` (Jinja's ``tojson``), so a name holding
  ``</script>`` cannot end one. The template is this package's own (data never reach it as template code), so
  it needs no sandbox.
* Charts add to tables, never replace them: the hourly chart's numbers are in the table below it, the funnel's
  bars are inline SVG beside their counts (drawn without script, and printed), and print shows the tables and
  hides the charts.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup

from campaign.models import FunnelRegistrations, MessageStatus, RegistrationSource
from campaign.render import charts
from campaign.render.figures import (
    FUNNEL_JOINED_NOTE,
    FUNNEL_REGISTERED_NOTES,
    NONE,
    clear_peak,
    duration,
    funnel_elsewhere_note,
    percent,
)

_SCRIPTS = ("uPlot.iife.min.js", "charts.js")
_STYLES = ("uPlot.min.css", "charts.css", "report.css")
_HOURLY = {"opened": "Opened", "clicked": "Clicked", "registered": "Registered"}
"""The hourly series' columns, and their labels in the chart and the table."""


@dataclass(frozen=True, slots=True)
class Measure:
    """One number of a tally (a row of the per-wave table; some are columns of the breakdown too): its label,
    where the document's tally holds it, and the name of its rate in the tally's ``rates`` (None: no rate)."""

    label: str
    path: tuple[str, ...]
    rate: str | None = None
    in_breakdown: bool = False

    def cell(self, tally: Mapping[str, Any]) -> tuple[int, float | None]:
        """The count and its rate in ``tally`` (a tally of the document)."""
        value: Any = tally
        for key in self.path:
            value = value[key]
        return int(value), None if self.rate is None else tally["rates"][self.rate]


def _state(status: MessageStatus) -> Measure:
    """The messages in ``status``, with their rate where a tally has one (named as :meth:`Tally.rates` names it:
    sent messages are the delivered ones)."""
    if status is MessageStatus.SENT:
        return Measure("Delivered (sent)", ("messages", status.value), "delivered", in_breakdown=True)
    rated = status in (MessageStatus.DEFERRED, MessageStatus.BOUNCED, MessageStatus.FAILED, MessageStatus.SUPPRESSED)
    return Measure(status.value.capitalize(), ("messages", status.value), status.value if rated else None)


MEASURES = (
    Measure("Targeted", ("messages", "targeted"), in_breakdown=True),
    *(_state(s) for s in MessageStatus),
    Measure("Attempted", ("attempted",)),
    Measure("Opened by people", ("opened", "human"), "opened_human", in_breakdown=True),
    Measure("Opened by machines", ("opened", "machine"), "opened_machine", in_breakdown=True),
    Measure("Clicked by people", ("clicked", "human"), "clicked_human", in_breakdown=True),
    Measure("Clicked by machines", ("clicked", "machine"), "clicked_machine", in_breakdown=True),
    Measure("Clicked Register", ("clicked", "register"), "clicked_register"),
    Measure("Registered", ("registered", "total"), "registered", in_breakdown=True),
    *(Measure(f"Registered: {s.value}", ("registered", s.value)) for s in RegistrationSource),
    Measure("Registered: confirmed", ("registered", "confirmed")),
    Measure("Unsubscribed", ("unsubscribed",), "unsubscribed", in_breakdown=True),
    Measure("Joined the event", ("joined",), "joined", in_breakdown=True),
)
"""Every count of a tally, in the JSON document's order: the rows of the per-wave table; those ``in_breakdown``
are the columns of the breakdown table (each group's engagement, as the terminal table shows it)."""

# The funnel's steps as a reader names them.
_STEPS = {
    "delivered": "Delivered",
    "opened": "Opened",
    "clicked_register": "Clicked Register",
    "registered": "Registered",
    "joined": "Joined",
}
_JOINED = ("joined",)


def report_html(document: Mapping[str, Any]) -> str:
    """The report ``document`` (``campaign-report/1``) as one self-contained HTML page (see the module doc)."""
    hourly = document["hourly"]
    rows = hourly["rows"]
    chart = charts.time_series(
        hourly["zone"],
        [datetime.fromisoformat(row["hour"]) for row in rows],
        {label: [row[key] for row in rows] for key, label in _HOURLY.items()},
    )
    page = _page()
    # Joined is a count only once the event's attendee report is imported: until then its rows would be zeros.
    attendance = bool(document.get("attendees"))
    measures = [m for m in MEASURES if attendance or m.path != _JOINED]
    return (
        _environment()
        .get_template("report.html")
        .render(
            doc=document,
            chart=chart,
            hourly_labels=_HOURLY,
            measures=measures,
            breakdown_measures=[m for m in measures if m.in_breakdown],
            steps=_STEPS,
            funnel_note=FUNNEL_REGISTERED_NOTES[FunnelRegistrations(document.get("funnel_registered", "any"))],
            nested_note=funnel_elsewhere_note(
                *(int((document.get("funnel_elsewhere") or {}).get(k, 0)) for k in ("registered", "joined")),
                attendance=attendance,
            ),
            joined_note=FUNNEL_JOINED_NOTE if attendance else None,
            local_peaks=_local_peaks(document.get("local_hours") or []),
            scripts=page.scripts,
            style=page.style,
            policy=page.policy,
        )
    )


@dataclass(frozen=True, slots=True)
class _Peaks:
    """The local hours of the day (0 to 23) in which most people opened, and registered, over every zone (each
    person on their own clock), or None where no hour has more than every other (:func:`clear_peak`)."""

    opened: int | None
    registered: int | None


def _local_peaks(zones: Sequence[Mapping[str, Any]]) -> _Peaks:
    """The peaks of the document's ``local_hours`` (its zones' hours of the day, added up)."""

    def peak(series: str) -> int | None:
        return clear_peak([sum(z[series][h] for z in zones) for h in range(24)])

    return _Peaks(peak("opened"), peak("registered"))


@dataclass(frozen=True, slots=True)
class _Page:
    """What every report inlines: its scripts, its style, and the policy that allows exactly those."""

    scripts: tuple[Markup, ...]
    style: Markup
    policy: str


def _inlinable(name: str, text: str) -> str:
    """``text``, checked to hold nothing that would end (or change the parsing of) the element it is inlined in."""
    if "</script" in text.lower() or "</style" in text.lower() or "<!--" in text:
        raise AssertionError(f"{name} cannot be inlined in HTML")
    return text


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


@cache
def _page() -> _Page:
    files = {name: body.decode() for name, body in charts.assets().items()}
    files["report.css"] = resources.files("campaign.render").joinpath("html", "report.css").read_text("utf-8")
    scripts = tuple(_inlinable(name, files[name]) for name in _SCRIPTS)
    style = "\n".join(_inlinable(name, files[name]) for name in _STYLES)
    policy = (
        f"default-src 'none'; script-src {' '.join(_hash(s) for s in scripts)}; style-src {_hash(style)}; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    # The files are this package's own, checked above: they are markup as they are.
    return _Page(tuple(Markup(s) for s in scripts), Markup(style), policy)  # noqa: S704


@cache
def _environment() -> Environment:
    env = Environment(
        loader=charts.template_loader(),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    # The document island keeps the document's own key order (Jinja sorts keys by default).
    env.policies["json.dumps_kwargs"] = {"sort_keys": False}
    env.filters.update(
        percent=percent, duration=duration, instant=instant, hour=hour_label, none=_or_none, clock=_clock
    )
    return env


def instant(text: str | None, zone: str | None = None) -> str:
    """A document's instant (``2026-06-19T07:00:00Z``) as people read it: ``2026-06-19 07:00 UTC``, or in
    ``zone`` with its offset (``2026-06-19 09:00 +02:00 Europe/Zurich``); :data:`NONE` for None."""
    if text is None:
        return NONE
    moment = datetime.fromisoformat(text).astimezone(UTC)
    if zone is None:
        return f"{moment:%Y-%m-%d %H:%M} UTC"
    return f"{hour_label(moment.astimezone(ZoneInfo(zone)).isoformat())} {zone}"


def hour_label(text: str) -> str:
    """A local instant of the document (``2026-06-19T09:00:00+02:00``) as ``2026-06-19 09:00 +02:00``."""
    moment = datetime.fromisoformat(text)
    offset = moment.strftime("%z")
    return f"{moment:%Y-%m-%d %H:%M} {offset[:3]}:{offset[3:]}"


def _clock(hour: int | None) -> str:
    """An hour of the day (``09:00``), or :data:`NONE`."""
    return NONE if hour is None else f"{hour:02d}:00"


def _or_none(value: object, blank: str = "(none)") -> object:
    """A value of the data, or ``blank`` where there is none (a group of contacts without the field)."""
    return blank if value is None or value == "" else value
