"""What the service shows: structured log lines, and on a terminal a status line kept below them.

Log lines are ``key=value`` pairs after a short event name (``wave fired campaign=c wave=reminder-1d
queued=120``), one per wave fired or missed and one per delivery summary, so a log collector can parse them and a
person can read them. On a terminal the same lines scroll above a status line that is redrawn in place (what is
next, what was delivered); elsewhere (a service manager's journal, a file) there is no status line.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TextIO

LOGGER_NAME = "campaign.serve"
LIBRARY_LOGGER = "campaign"
log = logging.getLogger(LOGGER_NAME)
_REDRAW_SECONDS = 0.5  # the status line is redrawn at most this often while messages go out
_CLEAR = "\r\x1b[K"  # to the start of the line, then erase it


def fields(event: str, **values: object) -> str:
    """``event key=value ...``; a value with a space, a quote or an equals sign is written as a JSON string."""
    parts = [event]
    for key, value in values.items():
        text = "" if value is None else str(value)
        if not text or any(c in text for c in ' "=\\') or not text.isprintable():
            text = json.dumps(text, ensure_ascii=False)
        parts.append(f"{key}={text}")
    return " ".join(parts)


def counted(count: int, noun: str) -> str:
    """``1 message``, ``3 messages``: a count with its noun, singular or plural (nouns taking an ``s``)."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


class StatusLine:
    """One line at the bottom of a terminal, rewritten in place."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.text = ""
        self._drawn_at = 0.0

    def show(self, text: str, *, force: bool = True) -> None:
        """Replace the line (unless ``force`` is false and it was redrawn a moment ago)."""
        now = time.monotonic()
        if not force and now - self._drawn_at < _REDRAW_SECONDS:
            self.text = text
            return
        self.text, self._drawn_at = text, now
        self._write(_CLEAR + text)

    def hide(self) -> None:
        """Erase the line (before a log line is written, or at the end)."""
        if self.text:
            self._write(_CLEAR)

    def redraw(self) -> None:
        """Draw the line again (after a log line)."""
        if self.text:
            self._write(self.text)

    def close(self) -> None:
        """Erase the line for good: the shell prompt comes next."""
        self.hide()
        self.text = ""

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


class _AboveStatusLine(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes each log line above the status line."""

    def __init__(self, stream: TextIO, status: StatusLine) -> None:
        super().__init__(stream)
        self.status = status

    def emit(self, record: logging.LogRecord) -> None:
        self.status.hide()
        super().emit(record)
        self.status.redraw()


def configure_output(stream: TextIO, *, terminal: bool, level: int = logging.INFO) -> StatusLine | None:
    """Send the service's log lines to ``stream``; on a ``terminal``, below a status line, which is returned."""
    status = StatusLine(stream) if terminal else None
    handler: logging.Handler = _AboveStatusLine(stream, status) if status else logging.StreamHandler(stream)
    # A terminal shows the time of day; a journal or a file keeps the full UTC instant for collectors.
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
        if terminal
        else _UtcFormatter("%(asctime)s %(levelname)s %(message)s")
    )
    # On the library's root logger: the service's own lines (campaign.serve) and the library's warnings, such as a
    # wave that failed to fire (campaign.services.scheduling), go to the same place.
    library = logging.getLogger(LIBRARY_LOGGER)
    library.handlers[:] = [handler]
    library.setLevel(level)
    library.propagate = False
    return status


class _UtcFormatter(logging.Formatter):
    """ISO 8601 instants in UTC (``2026-06-19T07:00:00.123Z``)."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """The record's instant in UTC, to the millisecond."""
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
