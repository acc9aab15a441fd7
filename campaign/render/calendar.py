"""Calendar invites (RFC 5545 / iMIP, RFC 6047) built with icalendar.

Contract of :func:`build_ics`: one VCALENDAR with one VEVENT for the event: a stable UID
(:func:`~campaign.render.identifiers.event_uid`: the same in every wave and campaign about the event, so updates
and cancellations replace the same entry, and never the same as another database's event 1), DTSTAMP in UTC,
DTSTART/DTEND with the organiser's TZID and a VTIMEZONE covering the event date, SUMMARY, DESCRIPTION with the
join and registration links, URL, ORGANIZER and SEQUENCE. METHOD is PUBLISH (no attendee: the same bytes serve every
recipient, so they are built once per wave), REQUEST (the recipient as ATTENDEE, built per recipient) or
CANCEL (STATUS:CANCELLED, as for any calendar of a cancelled event). A CANCEL follows the invitations: after
REQUESTs it names the recipient as ATTENDEE and is built per recipient (RFC 5546 3.2.5 wants the attendees of a
cancelled event named, and Outlook and Google find the entry to remove by UID and attendee); after PUBLISH it has
none, and is built once per wave. SEQUENCE is the event's, raised by
``campaign events update`` (time or place) and ``cancel``. The MIME ``method=`` parameter must equal METHOD: Outlook
rejects a mismatch.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from icalendar import Calendar, Timezone, vCalAddress, vText
from icalendar import Event as VEvent

# CalendarMethod is defined with the other value sets (settings check render.calendar_method against it) and
# re-exported here, where calendars are built.
from campaign.models import CalendarMethod as CalendarMethod
from campaign.models import Event, EventStatus
from campaign.render.identifiers import event_uid

PRODID = "-//campaign//Event invitations//EN"


def build_ics(
    event: Event,
    *,
    domain: str,
    installation: str,
    method: CalendarMethod = CalendarMethod.PUBLISH,
    stamp: datetime,
    attendee: tuple[str, str | None] | None = None,
) -> bytes:
    """The .ics bytes for ``event``; ``attendee`` (address, name) is required for REQUEST, and given for a CANCEL
    of REQUEST invitations."""
    if method is CalendarMethod.REQUEST and attendee is None:
        raise ValueError("METHOD:REQUEST needs the recipient as ATTENDEE")
    tz = ZoneInfo(event.timezone)
    start, end = event.starts_at.astimezone(tz), event.ends_at.astimezone(tz)

    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", method.value)
    # A VTIMEZONE covering the event's year(s): both the standard and the summer rule, which Outlook wants,
    # without the zone's whole history.
    first, last = date(start.year, 1, 1), date(end.year + 1, 1, 1)
    cal.add_component(Timezone.from_tzid(event.timezone, first_date=first, last_date=last))

    vevent = VEvent()
    vevent.add("uid", event_uid(event, domain, installation))
    vevent.add("dtstamp", stamp)
    vevent.add("dtstart", start)
    vevent.add("dtend", end)
    vevent.add("summary", event.title)
    vevent.add("description", _description(event))
    vevent.add("sequence", event.sequence)
    if event.join_url:
        vevent.add("location", event.join_url)
    if event.registration_url or event.join_url:
        vevent.add("url", event.registration_url or event.join_url)
    if event.organiser_email:
        organiser = vCalAddress(f"mailto:{event.organiser_email}")
        if event.organiser_name:
            organiser.params["cn"] = vText(event.organiser_name)
        vevent.add("organizer", organiser)
    if attendee is not None:
        address, name = attendee
        who = vCalAddress(f"mailto:{address}")
        if name:
            who.params["cn"] = vText(name)
        who.params["role"] = vText("REQ-PARTICIPANT")
        who.params["partstat"] = vText("NEEDS-ACTION")
        who.params["rsvp"] = vText("FALSE")
        vevent.add("attendee", who)
    # A cancelled event reads as such in whatever is built of it afterwards (a preview, the .ics link).
    cancelled = method is CalendarMethod.CANCEL or event.status is EventStatus.CANCELLED
    vevent.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    vevent.add("transp", "OPAQUE")
    cal.add_component(vevent)
    ics: bytes = cal.to_ical()
    return ics


def _description(event: Event) -> str:
    lines = []
    if event.join_url:
        lines.append(f"Join: {event.join_url}")
    if event.registration_url:
        lines.append(f"Register: {event.registration_url}")
    if event.description:
        lines.append("")
        lines.append(event.description)
    return "\n".join(lines)
