"""Previewing and checking a campaign's messages before launch.

:func:`check_campaign` is the gate that launch goes through: every template compiles, every contact of
the audience renders (an undefined variable for one contact is an error naming the template, line and
contact), the text part is present, links are https, images have alt text, and a message stays under the
size at which Gmail clips it. A template error is found here, never mid-send.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from campaign.config import Settings
from campaign.exceptions import ConfigError, TemplateError
from campaign.models import Contact, Wave
from campaign.render.calendar import CalendarMethod
from campaign.render.links import DirectLinkPolicy
from campaign.render.localtime import session_times
from campaign.render.mime import Sender
from campaign.render.personalise import FILTERS, WaveRenderer
from campaign.render.templates import TemplateSet
from campaign.services.campaigns import CampaignDetails, get_campaign
from campaign.services.contacts import contact_details, find_contacts, get_list
from campaign.store.engine import Database

# Gmail clips messages over 102 KB; keep a margin.
MAX_MESSAGE_BYTES = 100 * 1024
_HREF = re.compile(r"""<a\s[^>]*?href\s*=\s*["']([^"']*)["']""", re.I)
_IMG = re.compile(r"<img\b[^>]*>", re.I)
_ALT = re.compile(r"""\salt\s*=\s*["'][^"']*["']""", re.I)
_ERROR_EXAMPLES = 3


def template_set(settings: Settings, details: CampaignDetails) -> TemplateSet:
    """The campaign's templates: its own directory (if any) over the default one."""
    directories = [Path(details.campaign.template_dir)] if details.campaign.template_dir else []
    return TemplateSet([*directories, settings.templates_dir], FILTERS)


def wave_renderer(settings: Settings, key: bytes, details: CampaignDetails, wave: Wave) -> WaveRenderer:
    """A renderer for one wave of a campaign, configured from settings."""
    try:
        method = CalendarMethod(settings.render.calendar_method.upper())
    except ValueError:
        raise ConfigError(
            f"render.calendar_method must be PUBLISH or REQUEST, not {settings.render.calendar_method!r}"
        ) from None
    if method is CalendarMethod.CANCEL:
        raise ConfigError("render.calendar_method must be PUBLISH or REQUEST (CANCEL is for cancellations)")
    mail = settings.mail
    campaign = details.campaign
    return WaveRenderer(
        templates=template_set(settings, details),
        template_name=wave.template,
        event=details.event,
        sender=Sender(mail.from_address, mail.from_name or None, mail.domain, mail.reply_to or None),
        links=DirectLinkPolicy(settings.links.public_url, key),
        campaign={"id": campaign.id, "name": campaign.name, "list_name": campaign.list_name},
        wave={"id": wave.id, "name": wave.name, "kind": wave.kind.value},
        calendar_base_url=settings.links.public_url,
        subject_override=wave.subject,
        calendar_method=method,
        unsubscribe_mailto=mail.unsubscribe_mailto or None,
        default_locale=settings.render.default_locale,
    )


def message_id_for(ref: str, domain: str) -> str:
    """A Message-ID under the configured domain (never the host name)."""
    return f"{ref}@{domain}"


@dataclass(frozen=True, slots=True)
class Preview:
    """Where a preview was written."""

    html_path: Path
    eml_path: Path
    subject: str
    size: int


def preview_contact(db: Database, settings: Settings, key: bytes, campaign_ref: str, email: str) -> Preview:
    """Write one contact's invitation as HTML and .eml under the preview directory."""
    details = get_campaign(db, campaign_ref)
    contact = contact_details(db, email).contact
    renderer = wave_renderer(settings, key, details, details.waves[0])
    rendered = renderer.render(contact)
    # As a server with 8BITMIME (nearly all) receives it; readable in a text editor too.
    message = renderer.build(
        contact, message_id_for(f"preview.{details.campaign.id}.{contact.id}", settings.mail.domain), eight_bit=True
    )
    out = settings.resolve(settings.render.preview_dir) / details.campaign.name
    out.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9@._-]", "_", contact.email)
    html_path, eml_path = out / f"{stem}.html", out / f"{stem}.eml"
    html_path.write_text(rendered.html, encoding="utf-8")
    eml_path.write_bytes(message)
    return Preview(html_path, eml_path, rendered.subject, len(message))


@dataclass(frozen=True, slots=True)
class ZoneLine:
    """How the session reads in one zone of the audience."""

    zone: str | None
    contacts: int
    line: str
    utc_offset_minutes: int


