"""Reading a webinar platform's attendee report (Zoom's webinar attendee report, Webex's attendee list, any CSV
with an email column and, say, a join time and a duration).

Contract: :class:`AttendeeCsv` is the contact CSV reader (:class:`campaign.sources.csv_contacts.PeopleCsv`:
encodings, BOM, delimiters, CRLF, quoted fields, exact line numbers, streaming) with the attendee header below.
Each :class:`~campaign.sources.csv_contacts.CsvRecord` carries the non-blank cells of up to five fields:
``email``, ``attended`` (Yes/No), ``joined_at``, ``minutes`` and ``role``; no other column is read.

* Zoom's report is in sections: a title line ("Attendee Report"), "Report Generated:", the webinar's own table
  (a "Topic" header and its values row), then "Host Details", "Panelist Details", "Attendee Details" and
  sometimes "Other Attended", each a title row followed by its own header row and rows. Only the attendees
  count (:data:`ATTENDEE_SECTIONS`): "Attendee Details", and "Other Attended" (people who joined without
  registering). Hosts and panelists run the webinar; they are not the invitees a campaign reached.
* A plain file (Webex's attendee report, a hand-made list) has no sections: its header is the first of the
  first :data:`PREAMBLE_LINES` lines with an email column, as for registrant exports.
"""

from __future__ import annotations

from campaign.sources.csv_contacts import FIELD_ALIASES, HeaderSpec, PeopleCsv

PREAMBLE_LINES = 2_000
"""How many lines are searched for the header: Zoom's host and panelist sections come before the attendees'."""

ATTENDEE_SECTIONS = {
    "attendeedetails": True,
    "otherattended": True,
    "hostdetails": False,
    "panelistdetails": False,
    # Zoom's other reports, should one be exported together with the attendees'.
    "registrantdetails": False,
    "pollingdetails": False,
    "questionandanswerdetails": False,
}
"""Zoom's section titles (compared as :func:`~campaign.sources.csv_contacts.header_key` spells them) and whether
their rows are attendees."""

ATTENDEE_HEADER = HeaderSpec(
    {
        # The contact import's spellings, and Zoom's meeting report ("User Email"), Webex's ("Attendee Email").
        "email": (*FIELD_ALIASES["email"], "useremail", "attendeeemail", "participantemail"),
        # Zoom: Attended (Yes/No).
        "attended": ("attended", "attendance", "attendedyesno"),
        # Zoom: Join Time; Webex: Join Time, Joined, Date/Time Joined.
        "joined_at": ("jointime", "joined", "joinedat", "joindate", "datetimejoined", "firstjointime"),
        # Zoom: Time in Session (minutes); Zoom meetings: Duration (Minutes); Webex: Duration, Attendance Duration.
        "minutes": (
            "timeinsessionminutes",
            "timeinsession",
            "durationminutes",
            "durationmins",
            "durationmin",
            "duration",
            "attendanceduration",
            "attendancedurationminutes",
            "minutes",
            "minutesattended",
        ),
        # Webex: Role (Host, Cohost, Panelist, Attendee).
        "role": ("role", "participantrole", "attendeerole"),
    },
    attributes=False,
    preamble=PREAMBLE_LINES,
    sections=ATTENDEE_SECTIONS,
)
"""The columns read from an attendee report."""


class AttendeeCsv(PeopleCsv):
    """An attendee report (:data:`ATTENDEE_HEADER`), opened for streaming."""

    spec = ATTENDEE_HEADER
