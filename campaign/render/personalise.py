"""Personalised messages for the recipients of one wave.

Contract: a :class:`WaveRenderer` is built once per wave from the event, the templates and the sending
settings. It computes everything that is the same for every recipient once (the event's template values,
the calendar links and bytes, the MIME skeleton, the compiled and CSS-inlined templates per locale) and then
:meth:`WaveRenderer.render` and :meth:`WaveRenderer.build` do only the personal work per recipient.

Template variables: ``contact`` (the contact's fields and custom attributes), ``event`` (title, description,
``paragraphs``, speakers, organiser, URLs), ``when`` (the session in the recipient's zone, in the message's
language: ``line``, ``zone_name``, ``when``, ``start``, ``end``; ``is_fallback`` when the contact has no zone),
``organiser_when`` (the same in the organiser's zone), ``links`` (register, join, calendar_google,
calendar_outlook, calendar_ics, unsubscribe), ``link(url, name)`` for any other link, ``pixel_url``,
``campaign``, ``wave``, ``locale`` (the message's language, see :meth:`WaveRenderer.message_locale`),
``preheader`` may be set by the template. Filters ``local_datetime``, ``local_date``, ``local_time`` and
``zone_name`` format any instant in the recipient's zone and the message's language; ``shorten`` cuts a title
for a subject line.
"""

from __future__ import annotations

import re
import textwrap
import traceback
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime, format_skeleton, format_time
from jinja2 import TemplateNotFound, TemplateSyntaxError, UndefinedError, pass_context
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context

from campaign.exceptions import TemplateError
from campaign.models import Contact, Event
from campaign.render.calendar import CalendarMethod, build_ics
from campaign.render.links import LinkPolicy, MessageLinks
from campaign.render.localtime import SessionTimes, locale_of, plain, session_times, zone_name
from campaign.render.mime import MessageSkeleton, Sender, WireText
from campaign.render.stencil import StencilledTemplate
from campaign.render.templates import (
    MessageTemplates,
    TemplateSet,
    not_found_message,
    syntax_error_message,
    variant_locale,
)

_Body = TypeVar("_Body", str, str | WireText)


@dataclass(frozen=True, slots=True)
class Viewer:
    """Whose zone and locale a template formats times for."""

    zone: str
    locale: str | None


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """The personalised parts of one message."""

    subject: str
    html: str
    text: str
    template_names: Mapping[str, str]
    unsubscribe_url: str


def _viewer(ctx: Context) -> Viewer:
    viewer = ctx.get("viewer")
    assert isinstance(viewer, Viewer)
    return viewer


@pass_context
def _local_datetime(ctx: Context, value: datetime, fmt: str = "full") -> str:
    v = _viewer(ctx)
    return str(format_datetime(value, fmt, tzinfo=ZoneInfo(v.zone), locale=locale_of(v.locale)))


@pass_context
def _local_date(ctx: Context, value: datetime, fmt: str = "full") -> str:
    v = _viewer(ctx)
    loc = locale_of(v.locale)
    if fmt in loc.datetime_skeletons:
        # A CLDR skeleton ("MMMd", "MMMEd") asks for fields, which each locale orders and spells its own way:
        # "Jun 26" in English, "26 jun" in Spanish. Short enough for a subject line.
        return str(format_skeleton(fmt, value, tzinfo=ZoneInfo(v.zone), locale=loc))
    return str(format_date(value.astimezone(ZoneInfo(v.zone)), fmt, locale=loc))


@pass_context
def _local_time(ctx: Context, value: datetime, fmt: str = "short") -> str:
    v = _viewer(ctx)
    return str(format_time(value, fmt, tzinfo=ZoneInfo(v.zone), locale=locale_of(v.locale)))


@pass_context
def _zone_name(ctx: Context, value: datetime) -> str:
    v = _viewer(ctx)
    return zone_name(value, v.zone, v.locale)