def preview_zones(db: Database, settings: Settings, campaign_ref: str) -> list[ZoneLine]:
    """The local-time line of each distinct zone of the audience (in the default locale), west to east."""
    details = get_campaign(db, campaign_ref)
    event = details.event
    counts = Counter(c.timezone for c in find_contacts(db, list_name=details.campaign.list_name))
    lines = []
    for zone, count in counts.items():
        times = session_times(event.starts_at, event.ends_at, zone, event.timezone, settings.render.default_locale)
        offset = times.start.utcoffset()
        minutes = int(offset.total_seconds() // 60) if offset is not None else 0
        lines.append(ZoneLine(zone, count, times.line_plain, minutes))
    return sorted(lines, key=lambda z: (z.zone is None, z.utc_offset_minutes, z.zone or ""))


@dataclass
class CheckReport:
    """What :func:`check_campaign` found. ``ok`` when there are no errors."""

    campaign: str
    contacts: int = 0
    errors: list[str] = field(default_factory=list)
    largest_message: int = 0

    @property
    def ok(self) -> bool:
        """No errors: the campaign may be launched."""
        return not self.errors


def check_campaign(db: Database, settings: Settings, key: bytes, campaign_ref: str) -> CheckReport:
    """Check every wave of a campaign against its whole audience; see the module doc."""
    details = get_campaign(db, campaign_ref)
    report = CheckReport(details.campaign.name)
    if details.event.starts_at <= datetime.now(UTC):
        started = f"{details.event.starts_at:%Y-%m-%d %H:%M} UTC"
        report.errors.append(f"the event started at {started}: inviting to it now is useless")
    if get_list(db, details.campaign.list_name).size == 0:
        report.errors.append(f"list {details.campaign.list_name!r} has no contacts")
    for wave in details.waves:
        # The audience is streamed, once per wave: a list of a million contacts is checked in bounded memory.
        contacts = find_contacts(db, list_name=details.campaign.list_name)
        try:
            renderer = wave_renderer(settings, key, details, wave)
            report.contacts = _check_wave(renderer, wave, contacts, report)
        except TemplateError as exc:
            report.errors.append(f"wave {wave.name}: {exc}")
    return report


@dataclass
class _Failures:
    """Problems by reason, each with how many contacts it hit and the first few of them."""

    found: dict[str, tuple[int, list[str]]] = field(default_factory=dict)

    def add(self, reason: str, email: str) -> None:
        count, examples = self.found.get(reason, (0, []))
        if len(examples) < _ERROR_EXAMPLES:
            examples.append(email)
        self.found[reason] = (count + 1, examples)


def _check_wave(renderer: WaveRenderer, wave: Wave, contacts: Iterable[Contact], report: CheckReport) -> int:
    """Check one wave for every contact; returns how many contacts were checked."""
    failures = _Failures()
    checked_groups: set[tuple[str | None, str | None]] = set()
    checked = 0
    for contact in contacts:
        checked += 1
        try:
            rendered = renderer.render(contact, source=True)
        except TemplateError as exc:
            # The same mistake usually hits many contacts: report it once, with a count and examples.
            failures.add(str(exc).rsplit(" (for ", 1)[0], contact.email)
            continue
        if not rendered.text.strip():
            failures.add("the text part is empty", contact.email)
        group = (contact.locale, contact.timezone)
        if group in checked_groups:
            continue
        # Links, images and size depend on the template variant and time line: one message per group.
        checked_groups.add(group)
        for problem in _html_problems(rendered.html):
            failures.add(problem, contact.email)
        size = len(renderer.build(contact, message_id_for("check", renderer.sender.domain), date=datetime.now(UTC)))
        report.largest_message = max(report.largest_message, size)
        if size > MAX_MESSAGE_BYTES:
            failures.add(f"message is {size // 1024} KB; Gmail clips over 102 KB", contact.email)
    for reason, (count, examples) in failures.found.items():
        more = f" and {count - len(examples)} more" if count > len(examples) else ""
        report.errors.append(f"wave {wave.name}: {reason} — {count} contact(s): {', '.join(examples)}{more}")
    return checked


def _html_problems(html: str) -> Iterator[str]:
    for url in _HREF.findall(html):
        if not url.startswith(("https://", "mailto:")):
            yield f"link {url!r} is not https"
    for tag in _IMG.findall(html):
        if not _ALT.search(tag):
            yield f"image without alt text: {tag[:80]}"
