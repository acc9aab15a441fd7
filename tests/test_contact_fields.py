"""Validation and normalisation of contact fields, with property tests against email-validator."""

from __future__ import annotations

import csv
import re
import string
import unicodedata
import zoneinfo
from collections.abc import Callable
from pathlib import Path

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from campaign.exceptions import ValidationError
from campaign.rules.contact_fields import (
    FieldError,
    clean_text,
    email_key,
    normalise_email,
    parse_country,
    parse_locale,
    parse_timezone,
    zone_for_country,
)
from campaign.services.contact_import import import_contacts
from campaign.services.contacts import find_contacts
from campaign.services.database import init_database
from campaign.sources.csv_writer import from_spreadsheet_safe
from campaign.store.engine import Database

# --- normalise_email: examples -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("maria.santos@dole.example.org", "maria.santos@dole.example.org"),
        ("Maria.Santos@DOLE.Example.ORG", "Maria.Santos@dole.example.org"),  # domain lower-cased, local part kept
        ("  padded@example.com \t", "padded@example.com"),
        ("first+tag@example.co.uk", "first+tag@example.co.uk"),
        ("o'brien@example.ie", "o'brien@example.ie"),
        ("x_y-z=1@sub-domain.example.net", "x_y-z=1@sub-domain.example.net"),
        ("a@123.example", "a@123.example"),
        ("user@xn--bcher-kva.example", "user@bücher.example"),  # IDNA domains come back in Unicode
        ("user@BÜCHER.example", "user@bücher.example"),
    ],
)
def test_normalise_email_accepts_and_normalises(raw: str, expected: str) -> None:
    assert normalise_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "not-an-email",
        "two@@example.com",
        "a@b@example.com",
        "space in@example.com",
        ".leading@example.com",
        "trailing.@example.com",
        "double..dot@example.com",
        "nodomain@",
        "@nolocal.example.com",
        "nodot@localhost",
        "a@-hyphen.example.com",
        "a@hyphen-.example.com",
        "a@exa_mple.com",
        "a@example.c1",  # the top-level domain must end in a letter
        "rafael.souza@migrants.test",  # special-use domains (RFC 6761)
        "a@example.local",
        "a@duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion",
        "a@example.invalid",
        "a@b.localhost",
        "a@10.in-addr.arpa",
        "a@EXAMPLE.TEST",
        "a@" + "l" * 64 + ".example.com",  # a label longer than 63
        "a@" + ".".join(["d" * 60] * 5) + ".com",  # longer than 254 in all
        # Characters outside ASCII before the @ need SMTPUTF8, which delivery does not speak: accepted, the
        # contact's preview and launch were a 500 and its messages failed (a web review's reproduction).
        "josé@example.com",
        "Ünïcødé@example.org",
        "l" * 50 + "@" + ".".join(["d" * 50] * 4) + ".com",  # 50 + 1 + 207 = 258 > 254
        "Display Name <a@example.com>",
        '"quoted"@example.com',
        "a@[192.0.2.1]",
        "a@ab--cd.example",  # two letters then two hyphens, not Punycode
    ],
)
def test_normalise_email_rejects(raw: str) -> None:
    with pytest.raises(FieldError) as caught:
        normalise_email(raw)
    assert caught.value.field == "email"
    assert raw.strip() in str(caught.value)


@pytest.mark.parametrize("raw", ["", "   ", "\t\r\n"])
def test_normalise_email_reports_a_missing_address(raw: str) -> None:
    with pytest.raises(FieldError) as caught:
        normalise_email(raw)
    assert (caught.value.field, caught.value.reason) == ("email", "missing")
    assert str(caught.value) == "email: missing"


def test_field_error_is_a_validation_error_and_a_value_error() -> None:
    error = FieldError("country", "bad")
    assert isinstance(error, ValidationError)
    assert isinstance(error, ValueError)
    assert str(error) == "country: bad"


