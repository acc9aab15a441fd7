"""Telling people from machines in tracking hits: pure policy, the request's facts and the time passed in.

Contract of :func:`classify`: a hit is a machine's when something about the request itself says so, and then
the first reason found is returned (kept with the hit, shown in reports); otherwise it is a person's (None).
Machines open and click too, and their hits are kept, flagged, and never counted as human:

* **Image proxies** (opens): Apple Mail Privacy Protection fetches every image of every message on delivery,
  from Apple's network (17.0.0.0/8) with a browser engine's user agent and no browser name; Gmail's and Yahoo's
  proxies fetch on the reader's behalf and name themselves (``GoogleImageProxy``, ``YahooMailProxy``). An open
  through them says nothing about a person reading.
* **Security scanners and link previews** (clicks and everything else): ``HEAD`` requests (a browser following
  a link sends ``GET``); prefetch headers (``Purpose``/``Sec-Purpose``/``X-Purpose: prefetch|preview``,
  ``X-Moz: prefetch``); user agents of scanners, previewers, crawlers and HTTP libraries (Microsoft Safe Links
  and Defender, Proofpoint, Mimecast, Barracuda, Slack, Teams, Outlook's previewer...); a click within
  :data:`SCANNER_SECONDS` of delivery, sooner than a person can open a message and pick a link.
* **Bursts**: every link of one message hit within :data:`BURST_SECONDS` is a scanner walking the message
  (:func:`burst_reason`, decided where the hits of a message are seen together).

The lists are deliberately specific: a false "machine" hides a real reader, so a user agent is matched on the
names scanners give themselves, never on the browser engines people use.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Mapping
from datetime import datetime, timedelta

from campaign.models import TrackingKind
from campaign.rules.ip_privacy import canonical_ipv4

# A person needs longer than this after delivery to open a message and pick a link; scanners click at once.
SCANNER_SECONDS = 10
# Two different links of one message hit this close together: a scanner following every link.
BURST_SECONDS = 1.0
# Apple Mail Privacy Protection's proxies fetch from Apple's own network.
APPLE_NETWORK = ipaddress.ip_network("17.0.0.0/8")
APPLE_FIRST_BYTE = APPLE_NETWORK.network_address.packed[0]

# Proxies that fetch images on the reader's behalf (opens only), by the name in their user agent.
_IMAGE_PROXIES = (
    ("googleimageproxy", "Gmail image proxy"),
    ("ggpht.com", "Gmail image proxy"),
    ("yahoomailproxy", "Yahoo Mail image proxy"),
)
# Scanners, link previews, crawlers and HTTP libraries, by the name in their user agent (lower case).
_MACHINE_AGENTS = (
    ("safelinks", "Microsoft Safe Links"),
    ("microsoft office", "Microsoft Office link check"),
    ("ms-office", "Microsoft Office link check"),
    ("microsoftpreview", "Microsoft link preview"),
    ("skypeuripreview", "Microsoft Teams/Skype link preview"),
    ("bingpreview", "Bing link preview"),
    ("proofpoint", "Proofpoint URL Defense"),
    ("mimecast", "Mimecast URL protection"),
    ("barracuda", "Barracuda link protection"),
    ("slackbot", "Slack link preview"),
    ("slack-imgproxy", "Slack link preview"),
    ("discordbot", "Discord link preview"),
    ("whatsapp", "WhatsApp link preview"),
    ("telegrambot", "Telegram link preview"),
    ("facebookexternalhit", "Facebook link preview"),
    ("linkedinbot", "LinkedIn link preview"),
    ("twitterbot", "X/Twitter link preview"),
    ("googlebot", "crawler"),
    ("headlesschrome", "headless browser"),
    ("python-requests", "HTTP library"),
    ("python-urllib", "HTTP library"),
    ("aiohttp", "HTTP library"),
    ("go-http-client", "HTTP library"),
    ("okhttp", "HTTP library"),
    ("apache-httpclient", "HTTP library"),
    ("java/", "HTTP library"),
    ("libwww-perl", "HTTP library"),
    ("curl/", "HTTP library"),
    ("wget/", "HTTP library"),
)
# Generic self-descriptions, as whole words: "bot" but not "Cubot" (a phone maker).
_MACHINE_WORDS = re.compile(r"\b(bot|crawler|spider|scanner|preview|prefetch)\b", re.I)
_PREFETCH_HEADERS = ("purpose", "sec-purpose", "x-purpose")
_PREFETCH_VALUES = ("prefetch", "preview", "prerender")


def classify(
    kind: TrackingKind,
    *,
    method: str,
    user_agent: str | None,
    headers: Mapping[str, str],
    ip: str | None,
    delivered_at: datetime | None,
    now: datetime,
) -> str | None:
    """Why this hit is a machine's, or None for a person's (see the module doc). ``headers`` are the request's,
    names in lower case; ``delivered_at`` when the message was sent (None: unknown)."""
    if method.upper() == "HEAD":
        return "HEAD request (link checker)"
    if headers:  # most requests carry none of these
        for name in _PREFETCH_HEADERS:
            if any(v in headers.get(name, "").lower() for v in _PREFETCH_VALUES):
                return f"{name} header: prefetch"
        if "prefetch" in headers.get("x-moz", "").lower():
            return "x-moz header: prefetch"
    proxy, machine, safari = _agent(user_agent or "")
    if kind is TrackingKind.OPEN:
        if proxy is not None:
            return proxy
        if not safari and _from_apple(ip):
            return "Apple Mail Privacy Protection"
    if machine is not None:
        return machine
    return None if kind is TrackingKind.OPEN else delivery_reason(delivered_at, now)


def delivery_reason(delivered_at: datetime | None, now: datetime) -> str | None:
    """Why a click (or any hit but an open) at ``now`` is a machine's for its timing alone: it came within
    :data:`SCANNER_SECONDS` of its message's delivery (``delivered_at``; None: unknown, no reason). The last rule
    :func:`classify` applies: a caller that classified a client once for many hits (``delivered_at`` None) applies
    it to each hit whose client gave no reason."""
    if delivered_at is not None and _NO_TIME <= now - delivered_at < _SCANNER_TIME:
        return _SCANNER_REASON
    return None


_NO_TIME = timedelta(0)
_SCANNER_TIME = timedelta(seconds=SCANNER_SECONDS)
_SCANNER_REASON = f"within {SCANNER_SECONDS} s of delivery"


# Few user agents make most hits (each mail client's, each proxy's): what one says is worked out once. With the
# IPv4 check below, an open is classified in 0.5 µs instead of 9.1 (timed on this machine class).
@functools.lru_cache(maxsize=4096)
def _agent(user_agent: str) -> tuple[str | None, str | None, bool]:
    """What a user agent says: the image proxy it names (opens), the machine it names or why it is one, and
    whether it names Safari."""
    agent = user_agent.lower()
    proxy = next((reason for needle, reason in _IMAGE_PROXIES if needle in agent), None)
    machine = None
    if not agent.strip():
        machine = "no user agent"
    else:
        machine = next((reason for needle, reason in _MACHINE_AGENTS if needle in agent), None)
        if machine is None and (word := _MACHINE_WORDS.search(agent)) is not None:
            machine = f"user agent says {word.group(1).lower()}"
    return proxy, machine, "safari" in agent


def burst_reason(first: datetime, second: datetime, first_link: int | None, second_link: int | None) -> str | None:
    """Why two clicks on one message are a scanner's: different links within :data:`BURST_SECONDS`; else None."""
    if first_link == second_link:
        return None
    if abs((second - first).total_seconds()) <= BURST_SECONDS:
        return f"several links within {BURST_SECONDS:g} s"
    return None


def _from_apple(ip: str | None) -> bool:
    if not ip:
        return False
    # The usual case, an IPv4 address as sockets spell it, without parsing it into an object (7 µs).
    if (packed := canonical_ipv4(ip)) is not None:
        return packed[0] == APPLE_FIRST_BYTE
    try:
        return ipaddress.ip_address(ip) in APPLE_NETWORK
    except ValueError:
        return False
