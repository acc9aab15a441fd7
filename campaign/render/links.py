"""The one place where links in messages are made.

Contract: every link a template shows (register, join, the calendar links, unsubscribe, any link staff add
with ``link(url, name)``) comes from a :class:`MessageLinks`, built from the web service's paths
(:mod:`campaign.rules.routes`) under ``links.public_url``, so a link and the route that answers it never
disagree. :class:`SignedLinks` is the one implementation:

* a link, when the campaign tracks clicks, is ``/c/{token}``: the token signs the message id and the link's
  index in the wave's :class:`LinkBook`, which stores the destination server-side; the token never carries a
  URL, so nothing but a stored destination can ever be reached (no open redirect). Without click tracking a
  link is its destination itself. Either way only http(s) URLs are accepted.
* the open pixel (``/o/{token}.gif``) exists only when the campaign tracks opens;
* unsubscribe (``/u/{token}``, RFC 8058 one-click) and the recipient's calendar file (``/ics/{token}``) are
  always signed links: they must work whatever is tracked.

Tokens are signed with the current key (:mod:`campaign.tokens`); a message's links are the same bytes for the
same message id, so a message rendered twice (a retry) links the same.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from campaign.exceptions import TemplateError
from campaign.models import TrackingKind
from campaign.rules.routes import CALENDAR, CLICK, OPEN, UNSUBSCRIBE, absolute_url
from campaign.tokens import SigningKeys, sign


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
    def calendar_url(self) -> str:
        """The recipient's own calendar file."""
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


class LinkBook(Protocol):
    """A wave's link destinations: each distinct (name, URL) gets an index, stored where the click endpoint
    finds it."""

    def index_of(self, url: str, name: str) -> int:
        """The index of this destination in the wave, storing it first if it is new."""
        ...


def link_key(url: str, name: str) -> str:
    """The digest a destination is found again by (``links.url_key``): a URL may be longer than an index
    entry may hold."""
    return hashlib.sha256(f"{name}\0{url}".encode()).hexdigest()


@dataclass
class MemoryLinkBook:
    """Numbers destinations in memory and stores nothing: for previews and checks, whose links go nowhere."""

    _indexes: dict[tuple[str, str], int] = field(default_factory=dict)

    def index_of(self, url: str, name: str) -> int:
        """The next free index for a new destination, the same one for one seen before."""
        return self._indexes.setdefault((name, url), len(self._indexes) + 1)


def require_web_url(url: str) -> str:
    """``url`` if it is http(s), else a :class:`TemplateError`: a template must not emit javascript: links."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise TemplateError(f"link {url!r} is not an http(s) URL")
    return url


@dataclass(frozen=True, slots=True)
class SignedLinks:
    """The links of one message; see the module doc."""

    base_url: str
    keys: bytes | SigningKeys
    message_ref: int
    book: LinkBook
    track_clicks: bool = True
    track_opens: bool = True

    def link(self, url: str, name: str) -> str:
        """``/c/{token}`` for a stored destination, or the destination itself without click tracking."""
        require_web_url(url)
        if not self.track_clicks:
            return url
        token = sign(self.keys, TrackingKind.CLICK, self.message_ref, self.book.index_of(url, name))
        return absolute_url(self.base_url, CLICK, token=token)

    @property
    def unsubscribe_url(self) -> str:
        """``/u/{token}``."""
        return absolute_url(
            self.base_url, UNSUBSCRIBE, token=sign(self.keys, TrackingKind.UNSUBSCRIBE, self.message_ref)
        )

    @property
    def calendar_url(self) -> str:
        """``/ics/{token}``."""
        return absolute_url(self.base_url, CALENDAR, token=sign(self.keys, TrackingKind.CALENDAR, self.message_ref))

    @property
    def open_pixel_url(self) -> str | None:
        """``/o/{token}.gif``, or None when opens are not tracked."""
        if not self.track_opens:
            return None
        return absolute_url(self.base_url, OPEN, token=sign(self.keys, TrackingKind.OPEN, self.message_ref))


@dataclass(frozen=True, slots=True)
class SignedLinkPolicy:
    """:class:`SignedLinks` for every message of one wave."""

    base_url: str
    keys: bytes | SigningKeys
    book: LinkBook = field(default_factory=MemoryLinkBook)
    track_clicks: bool = True
    track_opens: bool = True

    def for_message(self, message_ref: int) -> SignedLinks:
        """Links for one message."""
        return SignedLinks(self.base_url, self.keys, message_ref, self.book, self.track_clicks, self.track_opens)
