"""Message bytes, fast: what is the same for every recipient of a wave is built once.

Building a message with :class:`email.message.EmailMessage` costs about 2 ms, over a hundred times the
Jinja render, and would cap sending far below the network. :class:`MessageSkeleton` is built once per wave:
it holds the constant headers, the MIME boundaries, and the calendar part and ``.ics`` attachment already
encoded (for METHOD:PUBLISH they are identical for everyone). :meth:`MessageSkeleton.build` then only
encodes what is personal: a few headers and the two bodies.

Layout, per iMIP practice::

    multipart/mixed
      multipart/alternative
        text/plain; charset=utf-8
        text/html; charset=utf-8
        text/calendar; charset=utf-8; method=PUBLISH   (when there is a calendar)
      application/ics; name=invite.ics                 (attachment; same method)

Headers cannot be injected: every header value passes through :func:`header_value` or
:func:`format_address`, which turn CR, LF and other controls into spaces before encoding; non-ASCII text
becomes RFC 2047 encoded words; no line exceeds 998 octets (bodies with short lines go as they are: 7bit
when ASCII, 8bit when the server offers 8BITMIME; else base64). ``tests/test_mime.py`` proves the output
equivalent to a plain standard-library build of the same message.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from functools import lru_cache

from campaign.rules.characters import CONTROL_CLASS

# Runs of control characters (campaign.rules.characters), compiled once: this is on every message's path.
_CONTROLS = re.compile(CONTROL_CLASS + "+")
_ATOM_SAFE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*")
_ENCODED_WORD_BYTES = 45  # 45 bytes -> 60 base64 chars -> a 72-char encoded word, under the 75 limit
CRLF = b"\r\n"
_BASE64_LINE = re.compile(b".{1,76}", re.S)


@dataclass(frozen=True, slots=True)
class Sender:
    """Who messages come from, and what names them: the domain and the installation id, which together make
    Message-IDs, calendar UIDs and List-Ids unique across databases (see :mod:`campaign.services.installation`)."""

    from_address: str
    from_name: str | None
    domain: str
    reply_to: str | None = None
    installation: str = field(kw_only=True)


def header_value(text: str) -> str:
    """A header value with controls removed; RFC 2047 encoded words when not ASCII or very long."""
    text = " ".join(_CONTROLS.sub(" ", text).split())
    if text.isascii() and len(text) <= 900:
        return text
    return _encoded_words(text)


# A subject is usually shared by every recipient of a zone and locale, so its encoding is cached; the other
# per-message headers (the unsubscribe URL) are unique and would only churn the cache.
_subject_value = lru_cache(maxsize=4096)(header_value)


# Messages built in the same second share their Date header; formatting it costs more than most of a message.
_date_value = lru_cache(maxsize=4)(format_datetime)


def _encoded_words(text: str) -> str:
    data = text.encode("utf-8")
    words, start = [], 0
    while start < len(data):
        end = min(start + _ENCODED_WORD_BYTES, len(data))
        # Never split a UTF-8 sequence: back off over continuation bytes (10xxxxxx).
        while end < len(data) and data[end] & 0xC0 == 0x80:
            end -= 1
        words.append(data[start:end])
        start = end
    return "\r\n ".join(f"=?utf-8?b?{base64.b64encode(w).decode()}?=" for w in words)


# A List-Id's name is a description (RFC 2919); a campaign name can be long, and inboxes show little of it.
_LIST_NAME_CHARACTERS = 100


def _list_id(value: str) -> str:
    """``Name <id>``: the name as a phrase (an atom, a quoted string or encoded words) so that nothing in it (a
    ``<``, a quote) can pass for an identifier; mail filters match the ``<id>``, the last bracketed part."""
    name, bracket, identifier = value.rpartition("<")
    if not bracket:
        return header_value(value)
    name = " ".join(_CONTROLS.sub(" ", name).split())
    if len(name) > _LIST_NAME_CHARACTERS:
        name = name[: _LIST_NAME_CHARACTERS - 1].rstrip() + "…"
    return f"{_phrase(name)} <{identifier}" if name else f"<{identifier}"


def format_address(address: str, name: str | None) -> str:
    """``"Name" <address>`` for a header, the name quoted or encoded as needed, CR/LF impossible."""
    address = _CONTROLS.sub("", address).strip()
    local, _, domain = address.rpartition("@")
    if not domain.isascii():
        address = f"{local}@{domain.encode('idna').decode('ascii')}"
    if not name:
        return address
    return f"{_phrase(' '.join(_CONTROLS.sub(' ', name).split()))} <{address}>"


def _phrase(name: str) -> str:
    """A display name as an RFC 5322 phrase: an atom run when safe, else a quoted string, else encoded words."""
    if not name.isascii() or len(name) > 200:
        # Encoded words fold; a long quoted string would not, and could pass the 998-octet line limit.
        return _encoded_words(name)
    if _ATOM_SAFE.fullmatch(name):
        return name
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


@dataclass(frozen=True, slots=True)
class WireText:
    """A text body already in its wire form (UTF-8, CRLF line ends), with what :func:`encode_body` needs to
    know about it. Stencils make it from parts encoded once (:mod:`campaign.render.stencil`)."""

    data: bytes
    longest_line: int  # octets, without the line end
    ascii: bool


def encode_body(text: str | WireText, eight_bit: bool = False) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, body bytes with CRLF line ends) for a text part.

    Lines within 998 octets go as they are: ASCII as 7bit, UTF-8 as 8bit when ``eight_bit`` (the server takes
    8BITMIME, RFC 6152). Anything else goes as base64, C-fast here (quoted-printable costs 3x more per message),
    which is a third bigger and costs more to make than the message's 8-bit form (bench/render.py).
    """
    if isinstance(text, WireText):
        return _transfer(text.data, text.ascii, lambda: text.longest_line, eight_bit)
    return encode_bytes(text.encode("utf-8"), eight_bit)


