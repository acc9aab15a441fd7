"""Plain-text output helpers for the command line."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import click

from campaign.render.localtime import wall_clock
from campaign.rules.timing import utc_offset_text


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print rows as aligned columns under a header."""
    cells = [[str(c) for c in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            click.echo("  ".join("-" * width for width in widths))


def local_time(instant: datetime, zone: str, *, named: bool = False) -> str:
    """``2020-06-26 13:30 +02:00`` in ``zone`` (``... UTC`` in UTC), for tables whose rows or heading name the
    zone; ``named``: with the zone's CLDR name instead, ``2020-06-26 13:30 Central European Summer Time``. Never
    strftime's abbreviation: Manila's and the Pacific's are both "PST", India's and Israel's "IST"."""
    if named:
        return wall_clock(instant, zone)
    local = instant.astimezone(ZoneInfo(zone))
    if zone == "UTC":
        return f"{local:%Y-%m-%d %H:%M} UTC"
    return f"{local:%Y-%m-%d %H:%M} {utc_offset_text(local.utcoffset())}"
