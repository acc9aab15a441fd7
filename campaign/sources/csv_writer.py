"""Writing CSV files that staff open in spreadsheets: the contacts export, an import's rejects, reports.

Contract: every cell goes through :func:`spreadsheet_safe`, one neutraliser for every file this program
writes, so a value a spreadsheet would run as a formula (``=HYPERLINK(...)`` in a name or a custom attribute)
is shown as text, never run. :func:`from_spreadsheet_safe` is its exact inverse, which the contacts reader
applies so that an export imports unchanged. :class:`CsvWriter` writes rows of any values (None is an empty
cell; other values their ``str``), neutralised; the caller owns the file (see
:func:`campaign.services.files.atomic_text_file` for one that appears whole or not at all).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import TextIO

# A cell starting with one of these is run as a formula by spreadsheets (OWASP's list).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# One or more quotes before a formula character: what spreadsheet_safe wrote (one more quote than the value had).
_QUOTED_FORMULA = re.compile(r"'+[=+\-@\t\r]")


def spreadsheet_safe(value: str) -> str:
    """Neutralise a cell a spreadsheet would run as a formula (``=HYPERLINK(...)``), per OWASP's advice: prefix
    it with ``'``. A value that already starts with quotes before a formula character gets one more, so that
    :func:`from_spreadsheet_safe` gives every value back exactly."""
    if value[:1] in _FORMULA_STARTS or (value[:1] == "'" and _QUOTED_FORMULA.match(value)):
        return "'" + value
    return value


def from_spreadsheet_safe(cell: str) -> str:
    """The value :func:`spreadsheet_safe` wrote ``cell`` for: one ``'`` removed before ``= + - @`` (and tab or
    CR) after any further quotes, so an export imports unchanged. A spreadsheet shows such a quote as nothing
    (it only marks the cell as text), and no real name starts with ``'=``."""
    return cell[1:] if cell[:1] == "'" and _QUOTED_FORMULA.match(cell) else cell


class CsvWriter:
    """Rows written to ``out`` as CSV, every cell through :func:`spreadsheet_safe`.

    Numbers are written as they are: a negative number's ``-`` is a sign, not a formula, and a spreadsheet
    should read it as a number; only text is neutralised.
    """

    def __init__(self, out: TextIO, *, delimiter: str = ",") -> None:
        self._writer = csv.writer(out, delimiter=delimiter)

    def row(self, cells: Iterable[object]) -> None:
        """Write one row: None is an empty cell, an int or float its number, anything else its text made safe."""
        self._writer.writerow([_cell(cell) for cell in cells])


def _cell(value: object) -> str:
    if value is None:
        return ""
    # bool is an int too, but True is not a number a report means.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return spreadsheet_safe(str(value))
