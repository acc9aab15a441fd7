"""What one run of the delivery worker did, as its callers see it.

Contract: a :class:`DispatchSummary` counts the messages recorded by final status, and names the campaigns that
paused themselves or finished during the run, and how many messages an aborted run left on the wire. It is
plain data: a sender process returns it to its parent (:mod:`campaign.services.parallel`), which merges the
summaries of all its processes into one.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class PausedCampaign:
    """A campaign that paused itself during a run, and why."""

    campaign_id: int
    name: str
    reason: str


@dataclass
class DispatchSummary:
    """What one run of the worker did. ``paused`` holds the campaigns that paused themselves, by id: a name
    may contain anything (``a: b``), so only the id says which campaign an entry is about."""

    counts: dict[str, int] = field(default_factory=dict)
    paused: dict[int, PausedCampaign] = field(default_factory=dict)
    finished: list[str] = field(default_factory=list)
    abandoned: int = 0  # messages on the wire when the run was aborted: left leased, their outcome unknown
    claimed: int = 0  # messages claimed (leased) by the run
    lost: int = 0  # results not recorded: the run had lost the message's lease (see dispatch_results)

    def add(self, status: str, count: int = 1) -> None:
        """Count recorded results."""
        self.counts[status] = self.counts.get(status, 0) + count

    def merge(self, other: DispatchSummary) -> None:
        """Add another run's counts, paused and finished campaigns (of a parallel sender)."""
        for status, count in other.counts.items():
            self.add(status, count)
        for campaign_id, paused in other.paused.items():
            self.paused.setdefault(campaign_id, paused)
        self.finished.extend(f for f in other.finished if f not in self.finished)
        self.abandoned += other.abandoned
        self.claimed += other.claimed
        self.lost += other.lost
