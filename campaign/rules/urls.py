"""Validation of the web addresses an event links to (registration and join pages).

A URL from an event file ends up inside an HTML attribute (the Register button), a plain-text body and an
iCalendar ``URL:`` property. Escaping protects each of them, but a URL that needs escaping is not a URL a
person meant to give: a quote, a space, an angle bracket or a control character is where a broken button,
an injected attribute or a spoofed display starts. So the rule is strict and the error names the key.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from campaign.rules.contact_fields import FieldError
from campaign.rules.hosts import is_relay_host

HTTP_SCHEMES = ("http", "https")
# Characters that end or break an HTML attribute or an iCalendar value, or that browsers rewrite
# (the backslash becomes a slash in WHATWG URL parsing, which changes the host a link goes to).
_FORBIDDEN = frozenset("\"'`<>\\")
_FORBIDDEN_WORDS = "quotes, spaces, angle brackets, backslashes or control characters"


def parse_http_url(raw: str, field: str) -> str:
    """Return ``raw`` when it is a plain http(s) URL with a host, or raise :class:`FieldError` for ``field``.

    Refused: another scheme, no host, an invalid port, a user name or password (``https://bank@evil/`` shows
    one host and goes to another), and any quote, space, angle bracket, backslash or non-printable character
    (controls, bidirectional overrides, no-break spaces). The URL is kept as written.
    """
    url = raw
    # Not even surrounding spaces are trimmed: the value is used as written, so it must be right as written.
    # str.isprintable() is False for controls, format characters (bidi overrides) and every space but U+0020.
    if any(ch in _FORBIDDEN or ch == " " or not ch.isprintable() for ch in url):
        raise FieldError(field, f"must not contain {_FORBIDDEN_WORDS}: {url!r}")
    try:
        parts = urlsplit(url)
    except ValueError:  # an unbalanced or malformed [IPv6] host
        raise FieldError(field, f"has an invalid host: {url!r}") from None
    if parts.scheme not in HTTP_SCHEMES:
        raise FieldError(field, f"must be an http(s) URL, not {url!r}")
    if not parts.hostname:
        raise FieldError(field, f"must be an http(s) URL with a host, not {url!r}")
    if "@" in parts.netloc:
        raise FieldError(field, f"must not contain a user name or password: {url!r}")
    if not _is_web_host(parts.hostname):
        raise FieldError(field, f"has an invalid host: {url!r}")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise FieldError(field, f"has an invalid port: {url!r}")
    return url


def _is_web_host(host: str) -> bool:
    """A host name (internationalised ones through IDNA) or an IP address; one trailing dot (the DNS root) is fine."""
    try:
        ascii_host = host.removesuffix(".").encode("idna").decode("ascii")
    except UnicodeError:
        return False
    return is_relay_host(ascii_host)
