"""The capture mailbox as staff read it on the dashboard: the messages the built-in capture server kept (``smtp.mode
= "capture"``, in ``smtp.mailbox``), and one of them taken apart.

Contract:

* :func:`capture_mailbox` is the mailbox directory in capture mode, None otherwise: with a relay there is no
  mailbox to show (the pages answer 404).
* :func:`latest_captured` lists the newest messages first, reading only their headers.
* :func:`open_captured` parses one whole message (:class:`CapturedView`): every header decoded to text, in order;
  the HTML and plain-text bodies; the calendar parts (``text/calendar``) as text. Nothing here makes any of it
  safe to show: the pages escape the text and show the HTML only in a sandbox (:mod:`campaign.web.mailbox`).
"""

from __future__ import annotations

import email
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

from campaign.config import Settings
from campaign.exceptions import NotFoundError
from campaign.mail.capture import CapturedMessage, captured_path, mailbox, mailbox_size

SHOWN = 200
"""How many of the latest captured messages the mailbox page lists."""


@dataclass(frozen=True, slots=True)
class CapturedList:
    """The newest captured messages (newest first), and how many the mailbox holds."""

    directory: Path
    messages: tuple[CapturedMessage, ...]
    total: int


@dataclass(frozen=True, slots=True)
class CapturedView:
    """One captured message taken apart (see the module doc)."""

    name: str
    headers: tuple[tuple[str, str], ...]
    html: str | None
    text: str | None
    calendars: tuple[str, ...]

    def header(self, name: str) -> str:
        """The first header called ``name`` (any letter case), or ''."""
        return next((value for key, value in self.headers if key.lower() == name.lower()), "")


def capture_mailbox(settings: Settings) -> Path | None:
    """The mailbox directory when messages go to the capture server, else None."""
    return settings.resolve(settings.smtp.mailbox) if settings.smtp.mode == "capture" else None


def latest_captured(directory: Path, limit: int = SHOWN) -> CapturedList:
    """The ``limit`` newest captured messages, newest first."""
    return CapturedList(directory, tuple(reversed(mailbox(directory, latest=limit))), mailbox_size(directory))


def open_captured(directory: Path, name: str) -> CapturedView:
    """The captured message ``name``, taken apart; :class:`NotFoundError` when there is none of that name."""
    path = captured_path(directory, name)
    if path is None:
        raise NotFoundError(f"no captured message {name!r} in {directory}")
    message = email.message_from_bytes(path.read_bytes(), policy=default_policy)
    assert isinstance(message, EmailMessage)  # what the default policy makes
    return CapturedView(
        name=name,
        headers=tuple((key, str(value)) for key, value in message.items()),
        html=_body(message, "html"),
        text=_body(message, "plain"),
        calendars=tuple(_text(part) for part in message.walk() if part.get_content_type() == "text/calendar"),
    )


def _body(message: EmailMessage, kind: str) -> str | None:
    part = message.get_body((kind,))
    return None if part is None else _text(part)


def _text(part: email.message.Message) -> str:
    """A text part's content, decoded (a charset it does not name correctly read as UTF-8 with replacements)."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")
