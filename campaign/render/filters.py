"""Template filters that format an instant for the recipient: in their zone, in the message's language.

Contract: ``local_datetime``, ``local_date`` and ``local_time`` take Babel formats (``full``, ``medium``,
``short``, a pattern, or for ``local_date`` a CLDR skeleton such as ``MMMd``); ``zone_name`` gives the CLDR
name of the zone at that instant; ``plain`` swaps no-break and thin spaces for plain ones (text parts);
``shorten`` cuts a title for a subject line. The zone and language come from the ``viewer`` the renderer puts
into each message's context (:class:`Viewer`), so one template serves every recipient.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime, format_skeleton, format_time
from jinja2 import pass_context
from jinja2.runtime import Context

from campaign.render.localtime import locale_of, plain, zone_name


@dataclass(frozen=True, slots=True)
class Viewer:
    """Whose zone and locale a template formats times for."""

    zone: str
    locale: str | None


def _viewer(ctx: Context) -> Viewer:
    viewer = ctx.get("viewer")
    assert isinstance(viewer, Viewer)
    return viewer


@pass_context
def _local_datetime(ctx: Context, value: datetime, fmt: str = "full") -> str:
    v = _viewer(ctx)
    return str(format_datetime(value, fmt, tzinfo=ZoneInfo(v.zone), locale=locale_of(v.locale)))


@pass_context
def _local_date(ctx: Context, value: datetime, fmt: str = "full") -> str:
    v = _viewer(ctx)
    loc = locale_of(v.locale)
    if fmt in loc.datetime_skeletons:
        # A CLDR skeleton ("MMMd", "MMMEd") asks for fields, which each locale orders and spells its own way:
        # "Jun 26" in English, "26 jun" in Spanish. Short enough for a subject line.
        return str(format_skeleton(fmt, value, tzinfo=ZoneInfo(v.zone), locale=loc))
    return str(format_date(value.astimezone(ZoneInfo(v.zone)), fmt, locale=loc))


@pass_context
def _local_time(ctx: Context, value: datetime, fmt: str = "short") -> str:
    v = _viewer(ctx)
    return str(format_time(value, fmt, tzinfo=ZoneInfo(v.zone), locale=locale_of(v.locale)))


@pass_context
def _zone_name(ctx: Context, value: datetime) -> str:
    v = _viewer(ctx)
    return zone_name(value, v.zone, v.locale)


def shorten(text: str, width: int = 50) -> str:
    """``text`` in at most ``width`` characters: cut after a whole word, trailing punctuation dropped, "…" added.

    For subject lines, which inboxes cut at 40 to 80 characters: a long title keeps its first words whole.
    A ``width`` below 2 leaves no room for a character and the "…", so it raises ValueError (whatever the
    text, so the template's mistake shows on its first render, named by file and line), rather than being
    clamped into a subject the author did not ask for.
    """
    if width < 2:
        raise ValueError(f"shorten: the width must be at least 2 (a character and …), not {width}")
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    head = text[: width - 1]
    if text[width - 1].isalnum() and " " in head:
        head = head.rsplit(" ", 1)[0]  # the cut fell inside a word: drop its start
    return head.rstrip(" ,;:.!?-–—") + "…"


def sentence(text: str) -> str:
    """``text`` ended as a sentence: with a full stop, unless it ends with one already ("a. m.", "p.m.") or
    another end of sentence: a date written by the recipient's locale may (Spanish "6:30 a 8:00 a. m." + "."
    read "a. m..")."""
    text = str(text).rstrip()
    return text if text.endswith((".", "!", "?", "。", "؟")) else f"{text}."


def capfirst(text: str) -> str:
    """``text`` with its first letter upper case and the rest as it is (Jinja's ``capitalize`` lowers the rest):
    a CLDR zone name at the start of a line, written for the middle of a sentence in Spanish ("hora estándar de
    Colombia")."""
    text = str(text)
    return text[:1].upper() + text[1:]


FILTERS: dict[str, Callable[..., Any]] = {
    "local_datetime": _local_datetime,
    "local_date": _local_date,
    "local_time": _local_time,
    "zone_name": _zone_name,
    "plain": plain,
    "shorten": shorten,
    "sentence": sentence,
    "capfirst": capfirst,
}
