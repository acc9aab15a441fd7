"""The one place where links in messages are made.

Contract: every link a template shows (register, join, the calendar links, unsubscribe, any link staff add
with ``link(url, name)``) comes from a :class:`MessageLinks`, built from the web service's paths
(:mod:`campaign.rules.routes`) under ``links.public_url``, so a link and the route that answers it never
disagree. :class:`SignedLinks` is the one implementation:

* a link, when the campaign tracks clicks, is ``/c/{token}``: the token signs the message id, the link's index
  in the wave's :class:`LinkBook`, which stores the destination server-side, and the wave's id (when the policy
  has one: the click endpoint then finds the destination among the wave's few, kept in memory, without reading
  the message); the token never carries a URL, so nothing but a stored destination can ever be reached (no open
  redirect). Without click tracking a link is its destination itself. Either way only http(s) URLs are
  accepted.
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
from campaign.rules.routes import CALENDAR, CLICK, OPEN, UNSUBSCRIBE, RoutePath, absolute_url
from campaign.tokens import SigningKeys, TokenSigner


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

    policy: SignedLinkPolicy
    message_ref: int

    def link(self, url: str, name: str) -> str:
        """``/c/{token}`` for a stored destination, or the destination itself without click tracking."""
        require_web_url(url)
        policy = self.policy
        if not policy.track_clicks:
            return url
        return policy.url(CLICK, TrackingKind.CLICK, self.message_ref, policy.book.index_of(url, name), policy.wave_ref)

    @property
    def unsubscribe_url(self) -> str:
        """``/u/{token}``."""
        return self.policy.url(UNSUBSCRIBE, TrackingKind.UNSUBSCRIBE, self.message_ref)

    @property
    def calendar_url(self) -> str:
        """``/ics/{token}``."""
        return self.policy.url(CALENDAR, TrackingKind.CALENDAR, self.message_ref)

    @property
    def open_pixel_url(self) -> str | None:
        """``/o/{token}.gif``, or None when opens are not tracked."""
        if not self.policy.track_opens:
            return None
        return self.policy.url(OPEN, TrackingKind.OPEN, self.message_ref)


@dataclass(frozen=True)
class SignedLinkPolicy:
    """:class:`SignedLinks` for every message of one wave. What is the same for all of them is made once: the
    signer's keyed state (:class:`~campaign.tokens.TokenSigner`) and each route's URL around its token."""

    base_url: str
    keys: bytes | SigningKeys
    book: LinkBook = field(default_factory=MemoryLinkBook)
    track_clicks: bool = True
    track_opens: bool = True
    wave_ref: int | None = None
    """The wave's id, signed into click tokens (None for a wave not stored, such as a preview's)."""
    signer: TokenSigner = field(init=False, repr=False)
    # Per route, the URL before and after its token: a token is URL-safe base64, which needs no quoting, so a
    # link is the same concatenation for every message (made once from absolute_url, here).
    _around: dict[RoutePath, tuple[str, str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "signer", TokenSigner(self.keys))
        marker = "TOKEN"
        around = {}
        for route in (CLICK, OPEN, UNSUBSCRIBE, CALENDAR):
            before, after = absolute_url(self.base_url, route, token=marker).split(marker)
            around[route] = (before, after)
        object.__setattr__(self, "_around", around)

    def url(
        self,
        route: RoutePath,
        purpose: TrackingKind,
        message_ref: int,
        link_index: int = 0,
        wave_ref: int | None = None,
    ) -> str:
        """The URL of ``route`` with a token for ``purpose``, this message and link (and wave)."""
        before, after = self._around[route]
        return before + self.signer.sign(purpose, message_ref, link_index, wave_ref) + after

    def for_message(self, message_ref: int) -> SignedLinks:
        """Links for one message."""
        return SignedLinks(self, message_ref)
