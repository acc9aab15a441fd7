"""Reading a webinar platform's registrant export (Zoom's registration report, Webex's registrant list).

Contract: :class:`RegistrantCsv` is the contact CSV reader (:class:`campaign.sources.csv_contacts.PeopleCsv`:
encodings, BOM, delimiters, CRLF, quoted fields, line numbers, streaming) with the registrant header below.
Each :class:`~campaign.sources.csv_contacts.CsvRecord` carries up to three fields, the non-blank cells of
``email``, ``registered_at`` and ``status``; no other column is read (a platform's custom questions can be
anything, repeat, and are no concern of an invitation list).

* A report's title rows (Zoom's "Registration Report", "Topic", "Webinar ID" ... "Registrant Details") may come
  before the header: the header is the first of the first :data:`PREAMBLE_LINES` lines with an email column.
* Header names match case-insensitively, ignoring spaces and punctuation, in the spellings the platforms use.
"""

from __future__ import annotations

from campaign.sources.csv_contacts import FIELD_ALIASES, HeaderSpec, PeopleCsv

PREAMBLE_LINES = 30
"""How many lines are searched for the header (Zoom's report has about ten before it)."""

REGISTRANT_HEADER = HeaderSpec(
    {
        # The contact import's spellings (Email, E-mail, Email Address ...), so one file can serve both.
        "email": FIELD_ALIASES["email"],
        # Zoom: Registration Time; Webex: Registration Date, Registered, Registration Date/Time.
        "registered_at": (
            "registrationtime",
            "registrationdate",
            "registrationdatetime",
            "registrationdateandtime",
            "registered",
            "registeredat",
            "registeredon",
            "registrationtimestamp",
        ),
        # Zoom: Approval Status; Webex: Status.
        "status": ("approvalstatus", "status", "registrationstatus", "registrantstatus"),
    },
    attributes=False,
    preamble=PREAMBLE_LINES,
)
"""The columns read from a registrant export."""


class RegistrantCsv(PeopleCsv):
    """A registrant export (:data:`REGISTRANT_HEADER`), opened for streaming."""

    spec = REGISTRANT_HEADER
