"""The time zones a person picks from: each IANA zone with its CLDR name and its UTC offset at a given instant.

Contract:

* :func:`zone_choices` lists the canonical IANA zones (no alias such as ``US/Eastern`` or ``Europe/Kiev``, no
  ``Etc/GMT+5``; ``UTC`` is kept), sorted by name, each with the CLDR long name a message shows for it
  (:func:`campaign.render.localtime.zone_name`, so a form and an invitation name a zone alike) and its offset at
  ``now`` (``UTC+02:00``). The names and offsets are those of ``now``: summer or standard time as it is then.
* It only offers: a form's zone field still takes any name :func:`campaign.rules.contact_fields.parse_timezone`
  accepts (an alias typed by hand included), and that rule alone decides.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from zoneinfo import ZoneInfo

from babel.core import get_global

from campaign.render.localtime import zone_name
from campaign.rules.timing import utc_offset_text

KEPT_WITHOUT_AREA = ("UTC",)
"""Zones offered although their name has no area (``Europe/``...; the others, like ``EST5EDT``, are POSIX
leftovers) and CLDR files it as an alias (of ``Etc/UTC``): it is the name people type."""


@dataclass(frozen=True, slots=True)
class ZoneChoice:
    """One zone of the picker: its IANA ``zone``, CLDR ``name`` and ``offset`` (``UTC+05:30``) at the time asked."""

    zone: str
    name: str
    offset: str

    @property
    def label(self) -> str:
        """What the picker shows beside the zone: ``Central European Summer Time, UTC+02:00``."""
        return f"{self.name}, {self.offset}"


@cache
def canonical_zones() -> tuple[str, ...]:
    """The IANA zones offered, sorted: every zone of the system's database that is no CLDR alias, with an area."""
    aliases = get_global("zone_aliases")
    return tuple(
        sorted(
            zone
            for zone in zoneinfo.available_timezones()
            if zone in KEPT_WITHOUT_AREA or ("/" in zone and not zone.startswith("Etc/") and zone not in aliases)
        )
    )


def zone_choices(now: datetime, locale: str = "en") -> list[ZoneChoice]:
    """Every zone of :func:`canonical_zones` with its name and offset at ``now`` (aware) in ``locale``."""
    return [ZoneChoice(zone, zone_name(now, zone, locale), utc_offset(now, zone)) for zone in canonical_zones()]


def utc_offset(now: datetime, zone: str) -> str:
    """``zone``'s offset from UTC at ``now``: ``UTC+02:00``, ``UTC-03:30``, ``UTC+00:00``."""
    return "UTC" + utc_offset_text(now.astimezone(ZoneInfo(zone)).utcoffset())
