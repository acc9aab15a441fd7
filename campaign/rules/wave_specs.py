"""A wave written on one line, as ``campaign waves add`` and config.toml's default waves take it.

Contract: ``NAME KIND TIMING AUDIENCE [WINDOW]``, e.g. ``reminder-1d reminder -1d registered mon-fri 09:00-17:00``.

* NAME: 1 to 100 characters of ``a-z``, ``0-9`` and ``-``, starting with a letter or digit (it names the wave in
  CLI commands, where a leading ``-`` would read as an option).
* KIND: a :class:`~campaign.models.WaveKind` value (``invitation``, ``reminder``, ``last-chance``, ``follow-up``,
  ``update``, ``cancellation``).
* TIMING: an offset from the event start (:func:`campaign.rules.timing.parse_offset`: ``-7d``, ``+1d``, ``+0``),
  an instant with a UTC offset (``2026-06-19T09:00+02:00``, kept in UTC) or ``launch``.
* AUDIENCE: an :class:`~campaign.models.Audience` value (``all``, ``registered``, ``not-registered``, ...).
* WINDOW (optional): a send window (:func:`campaign.rules.timing.parse_window`: ``mon-fri 09:00-17:00``,
  ``09:00-17:00``).

:func:`parse_wave_spec` raises ValidationError (a ValueError) naming the part that is wrong, a
:class:`WaveOptionError` when it is one part (``option`` says which, for a form to show the error beside it);
:func:`format_wave_spec` is its inverse (canonical form: ``parse(format(spec)) == spec``). The TIMING parts are
public for ``campaign waves``: :func:`parse_instant_or_offset` (also what ``--expires`` takes) and
:func:`format_timing`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from campaign.exceptions import ValidationError
from campaign.models import Audience, WaveKind
from campaign.rules.timing import (
    SendWindow,
    format_offset,
    format_window,
    out_of_years,
    parse_offset,
    parse_window,
)

WAVE_NAME_MAX = 100
"""The longest wave name (the ``waves.name`` column)."""

LAUNCH = "launch"
"""The TIMING of a wave sent when the campaign is launched."""

SPEC_FORM = "NAME KIND TIMING AUDIENCE [WINDOW]"
SPEC_EXAMPLE = "reminder-1d reminder -1d registered mon-fri 09:00-17:00"

_NAME = re.compile(rf"[a-z0-9][a-z0-9-]{{0,{WAVE_NAME_MAX - 1}}}")
_INSTANT = re.compile(r"\d{4}-", re.ASCII)
_Choice = TypeVar("_Choice", WaveKind, Audience)


class WaveOptionError(ValidationError):
    """One part of a wave is wrong; ``option`` names it as ``campaign waves add`` does (``name``, ``kind``, ``at``
    for the TIMING, ``audience``, ``window``, and in :mod:`campaign.services.waves` ``expires``, ``template``,
    ``subject``). The message is the whole one-line refusal, as a plain ValidationError's."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message, field=option)
        self.option = option


@dataclass(frozen=True, slots=True)
class WaveSpec:
    """One wave as written: at most one of ``offset`` (from the event start) and ``send_at`` (an instant, UTC);
    neither means at launch. ``window`` None: no send window."""

    name: str
    kind: WaveKind
    offset: timedelta | None
    send_at: datetime | None
    audience: Audience
    window: SendWindow | None = None

    def __post_init__(self) -> None:
        parse_wave_name(self.name)
        if self.offset is not None and self.send_at is not None:
            raise ValidationError(f"wave {self.name}: give an offset or an instant to send at, not both")
        if self.send_at is not None and self.send_at.utcoffset() is None:
            raise ValidationError(f"wave {self.name}: the instant {self.send_at.isoformat()} needs a UTC offset")


EVENT_NOTICES = {WaveKind.UPDATE: "update", WaveKind.CANCELLATION: "cancel"}
"""The kinds of wave only a change of the event makes, with the ``campaign events`` command that makes each: their
messages tell calendars the event moved or was cancelled (a cancellation's ``METHOD:CANCEL`` takes the entry out
of every recipient's calendar), so a wave of these kinds added by hand, the event unchanged, would say what is
not so."""
HAND_KINDS = tuple(kind for kind in WaveKind if kind not in EVENT_NOTICES)
"""The kinds of wave staff add, to a campaign or to config.toml's default waves."""


def refuse_event_notice(kind: WaveKind, name: str) -> None:
    """:class:`WaveOptionError` for a wave of an :data:`EVENT_NOTICES` kind given by hand."""
    if kind in EVENT_NOTICES:
        raise WaveOptionError(
            "kind",
            f"wave {name}: a {kind.value} wave is made by `campaign events {EVENT_NOTICES[kind]}`, which changes the "
            f"event too; give one of {', '.join(k.value for k in HAND_KINDS)}",
        )


