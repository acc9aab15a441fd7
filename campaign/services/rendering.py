"""Previewing and checking a campaign's messages before launch.

:func:`check_campaign` is the gate that launch goes through: every template compiles, every contact of
the audience renders (an undefined variable for one contact is an error naming the template, line and
contact), the text part is present, links are https, images have alt text, and a message stays under the
size at which Gmail clips it. A template error is found here, never mid-send. A subject longer than inboxes
show is a warning, which does not block a launch.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from campaign.config import Settings
from campaign.exceptions import NotFoundError, TemplateError
from campaign.models import Contact, EventStatus, Wave, WaveKind
from campaign.render.calendar import CalendarMethod
from campaign.render.filters import FILTERS
from campaign.render.identifiers import message_id_for
from campaign.render.links import LinkBook, MemoryLinkBook, SignedLinkPolicy
from campaign.render.localtime import language_of, session_times
from campaign.render.mime import Sender
from campaign.render.personalise import WaveRenderer
from campaign.render.templates import TemplateSet
from campaign.rules.paths import MAX_COMPONENT_BYTES, numbered_slug, slug
from campaign.rules.wording import counted
from campaign.services.campaigns import CampaignDetails, get_campaign
from campaign.services.contacts import contact_details, find_contacts, get_list
from campaign.services.files import inside
from campaign.services.installation import installation_id
from campaign.store.engine import Database

# Gmail clips messages over 102 KB; keep a margin.
MAX_MESSAGE_BYTES = 100 * 1024
# RFC 5322's recommended line length; inboxes show 40 to 80 characters of a subject, so a longer one is cut.
MAX_SUBJECT_CHARS = 78
_HREF = re.compile(r"""<a\s[^>]*?href\s*=\s*["']([^"']*)["']""", re.I)
_IMG = re.compile(r"<img\b[^>]*>", re.I)
_ALT = re.compile(r"""\salt\s*=\s*["'][^"']*["']""", re.I)
_ERROR_EXAMPLES = 3


def template_set(settings: Settings, details: CampaignDetails) -> TemplateSet:
    """The campaign's templates: its own directory (if any) over the default one."""
    directories = [Path(details.campaign.template_dir)] if details.campaign.template_dir else []
    return TemplateSet([*directories, settings.templates_dir], FILTERS)


def wave_renderer(
    settings: Settings,
    key: bytes,
    details: CampaignDetails,
    wave: Wave,
    installation: str,
    *,
    stamp: datetime | None = None,
    book: LinkBook | None = None,
    templates: TemplateSet | None = None,
) -> WaveRenderer:
    """A renderer for one wave of a campaign, configured from settings; ``installation`` is the database's
    :func:`~campaign.services.installation.installation_id` (read once by the caller, not per message).
    ``stamp`` is the calendar's DTSTAMP: the sender's clock (the delivery worker's), else the real one.
    ``book`` stores the wave's link destinations for the click endpoint (:class:`~campaign.services.links.
    StoredLinkBook`, when sending); without one, links are numbered and stored nowhere (previews, checks).
    ``templates``: another set than the campaign's (the template editor's unsaved draft over it)."""
    # load_settings admitted only PUBLISH or REQUEST (config.CALENDAR_METHODS). A cancellation is a CANCEL shaped
    # like the invitations it cancels: after REQUESTs, per recipient with them as ATTENDEE, for the calendar
    # client holding their entry matches it by UID and attendee (RFC 5546 3.2.5); after PUBLISH, once per wave
    # without one. The MIME method= follows METHOD (render.mime).
    invitations = CalendarMethod(settings.render.calendar_method)
    method = CalendarMethod.CANCEL if wave.kind is WaveKind.CANCELLATION else invitations
    mail = settings.mail
    campaign = details.campaign
    return WaveRenderer(
        templates=templates or template_set(settings, details),
        template_name=wave.template,
        event=details.event,
        sender=Sender(
            mail.from_address, mail.from_name or None, mail.domain, mail.reply_to or None, installation=installation
        ),
        links=SignedLinkPolicy(
            settings.links.public_url,
            key,
            book or MemoryLinkBook(),
            track_clicks=campaign.track_clicks,
            track_opens=campaign.track_opens,
            wave_ref=wave.id or None,
        ),
        campaign={"id": campaign.id, "name": campaign.name, "list_name": campaign.list_name},
        wave={"id": wave.id, "name": wave.name, "kind": wave.kind.value},
        subject_override=wave.subject,
        calendar_method=method,
        calendar_per_recipient=invitations is CalendarMethod.REQUEST,
        attaches_calendar=wave.kind is not WaveKind.FOLLOW_UP,
        unsubscribe_mailto=mail.unsubscribe_mailto or None,
        default_locale=settings.render.default_locale,
        stamp=stamp,
        event_before=wave.event_before,
    )


