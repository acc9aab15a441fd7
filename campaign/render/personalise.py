"""Personalised messages for the recipients of one wave.

Contract: a :class:`WaveRenderer` is built once per wave from the event, the templates and the sending
settings. It computes everything that is the same for every recipient once (the event's template values,
the calendar links and bytes, the MIME skeleton, the compiled and CSS-inlined templates per locale) and then
:meth:`WaveRenderer.render` and :meth:`WaveRenderer.build` do only the personal work per recipient.

A message is written in the language of the template variant its contact gets
(:meth:`WaveRenderer.message_locale`). What its templates see is :mod:`campaign.render.variables`; a render
error is worded by :mod:`campaign.render.render_errors`, with the line of the template as its author wrote it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from campaign.exceptions import TemplateError
from campaign.models import Contact, Event, EventBefore
from campaign.render.calendar import CalendarMethod, build_ics
from campaign.render.identifiers import list_id
from campaign.render.links import LinkPolicy, MessageLinks
from campaign.render.localtime import language_of
from campaign.render.mime import MessageSkeleton, Sender, WireText
from campaign.render.render_errors import describe_render_error
from campaign.render.stencil import StencilledTemplate
from campaign.render.templates import MessageTemplates, TemplateSet, variant_locale
from campaign.render.variables import WaveVariables

_Body = TypeVar("_Body", str, str | WireText)


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """The personalised parts of one message."""

    subject: str
    html: str
    text: str
    template_names: Mapping[str, str]
    unsubscribe_url: str


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
    subject_override: str | None = None
    calendar_method: CalendarMethod = CalendarMethod.PUBLISH
    # Each recipient's own calendar, with them as ATTENDEE: always for REQUEST, and for a CANCEL of invitations
    # that were REQUESTs (see calendar_per_recipient in wave_renderer). Otherwise one calendar for the wave.
    calendar_per_recipient: bool = False
    # Whether messages carry the calendar (its alternative part and invite.ics): not a follow-up's, sent after the
    # session, whose calendar would put the past session back into a calendar.
    attaches_calendar: bool = True
    unsubscribe_mailto: str | None = None
    default_locale: str = "en"
    # The calendar's DTSTAMP: when the wave's calendar was made (the sender's clock; the real one by default).
    stamp: datetime | None = None
    # An update notice's event before the update (the ``change`` template variable); None for other waves.
    event_before: EventBefore | None = None
    _variables: WaveVariables = field(init=False, repr=False)
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
        self._variables = WaveVariables(self.event, self.campaign, self.wave, self.event_before)
        if self.calendar_method is CalendarMethod.REQUEST:
            self.calendar_per_recipient = True  # a REQUEST without its ATTENDEE is no invitation (build_ics)
        if not self.attaches_calendar:
            self.calendar_per_recipient = False
        self._skeleton = MessageSkeleton(
            sender=self.sender,
            list_id=list_id(self.campaign, self.sender),
            campaign_id=f"{self.campaign['id']}/{self.wave['name']}",
            unsubscribe_mailto=self.unsubscribe_mailto,
            calendar=None if self.calendar_per_recipient or not self.attaches_calendar else self.calendar_bytes(),
            calendar_method=self.calendar_method.value,
        )
        if self.subject_override:
            self._subject = self.templates.string(self.subject_override)
            self._subject_personal = self.templates.is_personal(self.subject_override)

    def calendar_bytes(self, attendee: tuple[str, str | None] | None = None) -> bytes:
        """The .ics for this wave (with ``attendee`` where it is built per recipient: METHOD:REQUEST, and CANCEL
        after REQUEST invitations)."""
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
            found = locale if language_of(locale) == language_of(written) else written
            self._message_locales[locale] = found
        return found

    def template_locale(self, contact: Contact) -> str:
        """The locale whose templates serve ``contact`` (see :meth:`templates_for`): theirs, or the default."""
        return contact.locale or self.default_locale

    def context(self, contact: Contact, links: MessageLinks) -> dict[str, Any]:
        """The template variables for one recipient (see :mod:`campaign.render.variables`)."""
        return self._variables.for_recipient(contact, links, self.message_locale(self.template_locale(contact)))

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
            described = describe_render_error(exc, self.templates.directories, self.subject_override)
            raise TemplateError(f"{described} (for {contact.email})") from exc

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
        if self.calendar_per_recipient:
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