def parse_wave_name(text: str) -> str:
    """A wave name as given, or ValidationError saying what a name may contain."""
    if _NAME.fullmatch(text) is None:
        raise WaveOptionError(
            "name",
            f"wave name {text!r} must be 1 to {WAVE_NAME_MAX} characters of a-z, 0-9 and '-', "
            "starting with a letter or digit",
        )
    return text


def parse_wave_spec(text: str) -> WaveSpec:
    """``NAME KIND TIMING AUDIENCE [WINDOW]`` → :class:`WaveSpec`; ValidationError naming the wrong part."""
    parts = text.split()
    if len(parts) < 4:
        raise ValidationError(f"wave {text.strip()!r} must look like {SPEC_FORM!r}, e.g. {SPEC_EXAMPLE!r}")
    name, kind, timing, audience, *window = parts
    parse_wave_name(name)
    offset, send_at = _parse_timing(timing, name)
    try:
        window_spec = parse_window(" ".join(window)) if window else None
    except ValidationError as exc:
        raise WaveOptionError("window", f"wave {name}: {exc}") from None
    return WaveSpec(
        name=name,
        kind=_parse_choice(WaveKind, kind, name, "kind"),
        offset=offset,
        send_at=send_at,
        audience=_parse_choice(Audience, audience, name, "audience"),
        window=window_spec,
    )


def format_wave_spec(spec: WaveSpec) -> str:
    """The inverse of :func:`parse_wave_spec`: ``reminder-1d reminder -1d registered mon-fri 09:00-17:00``;
    an instant is written in UTC (``2026-06-19T07:00Z``)."""
    parts = [spec.name, spec.kind.value, format_timing(spec.offset, spec.send_at), spec.audience.value]
    if spec.window is not None:
        parts.append(format_window(spec.window))
    return " ".join(parts)


def format_timing(offset: timedelta | None, send_at: datetime | None) -> str:
    """A wave's TIMING as written: ``-7d``, an instant in UTC (``2026-06-19T07:00Z``; its seconds kept when it
    has some, so that writing it back gives the same instant) or ``launch``."""
    if send_at is not None:
        instant = send_at.astimezone(UTC)
        whole_minute = instant.second == 0 and instant.microsecond == 0
        return instant.replace(tzinfo=None).isoformat(timespec="minutes" if whole_minute else "auto") + "Z"
    if offset is not None:
        return format_offset(offset)
    return LAUNCH


def parse_instant_or_offset(text: str, what: str, *, alternatives: str = "") -> timedelta | datetime:
    """An offset from the event start (``-7d``, ``+0``: a timedelta) or an instant with a UTC offset
    (``2026-06-19T09:00+02:00``, ``...Z``: a datetime in UTC), as a wave's TIMING and ``--expires`` take them.

    ValidationError starting with ``what`` (``wave x: timing``) otherwise; ``alternatives`` (``, or 'launch'``)
    ends the message listing what the caller also accepts."""
    text = text.strip()
    if _INSTANT.match(text):
        try:
            instant = datetime.fromisoformat(text)
        except ValueError:
            raise ValidationError(f"{what} {text!r} is not an instant like 2026-06-19T09:00+02:00") from None
        if instant.utcoffset() is None:
            raise ValidationError(f"{what} {text!r} needs a UTC offset, like {text}+02:00 or {text}Z")
        if (why := out_of_years(instant)) is not None:
            raise ValidationError(f"{what} {text!r} {why}")
        return instant.astimezone(UTC)
    try:
        return parse_offset(text)
    except ValidationError as exc:
        if text[:1] in "+-" or text[:1].isdigit():
            raise ValidationError(f"{what} {exc}") from None  # an offset, wrong: say why
        raise ValidationError(
            f"{what} {text!r} must be an offset like -7d, -1h, +1d or +0, "
            f"an instant like 2026-06-19T09:00+02:00{alternatives}"
        ) from None


def _parse_timing(text: str, name: str) -> tuple[timedelta | None, datetime | None]:
    """(offset, None), (None, instant in UTC) or (None, None) for ``launch``."""
    if text.lower() == LAUNCH:
        return None, None
    try:
        when = parse_instant_or_offset(text, f"wave {name}: timing", alternatives=f", or {LAUNCH!r}")
    except ValidationError as exc:
        raise WaveOptionError("at", str(exc)) from None
    return (None, when) if isinstance(when, datetime) else (when, None)


def _parse_choice(choices: type[_Choice], text: str, name: str, part: str) -> _Choice:
    """A value of ``choices`` (case-insensitive), or ValidationError listing them."""
    try:
        return choices(text.lower())
    except ValueError:
        allowed = ", ".join(choice.value for choice in choices)
        raise WaveOptionError(part, f"wave {name}: {part} {text!r} is not one of {allowed}") from None
