"""Charts: the vendored chart library (uPlot), the script that draws a page's charts, and their data.

Contract:

* The chart files ship in this package and nothing is fetched at run time: :func:`assets` gives them by name
  (``uPlot.iife.min.js``, ``uPlot.min.css``, ``charts.js``, ``charts.css``), for the HTML report to inline and
  the web service to serve under ``/static/``. uPlot is copied unchanged from npm at the version and integrity
  pinned in the Makefile (``make vendor-js``; ``vendor/uplot/VERSION`` records where it came from).
* The macros of ``charts.html`` (:func:`template_loader`) write the markup: ``chart(id, data, caption)`` a
  figure with its data in a JSON data island, drawn by ``charts.js`` where script runs; ``bar(fraction)`` a bar
  as inline SVG, which needs no script.
* :func:`time_series` gives a time chart's data: instants as Unix seconds, shown by the chart in the data's
  zone (a report's zone, not the reader's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

from jinja2 import BaseLoader, PackageLoader

HOUR = 3600

_FILES = {
    "uPlot.iife.min.js": "vendor/uplot/uPlot.iife.min.js",
    "uPlot.min.css": "vendor/uplot/uPlot.min.css",
    "charts.js": "html/charts.js",
    "charts.css": "html/charts.css",
}


@cache
def assets() -> Mapping[str, bytes]:
    """The chart files by name, read from the package once."""
    root = resources.files("campaign.render")
    return {name: root.joinpath(path).read_bytes() for name, path in _FILES.items()}


def template_loader() -> BaseLoader:
    """The loader of this package's HTML templates: ``charts.html`` (the chart macros) and the report's."""
    return PackageLoader("campaign.render", "html")


def time_series(
    zone: str, starts: Sequence[datetime], series: Mapping[str, Sequence[int]], step: int = HOUR
) -> dict[str, Any]:
    """A time chart's data, ``{"zone", "x", "series": [{"label", "values"}]}``: one point per instant of
    ``starts`` (ascending), with each labelled series' values there. Periods without a point are left out of the
    data the charts are made from (an hourly series skips quiet hours), and a line drawn straight across them
    would show activity that never was; so a 0 is put one ``step`` (seconds) after a point with none after it,
    and one before a point with none before it."""
    columns = list(series.values())
    x: list[int] = []
    values: list[list[int]] = [[] for _ in columns]

    def put(at: int, index: int | None) -> None:
        x.append(at)
        for column, out in zip(columns, values, strict=True):
            out.append(0 if index is None else column[index])

    seconds = [int(start.timestamp()) for start in starts]
    for i, at in enumerate(seconds):
        previous = seconds[i - 1] if i else None
        if previous is None or at - previous > step:
            if previous is not None and at - previous > 2 * step:
                put(previous + step, None)
            put(at - step, None)
        put(at, i)
    if seconds:
        put(seconds[-1] + step, None)
    return {
        "zone": zone,
        "x": x,
        "series": [{"label": label, "values": out} for label, out in zip(series, values, strict=True)],
    }
