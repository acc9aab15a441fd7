"""Where a campaign's waves sit on a time axis around their event: pure layout, no drawing.

Contract:

* Each point is placed by its distance from the event start on a signed logarithmic scale
  (``sign(d) · log(1 + |d| / 1 hour)``), so "7 days before", "1 day before" and "1 hour before" are all far enough
  apart to read, and a wave months away does not squash the rest: the scale spans from the earliest point to the
  latest (the event start always included), then is mapped to :data:`MARGIN` … ``100 - MARGIN`` percent.
* A point's label reads from the point towards the middle (``anchor`` ``start`` on the left half, ``end`` on the
  right), so it never runs off the axis, whatever the width.
* :func:`relative_text` says a distance in words (``7 days before``, ``1 h 30 min after``, ``at the start``), for
  the label and the textual version of the timeline.

The positions are percentages, for an SVG drawn at any width (campaign/web/templates/_waves.html).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

MARGIN = 4.0
"""Percent of the width kept free at each end, so a point's marker is never cut in half."""

_UNIT_SECONDS = 3600.0
"""The scale's unit: distances well under an hour are almost linear, beyond it logarithmic."""


@dataclass(frozen=True, slots=True)
class TimelinePoint:
    """One point on the axis: its ``name``, instant, ``position`` (percent of the width), which way its label
    reads (``start``: to the right of it, ``end``: to the left), and its distance from the event start in words."""

    name: str
    at: datetime
    position: float
    anchor: str
    relative: str


@dataclass(frozen=True, slots=True)
class Timeline:
    """The event start's position and the points, in the order given."""

    start: float
    points: list[TimelinePoint]
    now: float | None = None
    """Where ``now`` falls, when it is inside the axis's span (None otherwise)."""


def layout(event_start: datetime, points: Sequence[tuple[str, datetime]], now: datetime | None = None) -> Timeline:
    """Place ``points`` (name, instant) on an axis around ``event_start``; see the module doc. ``now``, when given
    and within the span of the points and the start, is placed too."""
    scaled = [_scale(at - event_start) for _, at in points]
    low, high = min([0.0, *scaled]), max([0.0, *scaled])
    span = high - low

    def percent(value: float) -> float:
        if span == 0:
            return 50.0
        return round(MARGIN + (value - low) / span * (100 - 2 * MARGIN), 2)

    placed = []
    for (name, at), value in zip(points, scaled, strict=True):
        position = percent(value)
        placed.append(
            TimelinePoint(name, at, position, "start" if position <= 50 else "end", relative_text(at - event_start))
        )
    now_at = None
    if now is not None and low <= _scale(now - event_start) <= high and span:
        now_at = percent(_scale(now - event_start))
    return Timeline(percent(0.0), placed, now_at)


def relative_text(distance: timedelta) -> str:
    """``7 days before``, ``1 h 30 min after``, ``at the start``: ``distance`` from the event start in words
    (to the minute)."""
    minutes = round(abs(distance.total_seconds()) / 60)
    if minutes == 0:
        return "at the start"
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = []
    if days:
        parts.append(f"{days} day{'s' if days != 1 else ''}")
    if hours:
        parts.append(f"{hours} h")
    if mins and not days:  # minutes matter hours before, not days before
        parts.append(f"{mins} min")
    side = "before" if distance < timedelta(0) else "after"
    return f"{' '.join(parts) or '1 min'} {side}"


def _scale(distance: timedelta) -> float:
    seconds = distance.total_seconds()
    return math.copysign(math.log1p(abs(seconds) / _UNIT_SECONDS), seconds)
