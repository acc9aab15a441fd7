"""Validation and normalisation of contact fields: email, time zone, country, locale, free text.

Each ``parse_*`` function returns the canonical form of a value or raises :class:`FieldError` saying why
it is invalid. They are called once per imported row, so they are kept cheap: the common case of an
email address is normalised by a conservative fast path whose results equal email-validator's (a property
test holds them equal); anything the fast path does not fully understand goes to email-validator.
"""

from __future__ import annotations

import re
import unicodedata
import zoneinfo
from functools import cache

from babel import Locale, UnknownLocaleError
from babel.core import get_global
from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES

from campaign.exceptions import ValidationError
from campaign.rules.characters import CONTROL_CLASS
from campaign.rules.hosts import LABEL


class FieldError(ValidationError):
    """One field of one record is invalid."""

    field: str  # always named here

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}", field=field)
        self.reason = reason


# Special-use domains that email-validator refuses by default (RFC 6761); the fast path defers them. Each is a
# single label, so a domain is (under) one of them exactly when its last label is one of them.
_SPECIAL_USE = frozenset(("arpa", "invalid", "local", "localhost", "onion", "test"))
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_FAST_EMAIL = re.compile(rf"({_ATEXT}(?:\.{_ATEXT})*)@((?:{LABEL}\.)+[A-Za-z]{{2,63}})")
# Controls (CR, LF, tab, NUL, C1 such as CSI...) never belong in a name: each run becomes one space.
_CONTROLS = re.compile(CONTROL_CLASS + "+")
# Zero-width non-joiner and joiner (U+200C, U+200D) are format characters that spelling needs: Persian writes
# "می‌خواهم" with a ZWNJ, Indic scripts choose conjunct forms with them, and emoji sequences (👩‍💻) are joined by
# ZWJ. They neither reorder text nor hide any, so they are kept; every other format character goes.
_KEPT_FORMAT = frozenset("\u200c\u200d")


def normalise_email(raw: str) -> str:
    """Return the normalised address (domain lower-cased, IDNA-checked), or raise :class:`FieldError`.

    No DNS lookups: an import must not depend on the network, and must stay fast.
    """
    text = raw.strip()
    if not text:
        raise FieldError("email", "missing")
    match = _FAST_EMAIL.fullmatch(text)
    if match is not None:
        local, domain = match.groups()
        domain = domain.lower()
        if (
            len(local) <= 64
            and len(text) <= 254
            and "--" not in domain
            and domain.rpartition(".")[2] not in _SPECIAL_USE
        ):
            # As email-validator does, RFC 2142 role names (Postmaster, Abuse...) are case-insensitive.
            if local.lower() in CASE_INSENSITIVE_MAILBOX_NAMES:
                local = local.lower()
            return f"{local}@{domain}"
    try:
        # Not SMTPUTF8: an address with characters outside ASCII before the @ reaches a mail server only with it,
        # which delivery does not speak (the To header and the envelope are ASCII; a Unicode domain goes in its
        # IDNA form). Accepted, such a contact made every preview, check and message of it fail.
        return validate_email(text, check_deliverability=False, allow_smtputf8=False).normalized
    except EmailNotValidError as exc:
        raise FieldError("email", f"{text!r} is not a valid address: {exc}") from None


def parse_mail_domain(raw: str) -> str:
    """Return a domain that addresses can be at, in its ASCII (IDNA) form, or raise :class:`FieldError`.

    The rule :func:`normalise_email` applies to an address's domain (email-validator's): labels, IDNA, at least
    one dot, and no special-use name: single labels (``intranet``) and ``.local``, ``.localhost``, ``.test``,
    ``.invalid``, ``.arpa``, ``.onion`` are refused. ASCII because it names headers (Message-ID, List-Id).
    """
    try:
        return validate_email(f"postmaster@{raw}", check_deliverability=False).ascii_domain
    except EmailNotValidError as exc:
        reason = str(exc).replace("The part after the @-sign", "It")
        raise FieldError("domain", f"must be a domain name like example.org, not {raw!r}: {reason}") from None


def email_key(email: str) -> str:
    """The key that makes two addresses the same person: case-insensitive, as people (and mail hosts) treat them."""
    return email.lower()