def encode_bytes(data: bytes, eight_bit: bool) -> tuple[str, bytes]:
    """:func:`encode_body` for UTF-8 text already encoded."""
    # Line ends are normalised on bytes, which is cheaper than on (non-ASCII) str; RFC 2046 wants text
    # in CRLF form before it is base64-encoded too.
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    longest_line = lambda: max(map(len, data.split(b"\n")))  # noqa: E731 - asked only when it matters
    return _transfer(data.replace(b"\n", CRLF), data.isascii(), longest_line, eight_bit)


def _transfer(data: bytes, ascii: bool, longest_line: Callable[[], int], eight_bit: bool) -> tuple[str, bytes]:
    """The one choice of transfer encoding for a body in CRLF form (``longest_line`` asked only when it matters)."""
    if (ascii or eight_bit) and longest_line() <= 998:
        return "7bit" if ascii else "8bit", data
    return "base64", base64_lines(data)


def base64_lines(data: bytes) -> bytes:
    """Base64 in 76-character CRLF lines: one C call to encode and one to cut (encodebytes loops in Python,
    and slicing in a comprehension costs a third more than the regex)."""
    return CRLF.join(_BASE64_LINE.findall(base64.b64encode(data))) + CRLF


def _header(name: str, value: str) -> bytes:
    return f"{name}: {value}".encode("ascii") + CRLF