@pytest.mark.parametrize("local", ["Postmaster", "INFO", "Support", "abuse", "WebMaster"])
def test_role_mailbox_names_normalise_like_email_validator(local: str) -> None:
    """email-validator lower-cases the RFC 2142 role mailboxes (info@, postmaster@...); the fast path must too."""
    address = f"{local}@Example.com"
    expected = validate_email(address, check_deliverability=False).normalized
    assert expected == f"{local.lower()}@example.com"
    assert normalise_email(address) == expected


def test_long_local_parts_are_accepted_as_email_validator_does() -> None:
    # RFC 5321's 64-octet local part limit is only enforced by email-validator in strict mode.
    address = "l" * 70 + "@example.com"
    assert normalise_email(address) == validate_email(address, check_deliverability=False).normalized == address


# --- normalise_email: properties -----------------------------------------------------------------------------

ATEXT = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"
ROLE_MAILBOXES = (
    "info", "marketing", "sales", "support", "abuse", "noc", "security", "postmaster", "hostmaster", "usenet",
    "news", "webmaster", "www", "uucp", "ftp",
)  # fmt: skip
TLDS = (
    "com", "org", "net", "example", "io", "museum", "ph", "COM", "Org",
    "test", "local", "onion", "invalid", "localhost", "arpa", "TEST", "Local",
    "c1", "123", "x", "xn--p1ai", "xn--zz", "q" * 63, "q" * 64,
)  # fmt: skip
SPECIAL_LABELS = (
    "xn--bcher-kva", "XN--BCHER-KVA", "xn--80ak6aa92e", "xn--abc", "xn--", "xn--zz", "ab--cd", "a--b", "-a", "a-",
    "test", "local", "onion",
)  # fmt: skip


@st.composite
def _random_case(draw: st.DrawFn, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.swapcase() if flip else c for c, flip in zip(text, flips, strict=True))


_atom = st.text(alphabet=ATEXT, min_size=1, max_size=12)
_local = st.one_of(
    st.lists(_atom, min_size=1, max_size=4).map(".".join),
    st.sampled_from(ROLE_MAILBOXES).flatmap(_random_case),
    st.integers(60, 70).map(lambda n: "l" * n),  # around the 64-character limit
    st.lists(_atom, min_size=10, max_size=14).map(".".join),  # often longer than 64
    st.sampled_from([".a", "a.", "a..b", "", "a b", '"q"', "a,b", "a(b)", "ünï", "a\\b"]),
)
_label = st.one_of(
    st.text(alphabet=string.ascii_letters + string.digits + "-", min_size=1, max_size=15),
    st.sampled_from(SPECIAL_LABELS),
    st.integers(60, 66).map(lambda n: "d" * n),  # around the 63-character label limit
)
_domain = st.builds(
    lambda labels, tld: ".".join([*labels, tld]),
    st.lists(_label, min_size=0, max_size=4),
    st.sampled_from(TLDS),
)
addresses = st.one_of(
    st.builds(lambda local, domain: f"{local}@{domain}", _local, _domain),
    st.text(alphabet=ATEXT + "@.-", max_size=40),  # anything at all made of address characters
)


def _outcome(normalise: Callable[[str], str], address: str) -> tuple[str, str | None]:
    try:
        return "ok", normalise(address)
    except (FieldError, EmailNotValidError):
        return "rejected", None


def _reference(address: str) -> str:
    # Without SMTPUTF8, which delivery does not speak: no characters outside ASCII before the @.
    return validate_email(address, check_deliverability=False, allow_smtputf8=False).normalized


@settings(max_examples=400, deadline=None)
@given(addresses)
@example("Postmaster@example.com")
@example("user@xn--bcher-kva.example")
@example("a@b.onion")
@example("l" * 65 + "@example.com")
def test_fast_path_agrees_with_email_validator(address: str) -> None:
    assert _outcome(normalise_email, address) == _outcome(_reference, address)


