"""The report model: the plain frozen dataclasses every report format is built from (the ``campaign report``
table, CSV and JSON, the HTML file, the dashboard), and what a :class:`Tally` derives from its counts (rates over
the right base, its CSV columns). Built by :mod:`campaign.services.reports`; written out as JSON and CSV by
:mod:`campaign.services.report_documents`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from campaign.models import Campaign, Event, FunnelRegistrations, MessageStatus, RegistrationSource, Wave
from campaign.render.figures import clear_peak

# Part of the report model (its fields), so named here for those who read it.
from campaign.store.reports import Delays as Delays
from campaign.store.reports import Undelivered as Undelivered

# The statuses that only an attempt gives: what bounce and delivery rates are over.
_ATTEMPTED = (MessageStatus.SENT, MessageStatus.DEFERRED, MessageStatus.BOUNCED, MessageStatus.FAILED)
_UNDELIVERED = (MessageStatus.DEFERRED, MessageStatus.BOUNCED, MessageStatus.FAILED, MessageStatus.EXPIRED)


@dataclass(frozen=True, slots=True)
class Tally:
    """What happened to a set of messages (a campaign's, a wave's, a group's) and what their recipients did.

    ``statuses`` has every :class:`MessageStatus`, in its order; opens and clicks count messages (once each, by
    people and by machines apart; a person's click counts as an open); ``registered`` counts recipients who
    registered after a message reached them, ``registered_by_source`` each source apart (one person known by two
    sources counts in both)."""

    statuses: Mapping[MessageStatus, int]
    human_opened: int = 0
    machine_opened: int = 0
    human_clicked: int = 0
    machine_clicked: int = 0
    register_clicked: int = 0
    registered: int = 0
    registered_by_source: Mapping[RegistrationSource, int] = field(default_factory=dict)
    unsubscribed: int = 0
    registered_confirmed: int = 0
    """Of ``registered``, those the webinar platform confirmed (its export imported, or its webhook)."""
    joined: int = 0
    """Recipients who joined the event, as its attendee report (imported) says: 0 while none is."""
    expired_after_attempts: int = 0
    """Of the ``expired`` messages, those that had been tried (deferred, then their lifetime ended): attempted."""

    @classmethod
    def empty(cls) -> Tally:
        """Nothing happened: no message of any status."""
        return cls(dict.fromkeys(MessageStatus, 0))

    @property
    def targeted(self) -> int:
        """Every message: each member of each wave's audience, suppressed ones included."""
        return sum(self.statuses.values())

    @property
    def delivered(self) -> int:
        """Messages the receiving server accepted (``sent``): the base of engagement rates."""
        return self.statuses[MessageStatus.SENT]

    @property
    def attempted(self) -> int:
        """Messages handed to a server with an outcome (sent, deferred, bounced, failed, and expired after an
        attempt): the base of the delivery and bounce rates. An expired message that had been deferred counts: a
        message given up on must not raise the delivery rate by leaving its base."""
        return sum(self.statuses[s] for s in _ATTEMPTED) + self.expired_after_attempts

    @property
    def joined_of_registered(self) -> float | None:
        """Recipients who joined over those who registered (None when none registered): how many who meant to
        come did."""
        return rate(self.joined, self.registered)

    def rates(self) -> dict[str, float | None]:
        """Each rate over its base (None when the base is 0): ``delivered``, ``deferred``, ``bounced``,
        ``failed`` over attempted; ``suppressed`` over targeted; opens, clicks, registrations and unsubscribes
        over delivered."""
        s = self.statuses
        over_attempted = {
            "delivered": s[MessageStatus.SENT],
            "deferred": s[MessageStatus.DEFERRED],
            "bounced": s[MessageStatus.BOUNCED],
            "failed": s[MessageStatus.FAILED],
        }
        return {
            **{name: rate(n, self.attempted) for name, n in over_attempted.items()},
            "suppressed": rate(s[MessageStatus.SUPPRESSED], self.targeted),
            **{name: rate(n, self.delivered) for name, n in self._engagement().items()},
            "joined": rate(self.joined, self.delivered),
        }

    def _engagement(self) -> dict[str, int]:
        """What recipients did, by column name, in column order: the counts whose rates are over delivered."""
        return {
            "opened_human": self.human_opened,
            "opened_machine": self.machine_opened,
            "clicked_human": self.human_clicked,
            "clicked_machine": self.machine_clicked,
            "clicked_register": self.register_clicked,
            "registered": self.registered,
            "unsubscribed": self.unsubscribed,
        }

    def columns(self) -> dict[str, int | float | None]:
        """Every count and rate as one flat row (the CSV columns), in a fixed order."""
        counts: dict[str, int | float | None] = {"targeted": self.targeted}
        counts |= {status.value: n for status, n in self.statuses.items()}
        engagement = self._engagement()
        unsubscribed = engagement.pop("unsubscribed")  # last: the registrations by source follow the total
        counts |= {
            "attempted": self.attempted,
            **engagement,
            **{f"registered_{s.value}": self.registered_by_source.get(s, 0) for s in RegistrationSource},
            "registered_confirmed": self.registered_confirmed,
            "unsubscribed": unsubscribed,
        }
        rates = {f"rate_{name}": rounded(r) for name, r in self.rates().items()}
        # joined came later: its two columns go last, so the columns before keep their places.
        rate_joined = rates.pop("rate_joined")
        # So did the expired ones that count among the attempted: after them.
        return (
            counts
            | rates
            | {
                "joined": self.joined,
                "rate_joined": rate_joined,
                "expired_after_attempts": self.expired_after_attempts,
            }
        )


def rounded(value: float | None) -> float | None:
    """A rate as reports show it: to four places (None stays None)."""
    return None if value is None else round(value, 4)


def rate(count: int, base: int) -> float | None:
    """``count / base``, or None when the base is 0."""
    return count / base if base else None


@dataclass(frozen=True, slots=True)
class WaveLine:
    """One wave of the campaign and its tally."""

    wave: Wave
    tally: Tally


@dataclass(frozen=True, slots=True)
class GroupLine:
    """One value of the breakdown (a zone, a country ...; None for contacts without one) and its tally."""

    key: str | None
    tally: Tally


@dataclass(frozen=True, slots=True)
class BreakdownLines:
    """One breakdown of a report (``zone``, ``attr:job_title``): a line per value, largest groups first."""

    by: str
    rows: tuple[GroupLine, ...]


@dataclass(frozen=True, slots=True)
class LinkLine:
    """One link of one wave: messages in which people clicked it, in which machines did, and people's clicks."""

    wave: str
    index: int | None
    name: str | None
    url: str | None
    clicked_human: int
    clicked_machine: int
    clicks_human: int


@dataclass(frozen=True, slots=True)
class HourLine:
    """One local hour: its start (aware, in the report's zone), messages first opened and first clicked by a person
    in it, and recipients registered in it (the first registration :attr:`Tally.registered` counts)."""

    start: datetime
    opened: int = 0
    clicked: int = 0
    registered: int = 0


@dataclass(frozen=True, slots=True)
class ZoneHours:
    """People's activity in one contacts' zone by local hour of the day there (hour 0 first, 24 counts each):
    messages first opened by a person, and recipients registered (as :attr:`Tally.registered` counts them).
    ``zone`` None is the contacts without one, whose hours are the organiser's (as their messages' times are)."""

    zone: str | None
    opened: tuple[int, ...]
    registered: tuple[int, ...]

    @property
    def peak_open_hour(self) -> int | None:
        """The local hour in which most messages were first opened (the earliest of equals), or None."""
        return _peak(self.opened)

    @property
    def peak_registration_hour(self) -> int | None:
        """The local hour in which most recipients registered (the earliest of equals), or None."""
        return _peak(self.registered)

    @property
    def advised_open_hour(self) -> int | None:
        """The peak open hour when no other hour ties it (:func:`campaign.render.figures.clear_peak`): the one
        to advise sending at."""
        return clear_peak(self.opened)

    @property
    def advised_registration_hour(self) -> int | None:
        """The peak registration hour when no other hour ties it, as :attr:`advised_open_hour`."""
        return clear_peak(self.registered)


def _peak(counts: Sequence[int]) -> int | None:
    best = max(counts, default=0)
    return counts.index(best) if best else None


@dataclass(frozen=True, slots=True)
class FunnelStep:
    """One step of the funnel: recipients who got that far, the share of those delivered, and of the step before."""

    step: str
    count: int
    of_delivered: float | None
    of_previous: float | None


@dataclass(frozen=True, slots=True)
class ReportFilters:
    """What the report was asked for: one wave, a time window, a breakdown (``zone``, ``attr:job_title``) and
    the zone of the hourly series and of times shown."""

    zone: str
    wave: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    by: str | None = None


@dataclass(frozen=True, slots=True)
class CampaignReport:
    """Everything ``campaign report`` shows of one campaign (see the module doc)."""

    campaign: Campaign
    event: Event
    filters: ReportFilters
    generated_at: datetime
    totals: Tally
    waves: tuple[WaveLine, ...]
    funnel_wave: str | None
    funnel: tuple[FunnelStep, ...]
    links: tuple[LinkLine, ...]
    hourly: tuple[HourLine, ...]
    to_open: Delays
    to_registration: Delays
    undelivered: tuple[Undelivered, ...]
    breakdown: tuple[GroupLine, ...] | None = None
    """The first breakdown asked for (``filters.by``): its rows."""
    local_hours: tuple[ZoneHours, ...] | None = None
    """With ``local_hours=True``: people's activity by their own zone and local hour of the day."""
    funnel_registered: FunnelRegistrations = FunnelRegistrations.ANY
    """Which registrations the funnel's registered step counts."""
    funnel_elsewhere: tuple[int, int] = (0, 0)
    """The funnel wave's recipients who registered after it (as the registered step counts them) without clicking
    its registration link, and who joined the event without being in its registered step: not in the funnel,
    whose every step is part of the one before."""
    attendees: int = 0
    """Contacts who joined the event (its attendee report imported), recipients or not: 0 while none is known, and
    the funnel then ends at registered."""
    breakdowns: tuple[BreakdownLines, ...] = ()
    """Every breakdown asked for, in the order asked (the first is :attr:`breakdown`)."""

    @property
    def undelivered_total(self) -> int:
        """All the messages that did not reach their recipient (the list holds the latest of them)."""
        return sum(self.totals.statuses[s] for s in _UNDELIVERED)


@dataclass(frozen=True, slots=True)
class CampaignLine:
    """One campaign of ``campaign report --all``: the campaign, its event and its tally."""

    campaign: Campaign
    event: Event
    tally: Tally
