"""Benchmark: building personalised invitation messages.

    python bench/render.py [--contacts N] [--naive N] [--repeat N]

Generates ``N`` fictional contacts (default 20,000) spread over ~40 real time zones and the locales en, en-GB,
es-CO, pt-PT, fr-CH, ar-EG and ja-JP, with non-ASCII names (Latin with diacritics, Arabic, Japanese) and a
custom ``job_title`` attribute, and one :class:`~campaign.render.personalise.WaveRenderer` for the sample event
``data/events/ilo-migrant-workers-2020.toml`` with the default templates ``templates/email``. Then, in each of
``--repeat`` rounds (default 5; the machines are shared and noisy, so every figure is the median of the rounds,
and the measurements are interleaved so that drift hits them alike):

* fast: :meth:`WaveRenderer.build` of every contact: complete message bytes, HTML + text + ``.ics``, as sent to
  a relay that offers 8BITMIME (nearly all do; ``bench/send.py``'s does): UTF-8 bodies unencoded;
* the same work split in two, to show where the time goes: render only (the subject, and the bodies filled
  into their stencils in wire form, Jinja running once per zone, locale and shape; see
  :mod:`campaign.render.stencil`) and MIME only (the per-message links and
  :class:`~campaign.render.mime.MessageSkeleton`);
* naive, for the first ``--naive`` contacts (default 2,000; it is about a hundred times slower): the same
  :meth:`WaveRenderer.render`, then :func:`~campaign.render.reference.reference_message`, the ordinary
  ``EmailMessage`` build of the same message.

Per-wave work (compiling and CSS-inlining the templates of each locale, the session times of each zone and
locale) is done once before the rounds and reported as setup. A sample of fast messages (every locale, the
trickiest names) is parsed with ``email.policy.default`` and must have no defects and the same headers and
parts as the naive build of the same contact.

Prints µs/message for both paths, their ratio and the fast path's components, and ends with one JSON line of
all figures. Target: the fast path at least 20 times faster than the naive one.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import gc
import json
import random
import statistics
import time
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import AddressHeader
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from people import LATIN_FIRST, LATIN_LAST, SCRIPT_NAMES

from campaign.models import Contact, Event, Speaker
from campaign.render.calendar import CalendarMethod
from campaign.render.filters import FILTERS
from campaign.render.identifiers import list_id as list_id_for
from campaign.render.identifiers import message_id_for
from campaign.render.links import SignedLinkPolicy
from campaign.render.mime import Sender
from campaign.render.personalise import WaveRenderer
from campaign.render.reference import reference_message
from campaign.render.stencil import StencilledTemplate
from campaign.render.templates import TemplateSet
from campaign.services.events import read_event_file

ROOT = Path(__file__).resolve().parent.parent
EVENT_FILE = ROOT / "data" / "events" / "ilo-migrant-workers-2020.toml"
TEMPLATES = ROOT / "templates" / "email"
TEMPLATE_NAME = "invitation"
TARGET_RATIO = 20.0
SEED = 20200626
CHUNK = 500  # rendered messages held at once by the component measurement

LOCALES = ["en", "en-GB", "es-CO", "pt-PT", "fr-CH", "ar-EG", "ja-JP"]
LOCALE_WEIGHTS = [20, 12, 18, 8, 8, 14, 10]
CANDIDATE_ZONES = [
    "Pacific/Honolulu", "America/Los_Angeles", "America/Denver", "America/Chicago", "America/Mexico_City",
    "America/Bogota", "America/Lima", "America/New_York", "America/Santiago", "America/Sao_Paulo",
    "America/St_Johns", "Europe/Lisbon", "Europe/London", "Europe/Madrid", "Europe/Paris", "Europe/Zurich",
    "Europe/Berlin", "Europe/Rome", "Europe/Athens", "Europe/Kyiv", "Europe/Istanbul", "Europe/Moscow",
    "Africa/Casablanca", "Africa/Lagos", "Africa/Cairo", "Africa/Nairobi", "Africa/Johannesburg", "Asia/Dubai",
    "Asia/Tehran", "Asia/Karachi", "Asia/Kolkata", "Asia/Kathmandu", "Asia/Bangkok", "Asia/Jakarta",
    "Asia/Manila", "Asia/Singapore", "Asia/Shanghai", "Asia/Tokyo", "Australia/Sydney", "Pacific/Auckland",
]  # fmt: skip
TRICKY_NAMES = ['Dr. "Bob" Jones', "Smith, Jr., Ana", "Renée <Ops> Müller", "José\r\nBcc: evil@example.org"]
JOB_TITLES = [
    "Labour Migration Officer", "Directora de Programas", "Técnica de Integração", "Chargée de mission",
    "مدير برامج الهجرة", "人事部長", "Policy Analyst", "Union Representative", "Researcher", "",
]  # fmt: skip
ORGANISATIONS = ["Ministry of Labour", "ANDI", "Trades Union Congress", "Université de Genève", "IDWF", None]
DOMAINS = ["example.org", "example.com", "mail.example.org", "correo.example.co"]


def realistic_zones() -> list[str]:
    """The candidate zones that this Python's tz database knows (all of them on any current system)."""
    available = zoneinfo.available_timezones()
    zones = [z for z in CANDIDATE_ZONES if z in available]
    assert len(zones) >= 30, f"only {len(zones)} of the benchmark's zones are in the tz database"
    return zones