@settings(max_examples=200, deadline=None)
@given(addresses)
def test_normalisation_is_idempotent(address: str) -> None:
    try:
        once = normalise_email(address)
    except FieldError:
        return
    assert normalise_email(once) == once


@st.composite
def _address_and_case_variant(draw: st.DrawFn) -> tuple[str, str]:
    address = draw(st.builds(lambda local, domain: f"{local}@{domain}", _local, _domain))
    return address, draw(_random_case(address))


@settings(max_examples=200, deadline=None)
@given(_address_and_case_variant())
def test_email_key_makes_case_variants_equal(pair: tuple[str, str]) -> None:
    address, variant = pair
    first, second = _outcome(normalise_email, address), _outcome(normalise_email, variant)
    # Letter case never decides whether an address is valid...
    assert first[0] == second[0]
    # ...nor which person it is.
    if first[1] is not None and second[1] is not None:
        assert email_key(first[1]) == email_key(second[1])


def test_email_key_is_case_insensitive() -> None:
    assert email_key("Maria.Santos@DOLE.example.org") == email_key("maria.santos@dole.example.org")
    assert email_key("A@b.org") != email_key("a@c.org")


# Valid addresses only, from a small pool so that lists have collisions beyond letter case.
_pool_address = st.builds(
    lambda local, domain: f"{local}@{domain}",
    st.one_of(st.sampled_from(["ann", "bob", "c.d", "info", "x+y", "o'neil"]), _atom),
    st.sampled_from(["example.org", "ngo.example.net", "bücher.example", "xn--bcher-kva.example"]),
)


@st.composite
def _address_lists(draw: st.DrawFn) -> list[str]:
    base = draw(st.lists(_pool_address, min_size=1, max_size=12))
    return [draw(_random_case(draw(st.sampled_from(base)))) for _ in range(draw(st.integers(1, 30)))]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=_address_lists(), batch_size=st.integers(1, 5))
@example(rows=["'-@example.org"], batch_size=1)  # found by a run: the import reads it as an export's -@example.org
def test_importing_case_variants_yields_one_contact_per_email_key(
    tmp_path_factory: pytest.TempPathFactory, rows: list[str], batch_size: int
) -> None:
    directory = tmp_path_factory.mktemp("dedupe")
    path = directory / "contacts.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["email"])
        writer.writerows([address] for address in rows)
    # As the import reads a cell: an export's quote before a formula character (''-@x'') taken off first.
    expected = {email_key(normalise_email(from_spreadsheet_safe(address))) for address in rows}
    db = Database(f"sqlite:///{directory / 'campaign.db'}")
    try:
        init_database(db)
        report = import_contacts(db, path, "list", batch_size=batch_size)
        stored = [contact.email for contact in find_contacts(db)]
    finally:
        db.dispose()
    assert report.rejected == 0
    assert report.new == len(expected)
    assert report.duplicates == len(rows) - len(expected)
    assert sorted(email_key(email) for email in stored) == sorted(expected)


# --- time zones ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Asia/Manila", "Asia/Manila"),
        ("asia/manila", "Asia/Manila"),
        ("  EUROPE/LONDON ", "Europe/London"),
        ("america/argentina/buenos_aires", "America/Argentina/Buenos_Aires"),
        ("america/port-au-prince", "America/Port-au-Prince"),
        ("utc", "UTC"),
        ("etc/gmt+8", "Etc/GMT+8"),
    ],
)
def test_parse_timezone_matches_case_insensitively_and_returns_the_canonical_spelling(raw: str, expected: str) -> None:
    assert parse_timezone(raw) == expected


@pytest.mark.parametrize(
    "raw", ["Mars/Olympus_Mons", "", "  ", "GMT+8", "+08:00", "Manila", "Asia/Manila/Extra", "localtime", "Factory"]
)
def test_parse_timezone_rejects_unknown_zones(raw: str) -> None:
    with pytest.raises(FieldError) as caught:
        parse_timezone(raw)
    assert caught.value.field == "timezone"
    assert "IANA" in caught.value.reason