def shorten(text: str, width: int = 50) -> str:
    """``text`` in at most ``width`` characters: cut after a whole word, trailing punctuation dropped, "…" added.

    For subject lines, which inboxes cut at 40 to 80 characters: a long title keeps its first words whole.
    """
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    head = text[: width - 1]
    if text[width - 1].isalnum() and " " in head:
        head = head.rsplit(" ", 1)[0]  # the cut fell inside a word: drop its start
    return head.rstrip(" ,;:.!?-–—") + "…"


FILTERS: dict[str, Callable[..., Any]] = {
    "local_datetime": _local_datetime,
    "local_date": _local_date,
    "local_time": _local_time,
    "zone_name": _zone_name,
    "plain": plain,
    "shorten": shorten,
}


def _wrapped(paragraph: str) -> str:
    """A paragraph in lines of at most 76 characters (a word longer stays whole), its own line breaks kept.

    Plain text mail reads best so; in HTML a line break is a space. And a long paragraph then never pushes a
    line past SMTP's 998 octets, which would cost the whole body base64 (see
    :func:`campaign.render.mime.encode_body`; a single word that long still does).
    """
    return "\n".join(
        textwrap.fill(line, 76, break_long_words=False, break_on_hyphens=False) for line in paragraph.split("\n")
    )


def event_values(event: Event) -> dict[str, Any]:
    """The event as templates see it (computed once per wave)."""
    return {
        "id": event.id,
        "slug": event.slug,
        "title": event.title,
        "description": event.description,
        "paragraphs": [_wrapped(p) for p in event.description.split("\n\n") if p],
        "speakers": [{"name": s.name, "role": s.role} for s in event.speakers],
        "organiser_name": event.organiser_name,
        "organiser_email": event.organiser_email,
        "registration_url": event.registration_url,
        "join_url": event.join_url,
        "timezone": event.timezone,
        "language": event.language,
        "starts_at": event.starts_at,
        "ends_at": event.ends_at,
    }


def calendar_links(event: Event) -> dict[str, str]:
    """Add-to-calendar links for Google Calendar and Outlook.com (the same for every recipient)."""
    details = "\n".join(
        filter(
            None,
            (
                event.join_url and f"Join: {event.join_url}",
                event.registration_url and f"Register: {event.registration_url}",
            ),
        )
    )
    google = urlencode(
        {
            "action": "TEMPLATE",
            "text": event.title,
            "dates": f"{event.starts_at:%Y%m%dT%H%M%SZ}/{event.ends_at:%Y%m%dT%H%M%SZ}",
            "details": details,
            "location": event.join_url or "",
            "ctz": event.timezone,
        }
    )
    outlook = urlencode(
        {
            "path": "/calendar/action/compose",
            "rru": "addevent",
            "subject": event.title,
            "startdt": f"{event.starts_at:%Y-%m-%dT%H:%M:%SZ}",
            "enddt": f"{event.ends_at:%Y-%m-%dT%H:%M:%SZ}",
            "body": details,
            "location": event.join_url or "",
        }
    )
    return {
        "calendar_google": f"https://calendar.google.com/calendar/render?{google}",
        "calendar_outlook": f"https://outlook.live.com/calendar/0/deeplink/compose?{outlook}",
    }


@cache
def times_values(times: SessionTimes) -> dict[str, Any]:
    """A session's times as templates see them (one dict per zone and locale, shared by its recipients)."""
    return {
        "zone": times.zone,
        "zone_name": times.zone_name,
        "start": times.start,
        "end": times.end,
        "when": times.when,
        "line": times.line,
        "line_plain": times.line_plain,
        "is_fallback": times.is_fallback,
    }


def contact_values(contact: Contact) -> dict[str, Any]:
    """The contact as templates see it: custom attributes first, so a field always wins over an attribute."""
    values: dict[str, Any] = dict(contact.attributes)
    values.update(
        email=contact.email,
        name=contact.name,
        display_name=contact.display_name,
        first_name=contact.first_name,
        last_name=contact.last_name,
        organisation=contact.organisation,
        country=contact.country,
        locale=contact.locale,
        timezone=contact.timezone,
    )
    return values


