"""The links of a message (render/links.py): signed, built from the route table, tracking per campaign."""

from __future__ import annotations

import pytest

from campaign.exceptions import TemplateError
from campaign.models import TrackingKind
from campaign.render.links import MemoryLinkBook, SignedLinkPolicy
from campaign.rules.routes import CALENDAR, CLICK, OPEN, UNSUBSCRIBE, absolute_url
from campaign.tokens import SigningKeys, sign, verify

KEY = b"k" * 32
BASE = "https://t.example.org/track/"


def test_every_link_is_the_routes_url_with_a_token_for_its_purpose() -> None:
    book = MemoryLinkBook()
    links = SignedLinkPolicy(BASE, KEY, book).for_message(42)
    register = links.link("https://events.example.org/register", "register")
    index = book.index_of("https://events.example.org/register", "register")
    assert register == absolute_url(BASE, CLICK, token=sign(KEY, TrackingKind.CLICK, 42, index))
    assert links.open_pixel_url == absolute_url(BASE, OPEN, token=sign(KEY, TrackingKind.OPEN, 42))
    assert links.unsubscribe_url == absolute_url(BASE, UNSUBSCRIBE, token=sign(KEY, TrackingKind.UNSUBSCRIBE, 42))
    assert links.calendar_url == absolute_url(BASE, CALENDAR, token=sign(KEY, TrackingKind.CALENDAR, 42))
    token = register.rsplit("/", 1)[1]
    assert verify(SigningKeys(KEY), TrackingKind.CLICK, token).link_index == index
    # The same destination is the same link; another is another.
    assert links.link("https://events.example.org/register", "register") == register
    assert links.link("https://example.org/agenda", "agenda") != register


def test_without_tracking_links_go_straight_and_there_is_no_pixel() -> None:
    links = SignedLinkPolicy(BASE, KEY, track_clicks=False, track_opens=False).for_message(7)
    assert links.link("https://example.org/agenda", "agenda") == "https://example.org/agenda"
    assert links.open_pixel_url is None
    # Unsubscribe and the calendar file work whatever is tracked.
    assert links.unsubscribe_url.startswith("https://t.example.org/track/u/")
    assert links.calendar_url.startswith("https://t.example.org/track/ics/")


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,x", "//evil.example", "mailto:a@b.org"])
def test_only_web_links_are_made(url: str) -> None:
    for track in (True, False):
        with pytest.raises(TemplateError):
            SignedLinkPolicy(BASE, KEY, track_clicks=track).for_message(1).link(url, "x")