@dataclass(frozen=True, slots=True)
class Preview:
    """Where a preview was written."""

    html_path: Path
    eml_path: Path
    subject: str
    size: int


PREVIEW_DIR = "render.preview_dir"


def preview_contact(db: Database, settings: Settings, key: bytes, campaign_ref: str, email: str) -> Preview:
    """Write one contact's invitation as HTML and .eml under the preview directory."""
    details = get_campaign(db, campaign_ref)
    found = contact_details(db, email)
    if details.campaign.list_name not in found.lists:
        # Rendering them would preview a message nobody sends.
        raise NotFoundError(
            f"{email} is not on list {details.campaign.list_name!r} of campaign {details.campaign.name!r}"
        )
    contact = found.contact
    renderer = wave_renderer(settings, key, details, details.waves[0], installation_id(db))
    rendered = renderer.render(contact)
    # As a server with 8BITMIME (nearly all) receives it; readable in a text editor too.
    message = renderer.build(
        contact, message_id_for(f"preview.{details.campaign.id}.{contact.id}", renderer.sender), eight_bit=True
    )
    # Names are the user's: slugged (the id keeps names that slug alike apart), then checked to stay inside.
    preview_dir = settings.resolve(settings.render.preview_dir)
    out = inside(preview_dir, preview_dir / numbered_slug(details.campaign.id, details.campaign.name), PREVIEW_DIR)
    out.mkdir(parents=True, exist_ok=True)
    stem = _preview_stem(contact)
    html_path = inside(preview_dir, out / f"{stem}.html", PREVIEW_DIR)
    eml_path = inside(preview_dir, out / f"{stem}.eml", PREVIEW_DIR)
    html_path.write_text(rendered.html, encoding="utf-8")
    eml_path.write_bytes(message)
    return Preview(html_path, eml_path, rendered.subject, len(message))


def _preview_stem(contact: Contact) -> str:
    """The file name (without suffix) of a contact's preview: the address where it is a safe name as it is, else
    ``<id>~<slug>``. Addresses that slug alike (``a!b@x.org``, ``a#b@x.org``) then get their own files, and the
    ``~``, which a slug never keeps, keeps that form from ever equalling an address kept as it is."""
    room = MAX_COMPONENT_BYTES - len(".html")
    made = slug(contact.email, max_bytes=room)
    if made == contact.email:
        return made
    prefix = f"{contact.id}~"
    return prefix + slug(contact.email, max_bytes=room - len(prefix))


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
    """What :func:`check_campaign` found. ``ok`` when there are no errors; warnings do not block a launch."""

    campaign: str
    contacts: int = 0
    errors: list[str] = field(default_factory=list)
    largest_message: int = 0
    warnings: list[str] = field(default_factory=list)
    untranslated: dict[tuple[str, tuple[tuple[str, int], ...]], list[str]] = field(default_factory=dict)
    """Contacts whose language has no template of its own (they get the default language), as (that language,
    the contacts by locale), with the templates concerned: made one warning each by :meth:`language_warnings`."""

    def language_warnings(self) -> None:
        """Add to :attr:`warnings` one line per group of :attr:`untranslated`, naming the templates concerned."""
        for (written, locales), templates in self.untranslated.items():
            names = ", ".join(dict.fromkeys(templates))
            count = sum(n for _, n in locales)
            languages = ", ".join(f"{locale} {n}" for locale, n in locales)
            example = f"{templates[0]}.{language_of(locales[0][0])}.html"
            self.warnings.append(
                f"{counted(count, 'contact')} get {names} in {written}, their language having no template of its own: "
                f"{languages} (a variant such as {example} writes to them in theirs)"
            )
        self.untranslated.clear()

    @property
    def ok(self) -> bool:
        """No errors: the campaign may be launched."""
        return not self.errors


def check_campaign(db: Database, settings: Settings, key: bytes, campaign_ref: str) -> CheckReport:
    """Check every wave of a campaign against its whole audience; see the module doc."""
    details = get_campaign(db, campaign_ref)
    report = CheckReport(details.campaign.name)
    if details.event.status is EventStatus.CANCELLED:
        report.errors.append(f"event {details.event.slug} is cancelled: nobody is invited to a cancelled event")
    if details.event.starts_at <= datetime.now(UTC):
        started = f"{details.event.starts_at:%Y-%m-%d %H:%M} UTC"
        report.errors.append(f"the event started at {started}: inviting to it now is useless")
    if get_list(db, details.campaign.list_name).size == 0:
        report.errors.append(f"list {details.campaign.list_name!r} has no contacts")
    for wave in details.waves:
        # The audience is streamed, once per wave: a list of a million contacts is checked in bounded memory.
        contacts = find_contacts(db, list_name=details.campaign.list_name)
        try:
            renderer = wave_renderer(settings, key, details, wave, installation_id(db))
            report.contacts = _check_wave(renderer, wave, contacts, report)
        except TemplateError as exc:
            report.errors.append(f"wave {wave.name}: {exc}")
    report.language_warnings()
    return report


