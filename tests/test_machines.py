"""Telling people from machines (rules/machines.py) and what is kept of an IP (rules/ip_privacy.py)."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaign.models import TrackingKind
from campaign.rules.ip_privacy import IpStorage, stored_ip
from campaign.rules.machines import BURST_SECONDS, SCANNER_SECONDS, burst_reason, classify, delivery_reason

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1"
)
OUTLOOK_DESKTOP = "Microsoft Outlook 16.0.17928; Pro"
GMAIL_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
APPLE_MPP = "Mozilla/5.0"


def hit(kind: TrackingKind = TrackingKind.CLICK, **facts: object) -> str | None:
    values: dict[str, object] = {
        "method": "GET",
        "user_agent": CHROME,
        "headers": {},
        "ip": "198.51.100.7",
        "delivered_at": NOW - timedelta(hours=2),
        "now": NOW,
    }
    values.update(facts)
    return classify(kind, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize("agent", [CHROME, IPHONE_SAFARI, OUTLOOK_DESKTOP])
def test_people_in_their_browsers_and_mail_apps_are_people(agent: str) -> None:
    assert hit(TrackingKind.OPEN, user_agent=agent) is None
    assert hit(TrackingKind.CLICK, user_agent=agent) is None


def test_image_proxies_open_but_are_no_readers() -> None:
    assert hit(TrackingKind.OPEN, user_agent=GMAIL_PROXY) == "Gmail image proxy"
    assert hit(TrackingKind.OPEN, user_agent="YahooMailProxy; https://help.yahoo.com") == "Yahoo Mail image proxy"
    assert hit(TrackingKind.OPEN, user_agent=APPLE_MPP, ip="17.58.100.3") == "Apple Mail Privacy Protection"
    # The same user agent elsewhere, or Safari on Apple's own network, is someone reading.
    assert hit(TrackingKind.OPEN, user_agent=APPLE_MPP, ip="198.51.100.7") is None
    assert hit(TrackingKind.OPEN, user_agent=IPHONE_SAFARI, ip="17.58.100.3") is None


@pytest.mark.parametrize(
    ("agent", "reason"),
    [
        ("Mozilla/5.0 (compatible; MSIE 9.0) SafeLinks", "Microsoft Safe Links"),
        ("Proofpoint URL Defense", "Proofpoint URL Defense"),
        ("Mimecast-Url-Protect/1.0", "Mimecast URL protection"),
        ("Barracuda Sentinel (EE)", "Barracuda link protection"),
        ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "Slack link preview"),
        ("python-requests/2.32.3", "HTTP library"),
        ("curl/8.5.0", "HTTP library"),
        ("Mozilla/5.0 (compatible; Uptime bot/1.0)", "user agent says bot"),
        ("", "no user agent"),
    ],
)
def test_scanners_previews_and_libraries_are_machines(agent: str, reason: str) -> None:
    assert hit(user_agent=agent) == reason


def test_a_phone_named_like_a_bot_is_a_person() -> None:
    assert hit(user_agent="Mozilla/5.0 (Linux; Android 13; Cubot KingKong) Chrome/120.0 Mobile Safari/537.36") is None


def test_head_requests_and_prefetch_headers_are_machines() -> None:
    assert hit(method="HEAD") == "HEAD request (link checker)"
    assert hit(headers={"sec-purpose": "prefetch;prerender"}) == "sec-purpose header: prefetch"
    assert hit(headers={"purpose": "preview"}) == "purpose header: prefetch"
    assert hit(headers={"x-moz": "prefetch"}) == "x-moz header: prefetch"
    assert hit(headers={"purpose": "navigate"}) is None


def test_a_click_sooner_after_delivery_than_a_person_can_is_a_scanner() -> None:
    just_sent = NOW - timedelta(seconds=SCANNER_SECONDS - 1)
    assert hit(delivered_at=just_sent) == f"within {SCANNER_SECONDS} s of delivery"
    assert hit(delivered_at=NOW - timedelta(seconds=SCANNER_SECONDS)) is None
    # An open right after delivery is a reader with the message on screen (Apple's proxy is told apart above).
    assert hit(TrackingKind.OPEN, delivered_at=just_sent) is None
    assert hit(delivered_at=None) is None


def test_the_delivery_time_rule_alone_is_the_one_classify_applies_last() -> None:
    # A caller classifying a client once for many hits applies the timing rule to each hit itself.
    just_sent = NOW - timedelta(seconds=SCANNER_SECONDS - 1)
    assert delivery_reason(just_sent, NOW) == hit(delivered_at=just_sent) == f"within {SCANNER_SECONDS} s of delivery"
    assert delivery_reason(NOW - timedelta(seconds=SCANNER_SECONDS), NOW) is None
    assert delivery_reason(None, NOW) is None
    assert delivery_reason(NOW + timedelta(seconds=1), NOW) is None  # sent "after" the click: clocks disagree
    assert hit(delivered_at=None, method="HEAD") == "HEAD request (link checker)"


def test_every_link_hit_within_a_second_is_a_burst() -> None:
    assert burst_reason(NOW, NOW + timedelta(seconds=BURST_SECONDS), 1, 2) is not None
    assert burst_reason(NOW, NOW + timedelta(seconds=BURST_SECONDS + 0.01), 1, 2) is None
    assert burst_reason(NOW, NOW, 1, 1) is None  # the same link twice: a double click


@given(st.ip_addresses(v=4))
def test_a_truncated_ipv4_keeps_its_24(ip: object) -> None:
    kept = stored_ip(str(ip), IpStorage.TRUNCATED)
    assert kept is not None
    assert kept.rsplit(".", 1)[0] == str(ip).rsplit(".", 1)[0]
    assert kept.endswith(".0")


@given(st.ip_addresses(v=6))
def test_a_truncated_ipv6_keeps_its_48(ip: object) -> None:
    kept = stored_ip(str(ip), IpStorage.TRUNCATED)
    assert kept is not None
    address = ipaddress.ip_address(kept)
    if address.version == 6:
        assert ipaddress.ip_address(str(ip)) in ipaddress.ip_network(f"{kept}/48")
        assert int(address) & ((1 << 80) - 1) == 0


def test_ip_storage_settings() -> None:
    assert stored_ip("203.0.113.77", IpStorage.FULL) == "203.0.113.77"
    assert stored_ip("203.0.113.77", IpStorage.NONE) is None
    assert stored_ip("::ffff:203.0.113.77", IpStorage.TRUNCATED) == "203.0.113.0"
    assert stored_ip("not an address", IpStorage.FULL) is None
    assert stored_ip(None, IpStorage.TRUNCATED) is None


def _stored_by_ipaddress(ip: str, storage: IpStorage) -> str | None:
    """What stored_ip kept before it read IPv4 addresses without ipaddress (the reference it must agree with)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if storage is IpStorage.FULL:
        return str(address)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


ip_like = st.one_of(
    st.ip_addresses().map(str),
    st.builds("{}.{}.{}.{}".format, *[st.sampled_from(["0", "00", "01", "17", "255", "256", "1٣", " 1", "1 "])] * 4),
    st.text(alphabet="0123456789.:abcdef ", max_size=20),
)


@given(ip_like, st.sampled_from([IpStorage.TRUNCATED, IpStorage.FULL]))
def test_ipv4_addresses_read_without_ipaddress_are_kept_as_ipaddress_keeps_them(ip: str, storage: IpStorage) -> None:
    assert stored_ip(ip, storage) == _stored_by_ipaddress(ip, storage)


@given(ip_like)
def test_apples_network_is_told_as_ipaddress_tells_it(ip: str) -> None:
    try:
        apple = ipaddress.ip_address(ip) in ipaddress.ip_network("17.0.0.0/8")
    except ValueError:
        apple = False
    expected = "Apple Mail Privacy Protection" if apple else None
    assert hit(TrackingKind.OPEN, user_agent=APPLE_MPP, ip=ip) == expected
