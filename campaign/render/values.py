"""What templates see of an event, a contact and a session's times, as plain values.

Contract: each function maps a domain object to the dict a template reads (documented in README's Templates
section). The event's values and calendar links are the same for every recipient of a wave, so the renderer
computes them once; a session's times are shared by every recipient of a zone and locale (cached here).
"""

from __future__ import annotations

import textwrap
from functools import cache
from typing import Any
from urllib.parse import urlencode

from campaign.models import Contact, Event, EventBefore
from campaign.render.localtime import SessionTimes


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


def event_link_urls(event: Event) -> dict[str, str]:
    """The destinations of the links a message makes from its event, by link name (``register``, ``join``,
    ``calendar_google``, ``calendar_outlook``): those of links already sent follow the event when it changes
    (:func:`campaign.store.links.retarget`)."""
    urls = calendar_links(event)
    if event.registration_url:
        urls["register"] = event.registration_url
    if event.join_url:
        urls["join"] = event.join_url
    return urls


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
        "utc_line": times.utc_line,
        "utc_line_plain": times.utc_line_plain,
    }


@cache
def change_values(before: EventBefore, previous: SessionTimes) -> dict[str, Any]:
    """What an update notice says changed (``change`` in templates): ``moved`` when the session's time did, with
    ``before`` the old time as the recipient sees it (``previous``: their zone and language, as ``when``);
    ``join_url`` / ``registration_url`` when that link did; ``fields`` every field that changed. One dict per
    zone and locale, shared by its recipients."""
    return {
        "moved": "starts_at" in before.changed or "ends_at" in before.changed,
        "before": times_values(previous),
        "join_url": "join_url" in before.changed,
        "registration_url": "registration_url" in before.changed,
        "fields": list(before.changed),
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