def check_wave(renderer: WaveRenderer, wave: Wave, contacts: Iterable[Contact], campaign: str) -> CheckReport:
    """:func:`check_campaign`'s checks of one wave for ``contacts`` only (the template editor checks a draft
    against a sample of the audience before it is saved)."""
    report = CheckReport(campaign)
    try:
        report.contacts = _check_wave(renderer, wave, contacts, report)
    except TemplateError as exc:
        report.errors.append(f"wave {wave.name}: {exc}")
    report.language_warnings()
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
    long_subjects = _Failures()  # under one reason: how many contacts, and the first few
    longest_subject = 0
    # Per template locale: why its templates do not load, or None. A template that does not compile is one
    # error, however many contacts it would have served.
    load_errors: dict[str, str | None] = {}
    checked_groups: set[tuple[str | None, str | None]] = set()
    # Contacts whose language has no template of its own, by their locale: they get the default language.
    untranslated: Counter[str] = Counter()
    checked = 0
    for contact in contacts:
        checked += 1
        locale = renderer.template_locale(contact)
        if locale not in load_errors:
            load_errors[locale] = _load_error(renderer, locale)
        if load_errors[locale] is not None:
            continue
        if language_of(renderer.message_locale(locale)) != language_of(locale):
            untranslated[locale] += 1
        try:
            rendered = renderer.render(contact, source=True)
        except TemplateError as exc:
            # The same mistake usually hits many contacts: report it once, with a count and examples.
            failures.add(str(exc).rsplit(" (for ", 1)[0], contact.email)
            continue
        if not rendered.text.strip():
            failures.add("the text part is empty", contact.email)
        if len(rendered.subject) > MAX_SUBJECT_CHARS:
            long_subjects.add("subject", contact.email)
            longest_subject = max(longest_subject, len(rendered.subject))
        group = (contact.locale, contact.timezone)
        if group in checked_groups:
            continue
        # Links, images and size depend on the template variant and time line: one message per group.
        checked_groups.add(group)
        for problem in _html_problems(rendered.html):
            failures.add(problem, contact.email)
        size = len(renderer.build(contact, message_id_for("check", renderer.sender), date=datetime.now(UTC)))
        report.largest_message = max(report.largest_message, size)
        if size > MAX_MESSAGE_BYTES:
            failures.add(f"message is {size // 1024} KB; Gmail clips over 102 KB", contact.email)
    report.errors += [f"wave {wave.name}: {error}" for error in dict.fromkeys(load_errors.values()) if error]
    for reason, (count, examples) in failures.found.items():
        report.errors.append(f"wave {wave.name}: {reason} — {counted(count, 'contact')}: {_examples(count, examples)}")
    if untranslated:
        written = renderer.message_locale(renderer.default_locale)
        report.untranslated.setdefault((written, tuple(untranslated.most_common())), []).append(wave.template)
    for count, examples in long_subjects.found.values():
        report.warnings.append(
            f"wave {wave.name}: subject of {longest_subject} characters, above the {MAX_SUBJECT_CHARS} that inboxes "
            f"show, where they cut it — {counted(count, 'contact')}: {_examples(count, examples)}"
        )
    return checked


def _examples(count: int, examples: list[str]) -> str:
    """ "a@x, b@x and 3 more"."""
    more = f" and {count - len(examples)} more" if count > len(examples) else ""
    return ", ".join(examples) + more


def _load_error(renderer: WaveRenderer, locale: str) -> str | None:
    """Why the templates for ``locale`` do not load (as written, and as sent), or None when they do."""
    try:
        renderer.templates_for(locale, source=True)
        renderer.templates_for(locale)
    except TemplateError as exc:
        return str(exc)
    return None


def _html_problems(html: str) -> Iterator[str]:
    for url in _HREF.findall(html):
        if not url.startswith(("https://", "mailto:")):
            yield f"link {url!r} is not https"
    for tag in _IMG.findall(html):
        if not _ALT.search(tag):
            yield f"image without alt text: {tag[:80]}"