def make_contacts(count: int, seed: int = SEED) -> list[Contact]:
    """``count`` fictional contacts; a pure function of ``count`` and ``seed``."""
    rng = random.Random(seed)
    zones = realistic_zones()
    contacts = []
    for i in range(count):
        locale = rng.choices(LOCALES, LOCALE_WEIGHTS)[0]
        firsts, lasts = SCRIPT_NAMES.get(locale[:2], (LATIN_FIRST, LATIN_LAST))
        if rng.random() < 0.2:
            firsts, lasts = LATIN_FIRST, LATIN_LAST
        first, last = rng.choice(firsts), rng.choice(lasts)
        full = f"{last} {first}" if locale.startswith("ja") else f"{first} {last}"
        roll = rng.random()
        name: str | None = full if roll < 0.6 else None  # else the display name comes from first and last name
        if roll >= 0.9:
            first, last = "", ""  # no name at all: "Dear ..." is left out
        if i % 997 == 0:
            name = TRICKY_NAMES[(i // 997) % len(TRICKY_NAMES)]
        contacts.append(
            Contact(
                id=i + 1,
                email=f"c{i}.{rng.randrange(10**6):06d}@{DOMAINS[i % len(DOMAINS)]}",
                name=name,
                first_name=first or None,
                last_name=last or None,
                timezone=rng.choice(zones) if rng.random() >= 0.04 else None,  # a few without zone: fallback line
                country=locale.partition("-")[2] or None,
                locale=locale,
                organisation=rng.choice(ORGANISATIONS),
                attributes={"job_title": rng.choice(JOB_TITLES)},
            )
        )
    return contacts


@dataclass(frozen=True, slots=True)
class Wave:
    """The renderer of the benchmark's wave and what the naive build needs to make the same message."""

    renderer: WaveRenderer
    policy: SignedLinkPolicy
    list_id: str
    campaign_id: str
    calendar: bytes

    def message_id(self, ref: int) -> str:
        return message_id_for(f"bench.{ref}", self.renderer.sender)

    def naive(self, contact: Contact, ref: int) -> tuple[bytes, float]:
        """The naive build of ``contact``'s message, and the seconds spent in the ``EmailMessage`` part."""
        rendered = self.renderer.render(contact, ref)
        started = time.perf_counter()
        data = reference_message(
            sender=self.renderer.sender,
            list_id=self.list_id,
            campaign_id=self.campaign_id,
            message_id=self.message_id(ref),
            to_address=contact.email,
            # EmailMessage refuses CR/LF in a name (ValueError); any caller has to clean names first.
            to_name=" ".join((contact.display_name or "").split()) or None,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            unsubscribe_url=self.policy.for_message(ref).unsubscribe_url,
            unsubscribe_mailto=self.renderer.unsubscribe_mailto,
            date=datetime.now(UTC),
            calendar=self.calendar,
            calendar_method=self.renderer.calendar_method.value,
        )
        return data, time.perf_counter() - started


def make_wave() -> Wave:
    """The wave: sample event, default templates, METHOD:PUBLISH (one .ics for everyone), direct links."""
    values = read_event_file(EVENT_FILE)
    values["speakers"] = tuple(s if isinstance(s, Speaker) else Speaker(**s) for s in values["speakers"])
    event = Event(id=1, **values)
    sender = Sender("invitations@ilo.example.org", "ILO Events", "ilo.example.org", installation="b3nchmark7777777")
    policy = SignedLinkPolicy("https://campaign.example.org", b"k" * 32)
    campaign = {"id": 1, "name": "ILO webinar", "list_name": "bench"}
    wave = {"id": 1, "name": "invitation", "kind": "invitation"}
    renderer = WaveRenderer(
        templates=TemplateSet([TEMPLATES], FILTERS),
        template_name=TEMPLATE_NAME,
        event=event,
        sender=sender,
        links=policy,
        campaign=campaign,
        wave=wave,
        calendar_method=CalendarMethod.PUBLISH,
        unsubscribe_mailto="unsubscribe@ilo.example.org",
    )
    # The same values WaveRenderer gives its MessageSkeleton.
    list_id = list_id_for(campaign, sender)
    campaign_id = f"{campaign['id']}/{wave['name']}"
    return Wave(renderer, policy, list_id, campaign_id, renderer.calendar_bytes())


def warm_up(wave: Wave, contacts: Sequence[Contact]) -> int:
    """The once-per-wave work: templates of each locale, session times of each (zone, locale); returns how many
    distinct (zone, locale) pairs there are."""
    seen: dict[tuple[str | None, str | None], Contact] = {}
    for contact in contacts:
        seen.setdefault((contact.timezone, contact.locale), contact)
    for contact in seen.values():
        wave.renderer.render(contact, contact.id)
    return len(seen)


# --- the measurements --------------------------------------------------------------------------------------


def time_fast(wave: Wave, contacts: Sequence[Contact], sizes: list[int] | None = None) -> float:
    """Seconds to build every contact's message with :meth:`WaveRenderer.build`."""
    build, message_id = wave.renderer.build, wave.message_id
    gc.collect()
    started = time.perf_counter()
    if sizes is None:
        for contact in contacts:
            build(contact, message_id(contact.id), contact.id, eight_bit=True)
    else:
        for contact in contacts:
            sizes.append(len(build(contact, message_id(contact.id), contact.id, eight_bit=True)))
    return time.perf_counter() - started


def time_components(wave: Wave, contacts: Sequence[Contact]) -> tuple[float, float]:
    """(render seconds, MIME seconds) for every contact: :meth:`WaveRenderer.build` cut in its two halves.

    Render is the subject and the bodies as ``build`` renders them (in wire form, from stencils); MIME is what
    ``build`` does after that: the message's links (signed unsubscribe URL) and :meth:`MessageSkeleton.build`
    of the wave's skeleton. Done in chunks so rendered messages never pile up.
    """
    renderer, policy, message_id = wave.renderer, wave.policy, wave.message_id
    skeleton = renderer._skeleton  # the very skeleton build() uses
    render_seconds = mime_seconds = 0.0
    gc.collect()
    for start in range(0, len(contacts), CHUNK):
        chunk = contacts[start : start + CHUNK]
        t0 = time.perf_counter()
        rendered = [renderer._render(contact, contact.id, StencilledTemplate.render_wire) for contact in chunk]
        t1 = time.perf_counter()
        for contact, (subject, html, text, _names, _url) in zip(chunk, rendered, strict=True):
            skeleton.build(
                message_id=message_id(contact.id),
                to_address=contact.email,
                to_name=contact.display_name,
                subject=subject,
                text=text,
                html=html,
                unsubscribe_url=policy.for_message(contact.id).unsubscribe_url,
                date=datetime.now(UTC),
                eight_bit=True,
            )
        t2 = time.perf_counter()
        render_seconds += t1 - t0
        mime_seconds += t2 - t1
    return render_seconds, mime_seconds


def time_naive(wave: Wave, contacts: Sequence[Contact]) -> tuple[float, float]:
    """(total seconds, seconds in the EmailMessage build) for render + :func:`reference_message`."""
    mime_seconds = 0.0
    gc.collect()
    started = time.perf_counter()
    for contact in contacts:
        mime_seconds += wave.naive(contact, contact.id)[1]
    return time.perf_counter() - started, mime_seconds


# --- the sanity check --------------------------------------------------------------------------------------


def _parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _leaves(message: EmailMessage) -> list[EmailMessage]:
    return [part for part in message.walk() if not part.is_multipart()]


def _defects(message: EmailMessage) -> list[str]:
    return [f"{part.get_content_type()}: {defect!r}" for part in message.walk() for defect in part.defects]


def _content(part: EmailMessage) -> Any:
    content = part.get_content()
    return content.replace("\r\n", "\n").rstrip("\n") if isinstance(content, str) else content


def check_messages(wave: Wave, contacts: Sequence[Contact]) -> int:
    """Parse fast messages of a sample (each locale, tricky names, no zone); compare with the naive build.

    Raises AssertionError on any defect or difference; returns how many messages were checked.
    """
    sample: dict[str, Contact] = {}
    for contact in contacts:
        if contact.name in TRICKY_NAMES or contact.timezone is None or contact.display_name is None:
            sample.setdefault(f"{contact.name}|{contact.timezone is None}|{contact.display_name is None}", contact)
        sample.setdefault(str(contact.locale), contact)
    expected_types = ["text/plain", "text/html", "text/calendar", "application/ics"]
    for contact in sample.values():
        fast = _parse(wave.renderer.build(contact, wave.message_id(contact.id), contact.id, eight_bit=True))
        naive = _parse(wave.naive(contact, contact.id)[0])
        who = f"{contact.email} ({contact.locale}, {contact.timezone}, {contact.name!r})"
        assert not _defects(fast), f"fast message for {who} has defects: {_defects(fast)}"
        assert not _defects(naive), f"naive message for {who} has defects: {_defects(naive)}"
        assert fast.get_content_type() == "multipart/mixed", who
        fast_leaves, naive_leaves = _leaves(fast), _leaves(naive)
        assert [p.get_content_type() for p in fast_leaves] == expected_types, who
        assert [p.get_content_type() for p in naive_leaves] == expected_types, who
        for header in ("From", "To", "Subject", "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post", "Message-ID"):
            # Folding whitespace is not content: EmailMessage folds a long List-Unsubscribe right after the colon.
            fast_value, naive_value = " ".join(str(fast[header]).split()), " ".join(str(naive[header]).split())
            assert fast_value == naive_value, f"{header} differs for {who}: {fast_value!r} != {naive_value!r}"
        for fast_part, naive_part in zip(fast_leaves, naive_leaves, strict=True):
            kind = fast_part.get_content_type()
            assert _content(fast_part) == _content(naive_part), f"{kind} differs for {who}"
            assert fast_part.get_param("method") == naive_part.get_param("method"), f"{kind} method for {who}"
        to_header = fast["To"]
        assert isinstance(to_header, AddressHeader), who
        (to,) = to_header.addresses
        shown = " ".join((contact.display_name or "").split())  # CR/LF and runs of spaces become one space
        assert (to.display_name, to.addr_spec) == (shown, contact.email), f"To is {to!r} for {who}"
    return len(sample)


# --- the report --------------------------------------------------------------------------------------------


def us(seconds: float, count: int) -> float:
    return seconds / count * 1e6


def spread(values: Sequence[float]) -> str:
    return f"median of {len(values)}; min {min(values):,.1f}, max {max(values):,.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=20_000, help="contacts to build (default 20,000)")
    parser.add_argument("--naive", type=int, default=2_000, help="of them, built the naive way (default 2,000)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds of each measurement (default 5)")
    args = parser.parse_args()
    if args.contacts < 1 or args.naive < 1 or args.repeat < 1:
        parser.error("--contacts, --naive and --repeat must be at least 1")
    naive_count = min(args.naive, args.contacts)

    started = time.perf_counter()
    contacts = make_contacts(args.contacts)
    generated_s = time.perf_counter() - started
    zones = len({c.timezone for c in contacts})
    print(
        f"generated {len(contacts):,} contacts ({zones} zones incl. none, {len({c.locale for c in contacts})} "
        f"locales) in {generated_s:.2f} s",
        flush=True,
    )
    started = time.perf_counter()
    wave = make_wave()
    pairs = warm_up(wave, contacts)
    setup_s = time.perf_counter() - started
    print(f"wave setup (templates of each locale, {pairs} zone/locale pairs): {setup_s:.2f} s", flush=True)
    checked = check_messages(wave, contacts)
    print(f"sanity: {checked} fast messages parse without defects and match the naive build", flush=True)

    sizes: list[int] = []
    fast, render, mime, naive, naive_mime = [], [], [], [], []
    naive_contacts = contacts[:naive_count]
    for round_ in range(1, args.repeat + 1):
        fast.append(us(time_fast(wave, contacts, sizes if round_ == 1 else None), len(contacts)))
        render_s, mime_s = time_components(wave, contacts)
        render.append(us(render_s, len(contacts)))
        mime.append(us(mime_s, len(contacts)))
        naive_s, naive_mime_s = time_naive(wave, naive_contacts)
        naive.append(us(naive_s, naive_count))
        naive_mime.append(us(naive_mime_s, naive_count))
        print(
            f"round {round_}/{args.repeat}: fast {fast[-1]:,.1f} µs (render {render[-1]:,.1f} + mime "
            f"{mime[-1]:,.1f})  naive {naive[-1]:,.1f} µs (EmailMessage {naive_mime[-1]:,.1f})  "
            f"ratio {naive[-1] / fast[-1]:.1f}x",
            flush=True,
        )

    fast_us, naive_us = statistics.median(fast), statistics.median(naive)
    render_us, mime_us, naive_mime_us = (
        statistics.median(render),
        statistics.median(mime),
        statistics.median(naive_mime),
    )
    ratio = naive_us / fast_us
    round_ratios = [n / f for n, f in zip(naive, fast, strict=True)]
    message_bytes = statistics.median(sizes)
    print(f"fast:   {fast_us:>9,.1f} µs/message  WaveRenderer.build, {len(contacts):,} contacts ({spread(fast)})")
    print(f"  render {render_us:>7,.1f} µs/message  subject and bodies from stencils, in wire form ({spread(render)})")
    print(f"  mime   {mime_us:>7,.1f} µs/message  links + MessageSkeleton.build ({spread(mime)})")
    print(
        f"naive:  {naive_us:>9,.1f} µs/message  render + reference_message (EmailMessage), {naive_count:,} contacts "
        f"({spread(naive)}); of which EmailMessage {naive_mime_us:,.1f}"
    )
    print(
        f"ratio:  {ratio:>9.1f}x  naive / fast (target >= {TARGET_RATIO:.0f}x; per round {min(round_ratios):.1f}x to "
        f"{max(round_ratios):.1f}x); MIME alone {naive_mime_us / mime_us:.0f}x"
    )
    print(
        f"size:   {message_bytes:,.0f} bytes median ({min(sizes):,} to {max(sizes):,}); "
        f"{1e6 / fast_us:,.0f} messages/s on one core"
    )
    figures = {
        "contacts": len(contacts),
        "naive_contacts": naive_count,
        "repeat": args.repeat,
        "fast_us": round(fast_us, 1),
        "naive_us": round(naive_us, 1),
        "ratio": round(ratio, 2),
        "render_us": round(render_us, 1),
        "mime_us": round(mime_us, 1),
        "naive_mime_us": round(naive_mime_us, 1),
        "ratio_min": round(min(round_ratios), 2),
        "ratio_max": round(max(round_ratios), 2),
        "messages_per_s": round(1e6 / fast_us),
        "message_bytes_median": message_bytes,
        "setup_s": round(setup_s, 2),
        "zone_locale_pairs": pairs,
        "checked_messages": checked,
        "target_ratio": TARGET_RATIO,
        "target_met": ratio >= TARGET_RATIO,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