# --- countries -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [("PH", "PH"), ("ph", "PH"), (" us ", "US"), ("Gb", "GB")])
def test_parse_country_returns_the_upper_case_code(raw: str, expected: str) -> None:
    assert parse_country(raw) == expected


@pytest.mark.parametrize("raw", ["ZZ", "001", "Philippines", "PHL", "P1", "", "UK", "EU", "XX", "P"])
def test_parse_country_rejects_what_is_not_an_iso_code(raw: str) -> None:
    with pytest.raises(FieldError) as caught:
        parse_country(raw)
    assert caught.value.field == "country"
    assert "ISO 3166" in caught.value.reason


@pytest.mark.parametrize(
    ("country", "zone"),
    [
        ("PH", "Asia/Manila"),
        ("GB", "Europe/London"),
        ("JP", "Asia/Tokyo"),
        ("CO", "America/Bogota"),
        ("KE", "Africa/Nairobi"),
        ("IN", "Asia/Kolkata"),
        ("NP", "Asia/Kathmandu"),
    ],
)
def test_zone_for_country_with_a_single_zone(country: str, zone: str) -> None:
    assert zone_for_country(country) == zone


@pytest.mark.parametrize("country", ["US", "CA", "BR", "AU", "PT", "NZ", "ZZ", "QQ", ""])
def test_zone_for_country_with_several_or_no_zones_is_none(country: str) -> None:
    assert zone_for_country(country) is None


def test_every_inferred_zone_is_a_canonical_zone_parse_timezone_accepts() -> None:
    codes = [a + b for a in string.ascii_uppercase for b in string.ascii_uppercase]
    inferred = {}
    for code in codes:
        try:
            country = parse_country(code)
        except FieldError:
            assert zone_for_country(code) is None
            continue
        if (zone := zone_for_country(country)) is not None:
            inferred[country] = zone
    assert len(inferred) > 100  # most countries have a single zone
    available = zoneinfo.available_timezones()
    for zone in inferred.values():
        assert zone in available
        assert parse_timezone(zone.lower()) == zone


# --- locales -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("en", "en"),
        ("es_CO", "es-CO"),
        ("es-CO", "es-CO"),
        ("ES-co", "es-CO"),
        ("pt_BR", "pt-BR"),
        ("fil-PH", "fil-PH"),
        ("zh-Hant-TW", "zh-Hant-TW"),
        ("zh_hant_tw", "zh-Hant-TW"),
        ("sr-Latn", "sr-Latn"),
        ("  de-CH ", "de-CH"),
    ],
)
def test_parse_locale_returns_bcp47_tags(raw: str, expected: str) -> None:
    assert parse_locale(raw) == expected


@pytest.mark.parametrize("raw", ["xx-QQ", "en-QQ", "english", "", "es--CO", "123"])
def test_parse_locale_rejects_unknown_locales(raw: str) -> None:
    with pytest.raises(FieldError) as caught:
        parse_locale(raw)
    assert caught.value.field == "locale"