@cache
def _zones_by_lower_name() -> dict[str, str]:
    return {name.lower(): name for name in zoneinfo.available_timezones() if name not in _NOT_ZONES}


# Keys the time zone database of some machines lists that name no place's time: "localtime" is the machine's own
# zone (a contact or a report in it would follow wherever the server runs), "Factory" a placeholder ("-00").
_NOT_ZONES = frozenset({"localtime", "Factory"})


def parse_timezone(raw: str) -> str:
    """Return the IANA zone name (case-insensitively matched, canonical spelling), or raise :class:`FieldError`."""
    name = _zones_by_lower_name().get(raw.strip().lower())
    if name is None:
        raise FieldError("timezone", f"{raw.strip()!r} is not an IANA time zone (e.g. Asia/Manila)")
    return name


@cache
def _territory_zones() -> dict[str, list[str]]:
    return dict(get_global("territory_zones"))


def parse_country(raw: str) -> str:
    """Return the ISO 3166-1 alpha-2 code in upper case, or raise :class:`FieldError`."""
    code = raw.strip().upper()
    # "ZZ" is CLDR's "unknown region", not a country.
    if len(code) != 2 or not code.isalpha() or code == "ZZ" or code not in _territory_zones():
        raise FieldError("country", f"{raw.strip()!r} is not an ISO 3166 two-letter country code (e.g. PH)")
    return code


@cache
def single_zone_countries() -> dict[str, str]:
    """Each country that has exactly one (known) time zone, with that zone. Do not modify: it is shared."""
    known = set(_zones_by_lower_name().values())
    single: dict[str, str] = {}
    for country, zones in _territory_zones().items():
        usable = [z for z in zones if z in known]
        if len(usable) == 1:
            single[country] = usable[0]
    return single


def zone_for_country(country: str) -> str | None:
    """The country's time zone when it has exactly one, else None (the zone cannot be guessed)."""
    return single_zone_countries().get(country)


@cache
def parse_locale(raw: str) -> str:
    """Return the BCP 47 tag (``es-CO``) of a locale Babel knows, or raise :class:`FieldError`.

    Accepts ``es-CO``, ``es_CO`` and ``ES-co``. Cached: an import sees a handful of distinct locales.
    """
    text = raw.strip().replace("_", "-")
    try:
        locale = Locale.parse(text, sep="-")
    except (UnknownLocaleError, ValueError, TypeError):
        raise FieldError("locale", f"{raw.strip()!r} is not a known locale (e.g. en, es-CO, pt-PT)") from None
    return "-".join(part for part in (locale.language, locale.script, locale.territory) if part)


def clean_text(raw: str | None) -> str | None:
    """Trim a free-text field, turn control characters (CR, LF, tab...) into single spaces, drop format characters.

    A line break has no place in a name, and one that reaches a header is an injection; removing it here
    is the first of two defences (headers are also encoded safely when messages are built). Format
    characters (Unicode category Cf) are removed: bidirectional overrides and isolates (U+202A-U+202E,
    U+2066-U+2069), the marks U+200E, U+200F and U+061C, zero-width spaces, U+FEFF, soft hyphens and tag
    characters reorder or hide what a table or a ``To:`` header shows ("Bob", U+202E, "gnp.exe"
    reads "Bobexe.png"). Only the zero-width non-joiner and joiner are kept, which spelling and emoji need.
    """
    if raw is None:
        return None
    # Fast path, the usual case: a printable string has no whitespace but the ASCII space, no controls and
    # no format characters, so when it has no leading, trailing or doubled space there is nothing to change.
    if raw.isprintable():
        if raw[:1] != " " and raw[-1:] != " " and "  " not in raw:
            return raw or None
    else:
        raw = without_format_characters(raw)
    text = " ".join(_CONTROLS.sub(" ", raw).split())
    return text or None


def without_format_characters(text: str) -> str:
    """``text`` without Unicode format characters (bidi overrides, zero-width spaces...) but ZWNJ and ZWJ."""
    # Looked up per distinct character, not per character, and only for the rare non-printable string.
    # unicodedata follows the running Python's Unicode version, so new format characters are covered too.
    dropped = {ord(ch): None for ch in set(text) if unicodedata.category(ch) == "Cf" and ch not in _KEPT_FORMAT}
    return text.translate(dropped) if dropped else text
