"""A zone's UTC offsets over a stretch of time, as spans the database can join on: pure, time passed in.

Contract:

* :func:`offset_spans` cuts ``[first, last]`` (Unix seconds) into the spans over which ``zone`` keeps one UTC
  offset, each ``[since, until)`` with that offset in seconds. Adding a span's offset to an instant in it gives
  the local wall-clock time there, so a report can put each person's open into the local hour of *their* zone
  with one join and one GROUP BY (:func:`campaign.store.reports.local_hours`), never converting row by row.
* The offset is sampled once a day and each change found is narrowed to the second by bisection: a zone changes
  its offset at most a few times a year, so a month costs some thirty look-ups, not one per hour. Two changes
  within one day (no zone does this) would be seen as one.
* An unknown zone name raises :class:`ValueError` (the caller decides what to fall back on).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

STEP = 7 * 86_400


@dataclass(frozen=True, slots=True)
class OffsetSpan:
    """``[since, until)`` in Unix seconds, over which ``zone`` is ``offset`` seconds ahead of UTC."""

    zone: str
    since: int
    until: int
    offset: int


def offset_spans(zone: str, first: int, last: int) -> list[OffsetSpan]:
    """The spans covering ``first`` to ``last`` inclusive (Unix seconds) over which ``zone`` keeps one offset."""
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {zone!r}") from exc
    spans = []
    since, offset = first, _offset(tz, first)
    at = first
    while at < last:
        step = min(at + STEP, last)
        if _offset(tz, step) != offset:
            change = _first_change(tz, at, step, offset)
            spans.append(OffsetSpan(zone, since, change, offset))
            since, offset = change, _offset(tz, change)
            step = change
        at = step
    spans.append(OffsetSpan(zone, since, last + 1, offset))
    return spans


def _offset(tz: ZoneInfo, epoch: int) -> int:
    offset = datetime.fromtimestamp(epoch, UTC).astimezone(tz).utcoffset()
    assert offset is not None  # a ZoneInfo always knows its offset
    return int(offset.total_seconds())


def _first_change(tz: ZoneInfo, lo: int, hi: int, offset: int) -> int:
    """The first second in ``(lo, hi]`` whose offset is not ``offset`` (``lo`` has it, ``hi`` does not)."""
    while hi - lo > 1:
        middle = (lo + hi) // 2
        if _offset(tz, middle) == offset:
            lo = middle
        else:
            hi = middle
    return hi