def list_id(campaign: Mapping[str, Any], sender: Sender) -> str:
    """The campaign's ``List-Id`` (RFC 2919), ``Name <campaign-1.<installation>.<domain>>``: unique across
    installations, and the part in brackets a dot-atom (the installation id is lower-case letters and digits)."""
    return f"{campaign['name']} <campaign-{campaign['id']}.{sender.installation}.{sender.domain}>"


@dataclass
class WaveRenderer:
    """Renders and builds the messages of one wave; see the module doc."""

    templates: TemplateSet
    template_name: str
    event: Event
    sender: Sender
    links: LinkPolicy
    campaign: Mapping[str, Any]
    wave: Mapping[str, Any]
    calendar_base_url: str
    subject_override: str | None = None
    calendar_method: CalendarMethod = CalendarMethod.PUBLISH
    unsubscribe_mailto: str | None = None
    default_locale: str = "en"
    stamp: datetime | None = None
    _event: dict[str, Any] = field(init=False, repr=False)
    _calendar_links: dict[str, str] = field(init=False, repr=False)
    _skeleton: MessageSkeleton = field(init=False, repr=False)
    _by_locale: dict[tuple[str | None, bool], MessageTemplates] = field(init=False, repr=False, default_factory=dict)
    # The language of the message each contact locale gets (see message_locale), decided once per locale.
    _message_locales: dict[str, str] = field(init=False, repr=False, default_factory=dict)
    _subject: Any = field(init=False, repr=False, default=None)
    _subject_personal: bool = field(init=False, repr=False, default=True)
    # Subjects that name nothing personal are the same for everyone of a zone and locale: rendered once.
    _subjects: dict[tuple[str, str, bool], str] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.stamp = self.stamp or datetime.now(ZoneInfo("UTC"))
        self._event = event_values(self.event)
        self._calendar_links = calendar_links(self.event)
        self._calendar_links["calendar_ics"] = f"{self.calendar_base_url.rstrip('/')}/events/{self.event.slug}.ics"
        publish = self.calendar_method is not CalendarMethod.REQUEST
        self._skeleton = MessageSkeleton(
            sender=self.sender,
            list_id=list_id(self.campaign, self.sender),
            campaign_id=f"{self.campaign['id']}/{self.wave['name']}",
            unsubscribe_mailto=self.unsubscribe_mailto,
            calendar=self.calendar_bytes() if publish else None,
            calendar_method=self.calendar_method.value,
        )
        if self.subject_override:
            self._subject = self.templates.string(self.subject_override)
            self._subject_personal = self.templates.is_personal(self.subject_override)

    def calendar_bytes(self, attendee: tuple[str, str | None] | None = None) -> bytes:
        """The .ics for this wave (with ``attendee`` for METHOD:REQUEST)."""
        assert self.stamp is not None
        return build_ics(
            self.event,
            domain=self.sender.domain,
            installation=self.sender.installation,
            method=self.calendar_method,
            stamp=self.stamp,
            attendee=attendee,
        )

    def templates_for(self, locale: str | None, *, source: bool = False) -> MessageTemplates:
        """The compiled templates for a locale (cached; ``source`` for the uninlined ones used by checks)."""
        key = (locale, source)
        found = self._by_locale.get(key)
        if found is None:
            found = (self.templates.source if source else self.templates.mail)(self.template_name, locale)
            self._by_locale[key] = found
        return found

    def message_locale(self, locale: str) -> str:
        """The locale one message is written and dated in, for a contact whose locale is ``locale``.

        It is the language of the HTML template the contact gets (``es`` for ``invitation.es.html``; the default
        locale for ``invitation.html``), so that the date line speaks the body's language: a ``fil-PH`` contact
        without a Filipino template reads English throughout. Where the languages agree, the contact's own
        regional form is kept (``es-CO`` its 12-hour clock, ``en-GB`` its day-month dates). The zone is always
        the contact's. Decided once per contact locale.
        """
        found = self._message_locales.get(locale)
        if found is None:
            file_name = self.templates.resolve(self.template_name, "html", locale)
            written = variant_locale(self.template_name, "html", file_name) or self.default_locale
            found = locale if _language(locale) == _language(written) else written
            self._message_locales[locale] = found
        return found

    def template_locale(self, contact: Contact) -> str:
        """The locale whose templates serve ``contact`` (see :meth:`templates_for`): theirs, or the default."""
        return contact.locale or self.default_locale

    def context(self, contact: Contact, links: MessageLinks) -> dict[str, Any]:
        """The template variables for one recipient."""
        locale = self.message_locale(self.template_locale(contact))
        when = session_times(self.event.starts_at, self.event.ends_at, contact.timezone, self.event.timezone, locale)
        organiser_when = session_times(
            self.event.starts_at, self.event.ends_at, self.event.timezone, self.event.timezone, locale
        )
        link_values = {name: links.link(url, name) for name, url in self._calendar_links.items()}
        if self.event.registration_url:
            link_values["register"] = links.link(self.event.registration_url, "register")
        if self.event.join_url:
            link_values["join"] = links.link(self.event.join_url, "join")
        link_values["unsubscribe"] = links.unsubscribe_url
        return {
            "contact": contact_values(contact),
            "event": self._event,
            "when": times_values(when),
            "organiser_when": times_values(organiser_when),
            "links": link_values,
            "link": links.link,
            "pixel_url": links.open_pixel_url,
            "campaign": self.campaign,
            "wave": self.wave,
            "locale": locale,
            "viewer": Viewer(when.zone, locale),
        }

    def render(self, contact: Contact, message_ref: int = 0, *, source: bool = False) -> RenderedMessage:
        """Subject, HTML and text for one recipient; raises :class:`TemplateError` naming template and line."""
        return RenderedMessage(*self._render(contact, message_ref, StencilledTemplate.render, source=source))

    def _render(
        self,
        contact: Contact,
        message_ref: int,
        body: Callable[[StencilledTemplate, Mapping[str, Any], Hashable], _Body],
        *,
        source: bool = False,
    ) -> tuple[str, _Body, _Body, Mapping[str, str], str]:
        """(subject, HTML, text, template names, unsubscribe URL), the bodies as ``body`` renders them."""
        locale = self.template_locale(contact)
        templates = self.templates_for(locale, source=source)
        links = self.links.for_message(message_ref)
        ctx = self.context(contact, links)
        # What decides everything in a message that is not personal (see campaign.render.stencil). A contact
        # without a zone shares the organiser's zone but sees another line (with UTC).
        shape = (locale, ctx["viewer"].zone, ctx["when"]["is_fallback"])
        try:
            subject = self._subject_for(templates, ctx, shape)
            html = body(templates.stencilled_html, ctx, shape)
            text = body(templates.stencilled_text, ctx, shape)
            return subject, html, text, templates.names, links.unsubscribe_url
        except TemplateError:
            raise
        except Exception as exc:
            if not source:
                # The templates sent are flattened and CSS-inlined, so their line numbers are not the author's:
                # the same render from the templates as written raises the error with the line the author sees
                # (rare, so its cost does not matter).
                self._render(contact, message_ref, body, source=True)
            raise TemplateError(
                f"{describe_render_error(exc, self.templates.directories)} (for {contact.email})"
            ) from exc

    def _subject_for(self, templates: MessageTemplates, ctx: dict[str, Any], shape: tuple[str, str, bool]) -> str:
        template, personal = (
            (self._subject, self._subject_personal)
            if self._subject
            else (templates.subject, templates.subject_personal)
        )
        if personal:
            return " ".join(template.render(ctx).split())
        subject = self._subjects.get(shape)
        if subject is None:
            subject = self._subjects[shape] = " ".join(template.render(ctx).split())
        return subject

    def build(
        self,
        contact: Contact,
        message_id: str,
        message_ref: int = 0,
        *,
        date: datetime | None = None,
        subject_prefix: str = "",
        eight_bit: bool = False,
    ) -> bytes:
        """The complete message bytes for one recipient (``eight_bit``: for a server with 8BITMIME)."""
        # The bodies come in wire form where a stencil made them: encoded once per stencil, not per message.
        subject, html, text, _names, unsubscribe_url = self._render(
            contact, message_ref, StencilledTemplate.render_wire
        )
        calendar = None
        if self.calendar_method is CalendarMethod.REQUEST:
            calendar = self.calendar_bytes((contact.email, contact.display_name))
        return self._skeleton.build(
            message_id=message_id,
            to_address=contact.email,
            to_name=contact.display_name,
            subject=subject_prefix + subject,
            text=text,
            html=html,
            unsubscribe_url=unsubscribe_url,
            date=date or datetime.now(ZoneInfo("UTC")),
            calendar=calendar,
            eight_bit=eight_bit,
        )


