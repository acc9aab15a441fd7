"""The variables a template sees, for each recipient of one wave.

Contract: a :class:`WaveVariables` is made once per wave, and computes then what is the same for every
recipient (the event's values, its calendar links); :meth:`WaveVariables.for_recipient` gives one recipient's
variables: ``contact`` (the contact's fields and custom attributes), ``event`` (title, description,
``paragraphs``, speakers, organiser, URLs), ``when`` (the session in the recipient's zone, in the message's
language: ``line``, ``zone_name``, ``when``, ``start``, ``end``; ``is_fallback`` when the contact has no zone),
``organiser_when`` (the same in the organiser's zone), ``links`` (register, join, calendar_google,
calendar_outlook, calendar_ics, unsubscribe), ``link(url, name)`` for any other link, ``pixel_url``,
``campaign``, ``wave``, ``locale`` (the message's language, chosen by
:meth:`~campaign.render.personalise.WaveRenderer.message_locale`), ``direction`` (``rtl`` when that language is
written right to left, else ``ltr``: the layout's ``dir``), ``change`` (an update notice's: what changed,
with the old time in the recipient's zone; None otherwise). ``preheader`` may be set by the template. The filters
(:mod:`campaign.render.filters`) format any instant in the recipient's zone and the message's language; the values
themselves are made by :mod:`campaign.render.values`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from campaign.models import Contact, Event, EventBefore
from campaign.render.filters import Viewer
from campaign.render.links import MessageLinks
from campaign.render.localtime import session_times, text_direction
from campaign.render.values import calendar_links, change_values, contact_values, event_values, times_values


@dataclass
class WaveVariables:
    """The template variables of one wave's recipients; see the module doc."""

    event: Event
    campaign: Mapping[str, Any]
    wave: Mapping[str, Any]
    # An update notice's event before the update (the ``change`` variable); None for other waves.
    event_before: EventBefore | None = None
    _event: dict[str, Any] = field(init=False, repr=False)
    _calendar_links: dict[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._event = event_values(self.event)
        self._calendar_links = calendar_links(self.event)

    def for_recipient(self, contact: Contact, links: MessageLinks, locale: str) -> dict[str, Any]:
        """The template variables for ``contact``, whose message is written in ``locale``."""
        when = session_times(self.event.starts_at, self.event.ends_at, contact.timezone, self.event.timezone, locale)
        organiser_when = session_times(
            self.event.starts_at, self.event.ends_at, self.event.timezone, self.event.timezone, locale
        )
        link_values = {name: links.link(url, name) for name, url in self._calendar_links.items()}
        # The recipient's own calendar file is a signed link of its own, recorded as such: not a click.
        link_values["calendar_ics"] = links.calendar_url
        if self.event.registration_url:
            link_values["register"] = links.link(self.event.registration_url, "register")
        if self.event.join_url:
            link_values["join"] = links.link(self.event.join_url, "join")
        link_values["unsubscribe"] = links.unsubscribe_url
        change = None
        if self.event_before is not None:
            before = self.event_before
            previous = session_times(before.starts_at, before.ends_at, contact.timezone, before.timezone, locale)
            change = change_values(before, previous)
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
            "direction": text_direction(locale),
            "viewer": Viewer(when.zone, locale),
            "change": change,
        }