# --- free text -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("\r\n\t", None),
        ("Maria Santos", "Maria Santos"),
        ("  Maria   Santos  ", "Maria Santos"),
        ("Ana\r\nDela Cruz", "Ana Dela Cruz"),
        ("Ana\n\n\nDela\rCruz", "Ana Dela Cruz"),
        ("tab\there", "tab here"),
        ("nul\x00byte", "nul byte"),
        ("del\x7fchar", "del char"),
        ("next\x85line", "next line"),
        # C1 controls, as settings refuse them: U+009B is a terminal CSI that recolours a table or a To: line.
        ("Bob\x9b31mX\x85Y", "Bob 31mX Y"),
        ("\x80Ana\x9f", "Ana"),
        ("line\u2028para\u2029end", "line para end"),
        ("no\u00a0break", "no break"),
        ("Subject\r\nBcc: victim@example.com", "Subject Bcc: victim@example.com"),
        ("<b>Bold</b> & Co", "<b>Bold</b> & Co"),  # HTML is the renderer's business
        ('=HYPERLINK("http://x","y")', '=HYPERLINK("http://x","y")'),  # formulas are the exporter's
        ("José Müller 佐藤 منى", "José Müller 佐藤 منى"),
        # Bidirectional controls reorder what is shown (tables, To:): "Bob‮gnp.exe" shows as "Bobexe.png".
        ("Bob\u202egnp.exe", "Bobgnp.exe"),
        ("\u202aa\u202bb\u202cc\u202dd\u202ee", "abcde"),
        ("\u2066a\u2067b\u2068c\u2069d", "abcd"),
        ("\u200eMaria\u200f \u061cSantos", "Maria Santos"),
        # Other format characters hide text: zero-width space, word joiner, BOM, soft hyphen, tags.
        ("Zero\u200bwidth\u2060joined", "Zerowidthjoined"),
        ("\ufeffAna", "Ana"),
        ("Ana\u00adMaria", "AnaMaria"),
        ("Ana\U000e0041\U000e0042", "Ana"),
        ("\u200b \u200b", None),
        ("a \u200b b", "a b"),
        # ZWNJ and ZWJ are kept: Persian and Indic spelling and emoji sequences need them.
        ("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"),
        ("\u0915\u094d\u200d\u0937", "\u0915\u094d\u200d\u0937"),
        ("👩\u200d💻 Dev", "👩\u200d💻 Dev"),
    ],
)
def test_clean_text(raw: str | None, expected: str | None) -> None:
    assert clean_text(raw) == expected


# The control-character rule written out (C0, DEL, C1, U+2028/9), independently of campaign.rules.characters.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_JOINERS = "\u200c\u200d"


def _without_format_characters(text: str) -> str:
    return "".join(ch for ch in text if ch in _JOINERS or unicodedata.category(ch) != "Cf")


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        alphabet=st.one_of(
            st.characters(),
            st.sampled_from(" \t\r\n\x00\x85\x9b\u2028\u00a0"),
            st.characters(categories=["Cf"]),
        ),
        max_size=40,
    )
)
@example("Bob\u202egnp.exe")
@example("a\u200c\u200db")
def test_clean_text_leaves_no_controls_and_no_stray_spaces(raw: str) -> None:
    cleaned = clean_text(raw)
    # The reference: format characters (but the joiners) go, controls become spaces, whitespace runs collapse to
    # one space, ends are trimmed.
    reference = " ".join(_CONTROL.sub(" ", _without_format_characters(raw)).split()) or None
    assert cleaned == reference
    if cleaned is not None:
        assert not _CONTROL.search(cleaned)
        assert _without_format_characters(cleaned) == cleaned
        assert cleaned == cleaned.strip()
        assert "  " not in cleaned
        assert clean_text(cleaned) == cleaned


def test_an_import_strips_bidi_controls_from_names(tmp_path: Path) -> None:
    path = tmp_path / "contacts.csv"
    path.write_text(
        "email,name,first_name,last_name,organisation\n"
        "bob@example.org,Bob\u202egnp.exe,\u200fBob,Smith\u2066,\ufeffACME\u200b Inc\n",
        encoding="utf-8",
    )
    db = Database(f"sqlite:///{tmp_path / 'campaign.db'}")
    try:
        init_database(db)
        report = import_contacts(db, path, "list")
        [contact] = find_contacts(db)
    finally:
        db.dispose()
    assert report.new == 1
    assert (contact.name, contact.first_name, contact.last_name, contact.organisation) == (
        "Bobgnp.exe",
        "Bob",
        "Smith",
        "ACME Inc",
    )
