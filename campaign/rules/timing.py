"""When a wave's messages go out: pure timing rules, time passed in (no clock, no database).

Contract:

* A wave is timed relative to the event start (:func:`parse_offset`: ``-7d``, ``-1d``, ``-1h``, ``+0``,
  ``+1d``, ``-1d12h``, ``-90m``, ``-2w``; a sign is required unless the offset is zero) or at an absolute
  instant, or "at launch" (neither): :func:`own_instant`. :func:`nominal_instant` gives the instant it fires.
* A wave may have a send window in each recipient's local time (:func:`parse_window`: ``mon-fri 09:00-17:00``,
  ``09:00-17:00`` every day, ``sat,sun 10:00-12:00``, ``mon,wed-fri 08:30-12:00``; ``24:00`` ends a window at
  midnight). A window is half-open, ``start <= wall-clock time < end``, within one local day.
  :func:`local_send_instant` gives, for one zone, the earliest instant at or after the nominal one that lies
  inside the window there (DST-correct: wall-clock times that do not exist are skipped, so a window opening in
  a spring-forward gap opens at the first instant after it; a time repeated by a fall-back is inside the window
  at both occurrences, so a window opening there opens at the first), or None when there is none before the
  wave's expiry. It is computed once per distinct zone, never per recipient, and searches day by day.
* Every wave but a follow-up expires at the event start (:func:`default_expiry`): nothing that says "starts in
  1 hour" goes out after the start. A follow-up expires :data:`FOLLOW_UP_LIFETIME` after the event ends.
* Instants passed in must be timezone-aware (ValidationError otherwise); instants returned are in UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from campaign.exceptions import ValidationError
from campaign.models import WaveKind

# How long after the event ends a follow-up may still go out (the recording link is still worth sending).
FOLLOW_UP_LIFETIME = timedelta(days=14)

# The farthest a wave may be from its event: beyond this an offset is a typo (and would overflow dates).
MAX_OFFSET = timedelta(days=366)

EARLIEST_YEAR, LATEST_YEAR = 1900, 2999
"""The years an instant a person gives may have (an event's start and end, a wave's time or expiry, a report's
window, a platform's times): near the ends of what a datetime holds, a conversion to UTC or a wave's offset would
overflow."""


def out_of_years(moment: datetime) -> str | None:
    """``is out of range: the year must be 1900 to 2999`` when ``moment``'s year is outside
    :data:`EARLIEST_YEAR` to :data:`LATEST_YEAR`, for the caller to put after the value; None when inside."""
    if EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
        return None
    return f"is out of range: the year must be {EARLIEST_YEAR} to {LATEST_YEAR}"


OFFSET_FORM = "must be an offset like -7d, -1h, +1d or +0"
WINDOW_FORM = "must look like 'mon-fri 09:00-17:00' or '09:00-17:00' (every day)"

DAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Day names of windows, in :meth:`datetime.weekday` order (0 = Monday)."""

# End of a window that runs to midnight, written 24:00: the last instant of the local day. Windows are half-open,
# so the window excludes only 23:59:59.999999, and every reader can compare wall-clock times plainly.
END_OF_DAY = time.max

_OFFSET = re.compile(r"([+-]?)(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?", re.ASCII)
_OFFSET_UNITS: tuple[tuple[str, timedelta], ...] = (
    ("d", timedelta(days=1)),
    ("h", timedelta(hours=1)),
    ("m", timedelta(minutes=1)),
)
_TIME = re.compile(r"(\d{1,2}):(\d{2})", re.ASCII)  # ASCII digits: \d alone takes any script's
_MICROSECOND = timedelta(microseconds=1)
# A UTC offset is less than a day, so every instant whose local date is D lies after D 00:00 UTC minus a day.
_MAX_UTC_OFFSET = timedelta(days=1)
# Days searched: the day before the nominal one (a fall-back across midnight can bring it back), two weeks (a
# window that lies in a gap on its only weekday, as when Samoa skipped a day, waits a week) and one spare.
_SEARCH_DAYS = 16


@dataclass(frozen=True, slots=True)
class SendWindow:
    """Days (0 = Monday ... 6 = Sunday) and a daily span of local wall-clock time, ``start`` < ``end``.

    Half-open: a wall-clock time ``t`` is inside when ``start <= t < end``. ``end`` is :data:`END_OF_DAY` for
    a window written to end at ``24:00``; otherwise both are whole minutes.
    """

    days: frozenset[int]
    start: time
    end: time

    def __post_init__(self) -> None:
        if not self.days or not self.days <= frozenset(range(7)):
            raise ValidationError(f"send window days must be a non-empty set of 0 (Monday) to 6, not {self.days}")
        for name, value in (("start", self.start), ("end", self.end)):
            whole = value.second == 0 and value.microsecond == 0 and value.tzinfo is None
            if not whole and not (name == "end" and value == END_OF_DAY):
                raise ValidationError(f"send window {name} must be a whole minute of local time, not {value}")
        if self.end <= self.start:
            raise ValidationError(
                f"send window end {_format_time(self.end)} must be after its start {_format_time(self.start)}"
            )

    def contains(self, local: datetime) -> bool:
        """Whether a local wall-clock datetime (the zone's, naive or aware) is inside the window."""
        return local.weekday() in self.days and self.start <= local.time() < self.end


def parse_offset(text: str) -> timedelta:
    """``-7d`` → -7 days; ``+1d`` → 1 day; ``+0`` → 0; ``-1d12h``, ``-90m``, ``-2w``.

    Units w, d, h, m in that order, each at most once; a sign is required unless the offset is zero (``7d``
    could mean either side of the event). Raises ValidationError (a ValueError) saying the form."""
    raw = text.strip().lower()
    if raw in ("0", "+0", "-0"):
        return timedelta(0)
    match = _OFFSET.fullmatch(raw)
    if match is None or not raw.lstrip("+-"):
        raise ValidationError(f"offset {text!r} {OFFSET_FORM}")
    sign, weeks, days, hours, minutes = match.groups()
    too_far = f"offset {text!r} is more than {MAX_OFFSET.days} days from the event start"
    try:
        magnitude = timedelta(
            weeks=int(weeks or 0), days=int(days or 0), hours=int(hours or 0), minutes=int(minutes or 0)
        )
    except OverflowError:  # more days than a timedelta holds
        raise ValidationError(too_far) from None
    if magnitude and not sign:
        raise ValidationError(f"offset {text!r} needs a sign: -{raw} (before the event start) or +{raw} (after)")
    if magnitude > MAX_OFFSET:
        raise ValidationError(too_far)
    return -magnitude if sign == "-" else magnitude


def utc_offset_text(offset: timedelta | None) -> str:
    """A zone's offset from UTC as ISO 8601 writes it: ``+02:00``, ``-03:30``, ``+00:00`` (None: ``+00:00``)."""
    minutes = int((offset or timedelta(0)).total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{rest:02d}"


def format_offset(offset: timedelta) -> str:
    """The inverse of :func:`parse_offset`: ``-7d``, ``-1h``, ``+0``, ``-1d12h``, ``-1h30m`` (never weeks).

    Raises ValidationError for an offset that is not a whole number of minutes (it has no written form)."""
    if offset % timedelta(minutes=1):
        raise ValidationError(f"offset {offset} is not a whole number of minutes")
    if not offset:
        return "+0"
    rest = abs(offset)
    parts: list[str] = []
    for unit, size in _OFFSET_UNITS:
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return ("-" if offset < timedelta(0) else "+") + "".join(parts)


def parse_window(text: str) -> SendWindow:
    """``mon-fri 09:00-17:00``, ``09:00-17:00`` (every day), ``sat,sun 10:00-12:00``, ``mon,wed-fri 08:30-12:00``.

    Days are comma-separated names or ranges (a range may wrap: ``fri-mon``); times are HH:MM, the end may be
    ``24:00``; the end must be after the start (a window lies within one day). Raises ValidationError."""
    parts = text.strip().lower().split()
    if len(parts) == 1:
        days = frozenset(range(7))
    elif len(parts) == 2:
        days = _parse_days(parts[0], text)
    else:
        raise ValidationError(f"send window {text!r} {WINDOW_FORM}")
    span = parts[-1].split("-")
    if len(span) != 2 or not any(c.isdigit() for c in parts[-1]):  # 'mon-fri' alone: the times are missing
        raise ValidationError(f"send window {text!r} {WINDOW_FORM}")
    start = _parse_time(span[0], text, end=False)
    end = _parse_time(span[1], text, end=True)
    if end <= start:
        raise ValidationError(
            f"send window {text!r}: the end {span[1]} must be after the start {span[0]} "
            "(a window lies within one day; write 24:00 for midnight at its end)"
        )
    return SendWindow(days=days, start=start, end=end)


def format_window(window: SendWindow) -> str:
    """The inverse of :func:`parse_window`: days in order, runs of three or more as ranges (``mon-fri``,
    ``mon,wed-fri``), no days when every day is in; ``24:00`` for a window ending at midnight."""
    span = f"{_format_time(window.start)}-{_format_time(window.end)}"
    if window.days == frozenset(range(7)):
        return span
    items: list[str] = []
    ordered = sorted(window.days)
    run_start = previous = ordered[0]
    for day in [*ordered[1:], None]:
        if day is not None and day == previous + 1:
            previous = day
            continue
        if previous - run_start >= 2:
            items.append(f"{DAY_NAMES[run_start]}-{DAY_NAMES[previous]}")
        else:
            items.extend(DAY_NAMES[d] for d in range(run_start, previous + 1))
        if day is not None:
            run_start = previous = day
    return f"{','.join(items)} {span}"


def own_instant(event_start: datetime, offset: timedelta | None, send_at: datetime | None) -> datetime | None:
    """A wave's own time (UTC), whatever the launch: ``send_at``, else the event start plus ``offset``, else
    None (a wave "at launch" has no time of its own)."""
    _require_aware(event_start, "event start")
    if send_at is not None:
        _require_aware(send_at, "send_at")
        return send_at.astimezone(UTC)
    if offset is not None:
        return (event_start + offset).astimezone(UTC)
    return None


def nominal_instant(
    event_start: datetime, offset: timedelta | None, send_at: datetime | None, launched_at: datetime
) -> datetime:
    """When a wave fires (UTC): its :func:`own_instant`, else ``launched_at`` (at launch). Never before
    ``launched_at``: a wave whose time passed before the launch fires at the launch (and
    :func:`local_send_instant` then drops it if it has expired meanwhile)."""
    _require_aware(launched_at, "launch time")
    own = own_instant(event_start, offset, send_at)
    return max(launched_at if own is None else own, launched_at).astimezone(UTC)


def default_expiry(kind: WaveKind, event_start: datetime, event_end: datetime) -> datetime:
    """When a wave of ``kind`` stops being worth sending (UTC): the event start (a cancellation too: once the
    event would have begun, people have found out), or for a follow-up the event end plus
    :data:`FOLLOW_UP_LIFETIME`."""
    _require_aware(event_start, "event start")
    _require_aware(event_end, "event end")
    if kind == WaveKind.FOLLOW_UP:
        return (event_end + FOLLOW_UP_LIFETIME).astimezone(UTC)
    return event_start.astimezone(UTC)


def local_send_instant(
    nominal: datetime, zone: ZoneInfo, window: SendWindow | None, expires_at: datetime | None
) -> datetime | None:
    """The instant (UTC) a recipient in ``zone`` gets the wave: ``nominal`` without a window, else the earliest
    instant at or after it inside the window in that zone; None when that is at or after ``expires_at``.

    Searches day by day (local dates from the day before the nominal one, at most two weeks ahead, stopping at
    the expiry), a few offset look-ups per day: cheap enough to run once per zone of a wave's audience."""
    _require_aware(nominal, "nominal instant")
    if expires_at is not None:
        _require_aware(expires_at, "expiry")
    nominal = nominal.astimezone(UTC)
    if window is None:
        return nominal if expires_at is None or nominal < expires_at else None
    best: datetime | None = None
    first_day = nominal.astimezone(zone).date() - timedelta(days=1)
    for n in range(_SEARCH_DAYS):
        day = first_day + timedelta(days=n)
        bound = min((b for b in (best, expires_at) if b is not None), default=None)
        if bound is not None and datetime.combine(day, time(0), UTC) - _MAX_UTC_OFFSET >= bound:
            break  # every instant of this local day and the following ones is later
        if day.weekday() not in window.days:
            continue
        found = _earliest_on(day, nominal, zone, window)
        if found is not None and (best is None or found < best):
            best = found
    if best is None or (expires_at is not None and best >= expires_at):
        return None
    return best


def _earliest_on(day: date, nominal: datetime, zone: ZoneInfo, window: SendWindow) -> datetime | None:
    """The earliest instant at or after ``nominal`` whose wall-clock time in ``zone`` is on ``day`` inside the
    window's span, or None.

    An instant ``u`` in effect at UTC offset ``o`` shows ``u + o``; so the instants showing a time in
    ``[day start, day end)`` at offset ``o`` are those of ``[day start - o, day end - o)`` at which ``o`` is in
    effect. The offsets in effect at the window's start and end (either side of a transition there) cover
    every offset of the span; within one span the offset changes at most once (tzdata has no zone changing
    twice a day), so the instants at offset ``o`` are all, none, or a prefix or suffix of that interval.
    """
    opens = datetime.combine(day, window.start)
    closes = datetime.combine(day, window.end)
    offsets = {_wall_offset(wall, zone, fold) for wall in (opens, closes) for fold in (0, 1)}
    best: datetime | None = None
    for offset in offsets:
        lo = max((opens - offset).replace(tzinfo=UTC), nominal)
        hi = (closes - offset).replace(tzinfo=UTC)
        found = _first_at_offset(lo, hi, offset, zone)
        if found is not None and (best is None or found < best):
            best = found
    return best


def _first_at_offset(lo: datetime, hi: datetime, offset: timedelta, zone: ZoneInfo) -> datetime | None:
    """The earliest instant of ``[lo, hi)`` at which ``zone`` is at ``offset``, assuming the offset changes at
    most once in it; found by bisection to the microsecond when a transition lies inside."""
    if hi <= lo:
        return None
    if _offset_at(lo, zone) == offset:
        return lo
    last = hi - _MICROSECOND
    if _offset_at(last, zone) != offset:
        return None
    # Invariant: the offset is not in effect at lo, and is at last; a transition lies in (lo, last].
    while last - lo > _MICROSECOND:
        middle = lo + (last - lo) // 2
        if _offset_at(middle, zone) == offset:
            last = middle
        else:
            lo = middle
    return last


def _offset_at(instant: datetime, zone: ZoneInfo) -> timedelta:
    """The UTC offset of ``zone`` at an instant."""
    offset = zone.utcoffset(instant.astimezone(zone))
    assert offset is not None  # a ZoneInfo always knows its offset
    return offset


def _wall_offset(wall: datetime, zone: ZoneInfo, fold: int) -> timedelta:
    """The offset zoneinfo gives a naive wall-clock time: in a gap or a repeat, fold 0 gives the offset before
    the transition and fold 1 the one after."""
    offset = zone.utcoffset(wall.replace(tzinfo=zone, fold=fold))
    assert offset is not None
    return offset


def _require_aware(value: datetime, what: str) -> None:
    """Refuse a naive datetime: which instant it means would depend on the machine's zone."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(f"the {what} {value.isoformat()} must carry a UTC offset")


def _parse_days(text: str, window: str) -> frozenset[int]:
    """``mon-fri``, ``sat,sun``, ``mon,wed-fri``, ``fri-mon`` (a range may wrap past Sunday)."""
    days: set[int] = set()
    for item in text.split(","):
        ends = item.split("-")
        if len(ends) > 2:
            raise ValidationError(f"send window {window!r}: {item!r} is not a day or a range of days like mon-fri")
        first, last = (_day_number(end, window) for end in (ends[0], ends[-1]))
        days.update((first + n) % 7 for n in range((last - first) % 7 + 1))
    return frozenset(days)


def _day_number(name: str, window: str) -> int:
    if name not in DAY_NAMES:
        raise ValidationError(
            f"send window {window!r}: unknown day {name!r} (use {', '.join(DAY_NAMES)}, or a range like mon-fri)"
        )
    return DAY_NAMES.index(name)


def _parse_time(text: str, window: str, *, end: bool) -> time:
    match = _TIME.fullmatch(text)
    if end and text == "24:00":
        return END_OF_DAY
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        latest = "24:00" if end else "23:59"
        raise ValidationError(f"send window {window!r}: {text!r} is not a time HH:MM from 00:00 to {latest}")
    return time(int(match[1]), int(match[2]))


def _format_time(value: time) -> str:
    return "24:00" if value == END_OF_DAY else f"{value.hour:02d}:{value.minute:02d}"
