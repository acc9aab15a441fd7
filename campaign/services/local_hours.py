"""The local-hours table: where and when people acted, each in their own zone's hour of the day (when to send
next time), as the dashboard, ``campaign report`` and its HTML file lay it out.

Contract:

* :func:`zone_rows` turns a report's :class:`~campaign.services.report_model.ZoneHours` (most opens first) into the
  table's rows: the :data:`ZONES_SHOWN` zones with the most opens, then the others together as one row; and
  every zone together (the peak hours over everyone, each person on their own clock).
* Each row has its totals, its peak hours (the earliest of equals; None without any) and its opens per
  ``bucket_hours`` hours of the day (:data:`BUCKET_HOURS`: 00–04, 04–08 ...). The numbers are the report's,
  only added up: no counting happens here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from campaign.services.report_model import ZoneHours

ZONES_SHOWN = 30
"""How many zones the local-hours table lists (those with the most opens); the rest are counted together."""
BUCKET_HOURS = 4
"""The local-hours table's columns: hours of the day, four at a time (00–04, 04–08 ...)."""


@dataclass(frozen=True, slots=True)
class ZoneRow:
    """One line of the local-hours table: a zone (None: contacts without one; ``others``: the zones not listed,
    together), its totals, its peak hours, and its opens per bucket of hours of the day."""

    zone: str | None
    opened: int
    registered: int
    peak_open_hour: int | None
    peak_registration_hour: int | None
    buckets: tuple[int, ...]
    others: int = 0
    advised_open_hour: int | None = None
    """The peak open hour when no other hour ties it: the one to advise sending at (:class:`ZoneHours`)."""
    advised_registration_hour: int | None = None
    """The same for registrations."""


def zone_rows(lines: Sequence[ZoneHours], bucket_hours: int = BUCKET_HOURS) -> tuple[list[ZoneRow], ZoneRow | None]:
    """The rows of the local-hours table (the :data:`ZONES_SHOWN` zones with the most opens, then the others as one
    row), and every zone together (the hours of the day people acted in, each in their own zone), or None."""
    if not lines:
        return [], None

    def row(zone: str | None, group: Sequence[ZoneHours], others: int = 0) -> ZoneRow:
        together = ZoneHours(
            zone,
            tuple(sum(hours) for hours in zip(*(z.opened for z in group), strict=True)),
            tuple(sum(hours) for hours in zip(*(z.registered for z in group), strict=True)),
        )
        buckets = tuple(sum(together.opened[h : h + bucket_hours]) for h in range(0, 24, bucket_hours))
        return ZoneRow(
            zone,
            sum(together.opened),
            sum(together.registered),
            together.peak_open_hour,
            together.peak_registration_hour,
            buckets,
            others,
            together.advised_open_hour,
            together.advised_registration_hour,
        )

    rows = [row(z.zone, [z]) for z in lines[:ZONES_SHOWN]]
    rest = lines[ZONES_SHOWN:]
    if rest:
        rows.append(row(None, rest, others=len(rest)))
    return rows, row(None, lines)
