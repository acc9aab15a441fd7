"""Host names: the one rule for a DNS label and a host name, and what a mail relay may be called.

A label is letters, digits and hyphens, 1 to 63 of them, not starting or ending with a hyphen (RFC 1123); a
host name is dot-separated labels, at most 253 characters, whose last label is not all digits (so
``999.1.1.1`` is neither a name nor an address). Contact addresses' domains are checked with the same label
(:mod:`campaign.rules.contact_fields`); a relay (``smtp.host``, ``smtp.servers``) may also be an IP address.
"""

from __future__ import annotations

import ipaddress
import re

LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
"""One DNS label (letters, digits, inner hyphens; at most 63), as a regular expression."""

_HOST_NAME = re.compile(rf"(?=.{{1,253}}\Z)(?:{LABEL}\.)*(?![0-9]+\Z){LABEL}\Z")

HOST_EXAMPLES = "like smtp.example.org, 192.0.2.25 or ::1"
"""What :func:`is_relay_host` accepts, for error messages."""


def is_host_name(text: str) -> bool:
    """Whether ``text`` is an ASCII host name (``localhost``, ``smtp.example.org``); no trailing dot."""
    return _HOST_NAME.match(text) is not None


def is_relay_host(text: str) -> bool:
    """Whether ``text`` can name a mail relay: a host name, or an IPv4 or IPv6 address (without brackets)."""
    if is_host_name(text):
        return True
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
