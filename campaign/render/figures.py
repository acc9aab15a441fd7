"""How report figures are written for people: rates as percentages, waits as durations.

Contract: one spelling of a figure in every report format that shows one to a person (the terminal tables of
``campaign report``, its HTML file, the dashboard): :func:`percent` gives ``42%``, with one decimal under 10%
(``0.4%``: a bounce rate's size matters there), and ``–`` for a rate over nothing (None); :func:`duration` gives
``45s``, ``12m``, ``3h 05m``, ``2d 4h``, and ``–`` for None. Machine formats (CSV, JSON) keep the raw numbers.
:data:`FUNNEL_REGISTERED_NOTES` is the one wording of what a funnel's "registered" counts, :data:`FUNNEL_JOINED_NOTE`
of what its "joined" counts.
"""

from __future__ import annotations

from collections.abc import Sequence

from campaign.models import FunnelRegistrations

NONE = "–"
"""What a figure that does not exist (a rate over nothing, a median of no waits) is shown as."""


def percent(value: float | None) -> str:
    """``42%``; one decimal under 10% (``0.4%``); :data:`NONE` for None."""
    if value is None:
        return NONE
    return f"{value:.1%}" if value < 0.1 else f"{value:.0%}"


def duration(seconds: int | None) -> str:
    """``45s``, ``12m``, ``3h 05m``, ``2d 4h`` (the two largest units); :data:`NONE` for None."""
    if seconds is None:
        return NONE
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m" if minutes else f"{secs}s"


FUNNEL_REGISTERED_NOTES = {
    FunnelRegistrations.CONFIRMED: "Registered: confirmed by the webinar platform (its registrants imported, or its "
    "webhook); a click on Register alone is not counted.",
    FunnelRegistrations.ANY: "Registered: every registration, a click on Register included (nothing has come from "
    "the webinar platform yet: import its registrants, or connect its webhook).",
}
"""What the funnel's registered step counts, as every report format says it under the funnel."""


def clear_peak(counts: Sequence[int]) -> int | None:
    """The index (an hour of the day) with more than any other, for advice such as "send then next time"; None
    when two tie for the most, or all are 0: one registration in each of five hours says nothing about when to
    send (an analyst saw such a tie advised as the hour)."""
    best = max(counts, default=0)
    return counts.index(best) if best and counts.count(best) == 1 else None


def funnel_elsewhere_note(registered: int, joined: int, *, attendance: bool) -> str:
    """Under the funnel, in every format: its steps are nested, and who reached the last ones another way
    (:attr:`campaign.services.report_model.CampaignReport.funnel_elsewhere`)."""
    steps = "registered and joined count" if attendance else "registered counts"
    note = f"Each step is part of the one before: {steps} those who clicked Register in this wave."
    outside = []
    if registered:
        outside.append(
            f"{registered} more registered after it without clicking Register in it (another wave's link, a "
            "forwarded invitation, the webinar platform's own page)"
        )
    if attendance and joined:
        # Not "without clicking": someone who clicked, but whose registration the step does not count (made
        # before the message, or not confirmed by the platform), joined outside the step too.
        outside.append(f"{joined} more joined the event without being in its registered step")
    if outside:
        note += " Not in the funnel: " + "; ".join(outside) + "."
    return note


FUNNEL_JOINED_NOTE = (
    "Joined: recipients the event's attendee report (imported) lists as attendees; hosts and panelists are not counted."
)
"""What the funnel's joined step counts (shown once an attendee report is imported)."""
