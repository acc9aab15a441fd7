"""The one place where links in messages are made.

Every link a template shows (register, join, calendar, unsubscribe, any link staff add with ``link()``)
comes from a :class:`MessageLinks`. Today links go straight to their destination and the unsubscribe link
is a signed one-click URL; the tracking service replaces :class:`DirectLinks` with one that records the
destination server-side and returns a signed redirect, without any template or the message builder changing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from campaign.exceptions import TemplateError
from campaign.tokens import sign


class MessageLinks(Protocol):
    """Links for one message (one recipient of one wave)."""

    def link(self, url: str, name: str) -> str:
        """The href to put in the message for ``url`` (``name`` labels it in reports)."""
        ...

    @property
    def unsubscribe_url(self) -> str:
        """The https one-click unsubscribe URL (RFC 8058), shown in the footer and in List-Unsubscribe."""
        ...

    @property
    def open_pixel_url(self) -> str | None:
        """The open-tracking image URL, or None when opens are not tracked."""
        ...


class LinkPolicy(Protocol):
    """Makes the :class:`MessageLinks` of each message of a wave."""

    def for_message(self, message_ref: int) -> MessageLinks:
        """Links for the outbox message ``message_ref`` (0 for a preview)."""
        ...


def require_web_url(url: str) -> str:
    """``url`` if it is http(s), else a :class:`TemplateError`: a template must not emit javascript: links."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise TemplateError(f"link {url!r} is not an http(s) URL")
    return url


@dataclass(frozen=True, slots=True)
class DirectLinks:
    """Links straight to their destinations; a signed one-click unsubscribe URL under ``base_url``."""

    base_url: str
    key: bytes
    message_ref: int

    def link(self, url: str, name: str) -> str:
        """The destination itself (after checking it is a web URL)."""
        return require_web_url(url)

    @property
    def unsubscribe_url(self) -> str:
        """``{base_url}/u/{signed token}``."""
        return f"{self.base_url.rstrip('/')}/u/{sign(self.key, 'unsubscribe', self.message_ref)}"

    @property
    def open_pixel_url(self) -> str | None:
        """No open tracking without the tracking service."""
        return None


@dataclass(frozen=True, slots=True)
class DirectLinkPolicy:
    """:class:`DirectLinks` for every message."""

    base_url: str
    key: bytes

    def for_message(self, message_ref: int) -> DirectLinks:
        """Links for one message."""
        return DirectLinks(self.base_url, self.key, message_ref)