def _language(tag: str) -> str:
    """The language of a BCP 47 tag: ``es`` for ``es-CO``."""
    return tag.split("-", 1)[0].lower()


def describe_render_error(exc: Exception, directories: Sequence[Path]) -> str:
    """ "invitation.html, line 12: undefined variable contact.job_title" from a Jinja runtime error.

    Jinja puts template frames (file name and template line) into the traceback; the innermost one is where
    the template failed. Jinja's own words ("'dict object' has no attribute 'job_title'") are replaced by the
    variable as the template wrote it, found on that line; a refused include by the rule that refused it.
    """
    roots = [str(d) for d in directories]
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename and any(frame.filename.startswith(root) for root in roots):
            return f"{Path(frame.filename).name}, line {frame.lineno}: {_explain(exc, frame.line or '', directories)}"
    return _explain(exc, "", directories)


_UNDEFINED = re.compile(r"'(?P<name>[^']*)' is undefined\Z")
_NO_ATTRIBUTE = re.compile(r"'(?P<owner>[^']*)' has no attribute '(?P<name>[^']*)'\Z")
# A variable as written: ``contact.job_title``, ``contact['job title']``.
_PATH = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[\s*['\"][^'\"]*['\"]\s*\])*?"
_SUBSCRIPT = re.compile(r"\[\s*['\"]([^'\"]*)['\"]\s*\]")


def _explain(exc: Exception, line: str, directories: Sequence[Path]) -> str:
    """What went wrong, in the template author's terms (``line``: the template line it went wrong on)."""
    if isinstance(exc, TemplateNotFound):
        return not_found_message(str(exc.name), directories)
    if isinstance(exc, SecurityError):
        return f"refused by the template sandbox: {exc}"
    if isinstance(exc, TemplateSyntaxError):  # an included template that does not compile
        return syntax_error_message(exc, exc.name or "")
    if not isinstance(exc, UndefinedError):
        return str(exc)
    message = str(exc)
    if found := _UNDEFINED.match(message):
        return f"undefined variable {found['name']}"
    found = _NO_ATTRIBUTE.match(message)
    if found is None:
        return message
    name = re.escape(found["name"])
    written = re.search(rf"({_PATH})(?:\.{name}\b|\[\s*['\"]{name}['\"]\s*\])", line)
    path = _SUBSCRIPT.sub(r".\1", written[1]) + "." + found["name"] if written else found["name"]
    # A missing key of a dict (contact, event...) is an undefined variable; anything else keeps Jinja's words.
    return f"undefined variable {path}" + ("" if found["owner"] == "dict object" else f" ({message})")
