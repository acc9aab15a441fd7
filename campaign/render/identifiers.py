"""The identifiers a message carries in its headers and calendar part, built in one place.

Contract: every identifier is unique across installations (each database has its own random installation id,
:mod:`campaign.services.installation`, and every installation has a campaign 1 and an event 1) and stable: the
same message row, event or campaign gives the same identifier on every attempt and re-render, because mail
clients and calendars de-duplicate on them (Gmail threads by Message-ID; a calendar replaces the entry with the
same UID). None names this machine's host.

* Message-ID: ``<ref>.<installation>@<domain>``, ``ref`` naming the message (``c1.w1.m1``).
* Calendar UID: ``event-<id>.<installation>@<domain>``; an event created before installation ids existed keeps
  the UID its invitations went out with (``events.calendar_uid``, filled by migration 0003), so that later
  reminders and updates still replace that entry instead of adding a second one.
* List-Id (RFC 2919): ``Name <campaign-<id>.<installation>.<domain>>``, the part in brackets a dot-atom (the
  installation id is lower-case letters and digits).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from campaign.models import Event
from campaign.render.mime import Sender


def message_id_for(ref: str, sender: Sender) -> str:
    """The Message-ID (without angle brackets) of the message ``ref`` names."""
    return f"{ref}.{sender.installation}@{sender.domain}"


def event_uid(event: Event, domain: str, installation: str) -> str:
    """The UID of an event's calendar entry: the same in every wave, so updates replace the same entry."""
    local = event.calendar_uid or f"event-{event.id}.{installation}"
    return f"{local}@{domain}"


def list_id(campaign: Mapping[str, Any], sender: Sender) -> str:
    """The campaign's ``List-Id`` header value."""
    return f"{campaign['name']} <campaign-{campaign['id']}.{sender.installation}.{sender.domain}>"