class MessageSkeleton:
    """The constant part of every message of a wave, encoded once; :meth:`build` adds the personal part."""

    def __init__(
        self,
        *,
        sender: Sender,
        list_id: str,
        campaign_id: str,
        unsubscribe_mailto: str | None = None,
        calendar: bytes | None = None,
        calendar_method: str = "PUBLISH",
    ) -> None:
        self.sender = sender
        self.unsubscribe_mailto = unsubscribe_mailto
        self.calendar_method = calendar_method
        token = secrets.token_hex(12)
        # A boundary line starts "--==": no base64 line starts with "-", and a text body would have to hold this
        # process's random token: a boundary never collides with content.
        self._mixed = f"==mixed_{token}=="
        self._alternative = f"==alt_{token}=="
        constant = [
            _header("From", format_address(sender.from_address, sender.from_name)),
            _header("Reply-To", format_address(sender.reply_to, None)) if sender.reply_to else b"",
            _header("List-Id", _list_id(list_id)),
            _header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            _header("X-Campaign-ID", header_value(campaign_id)),
            _header("MIME-Version", "1.0"),
        ]
        self._constant_headers = b"".join(constant)
        self._heads = {
            (subtype, encoding): self._part_head(self._alternative, f'text/{subtype}; charset="utf-8"', encoding)
            for subtype in ("plain", "html")
            for encoding in ("7bit", "8bit", "base64")
        }
        # A calendar without ATTENDEE (PUBLISH, and CANCEL after it) is the same for everyone: its parts are
        # encoded once, for each kind of server.
        self._calendar_parts = (
            {eight_bit: self.calendar_parts(calendar, eight_bit) for eight_bit in (False, True)}
            if calendar is not None
            else {}
        )
        self._open_alternative = f'Content-Type: multipart/alternative; boundary="{self._alternative}"\r\n\r\n'.encode()
        self._close_alternative = f"--{self._alternative}--\r\n".encode()
        self._open_mixed = (
            f'Content-Type: multipart/mixed; boundary="{self._mixed}"\r\n\r\n--{self._mixed}\r\n'.encode()
        )
        self._open_mixed += self._open_alternative
        self._close_mixed = f"--{self._mixed}--\r\n".encode()

    @staticmethod
    def _part_head(boundary: str, content_type: str, encoding: str, extra: str = "") -> bytes:
        return (
            f"--{boundary}\r\nContent-Type: {content_type}\r\n{extra}Content-Transfer-Encoding: {encoding}\r\n\r\n"
        ).encode("ascii")

    def calendar_parts(self, ics: bytes, eight_bit: bool = False) -> bytes:
        """The text/calendar alternative and the .ics attachment; the MIME method always equals METHOD."""
        encoding, encoded = encode_bytes(ics, eight_bit)
        method = self.calendar_method
        return b"".join(
            (
                self._part_head(self._alternative, f'text/calendar; charset="utf-8"; method={method}', encoding),
                encoded,
                CRLF,
                f"--{self._alternative}--\r\n".encode("ascii"),
                self._part_head(
                    self._mixed,
                    'application/ics; name="invite.ics"',
                    encoding,
                    'Content-Disposition: attachment; filename="invite.ics"\r\n',
                ),
                encoded,
                CRLF,
            )
        )

    def _text_parts(self, text: str | WireText, html: str | WireText, eight_bit: bool) -> list[bytes]:
        text_encoding, text_body = encode_body(text, eight_bit)
        html_encoding, html_body = encode_body(html, eight_bit)
        # The CRLF before a boundary belongs to the boundary: a body keeps its own final line end.
        return [
            self._heads["plain", text_encoding],
            text_body,
            CRLF,
            self._heads["html", html_encoding],
            html_body,
            CRLF,
        ]

    def build(
        self,
        *,
        message_id: str,
        to_address: str,
        to_name: str | None,
        subject: str,
        text: str | WireText,
        html: str | WireText,
        unsubscribe_url: str,
        date: datetime,
        calendar: bytes | None = None,
        eight_bit: bool = False,
    ) -> bytes:
        """The complete message bytes (CRLF line ends). ``calendar`` overrides the wave's (one built per
        recipient, with them as ATTENDEE: METHOD:REQUEST, and CANCEL after REQUEST invitations); its method= is
        the wave's METHOD all the same.

        ``eight_bit``: the message goes to a server that offers 8BITMIME, so UTF-8 text may go unencoded (see
        :func:`encode_body`); it must then be sent with ``BODY=8BITMIME``.
        """
        unsubscribe = f"<{unsubscribe_url}>"
        if self.unsubscribe_mailto:
            unsubscribe += f", <mailto:{self.unsubscribe_mailto}?subject=unsubscribe>"
        if calendar is not None:
            calendar_parts = self.calendar_parts(calendar, eight_bit)
        else:
            calendar_parts = self._calendar_parts.get(eight_bit, b"")
        headers = [
            _header("Date", _date_value(date.replace(microsecond=0))),
            _header("Message-ID", f"<{message_id}>"),
            self._constant_headers,
            _header("To", format_address(to_address, to_name)),
            _header("Subject", _subject_value(subject)),
            _header("List-Unsubscribe", header_value(unsubscribe)),
        ]
        if calendar_parts:
            body = [self._open_mixed, *self._text_parts(text, html, eight_bit), calendar_parts, self._close_mixed]
        else:
            body = [self._open_alternative, *self._text_parts(text, html, eight_bit), self._close_alternative]
        return b"".join(headers) + b"".join(body)
