"""The one way a campaign's status changes: :func:`transition`, checked against the lifecycle's table.

Contract:

* Every move of ``campaigns.status`` goes through :func:`transition`: launch, resume, pause (staff's or the
  delivery worker's breaker), cancel, retry, completion, and the reopening of a sent campaign (a wave added, an
  event updated, new list members). It allows only the moves of :data:`campaign.models.CAMPAIGN_TRANSITIONS`.
* The move is one conditional ``UPDATE … WHERE status IN (the statuses it may come from)``: what the caller read
  before is only a hint, the database decides. Two processes deciding at once (two idle workers finishing a
  campaign, a worker's breaker and staff's cancel) never both move it, and never move it from a status another
  changed meanwhile. Completion (``finished=True``) is ``sending → sent`` only, and only while no wave is pending
  and no message is unfinished, in the same statement.
* A refused move raises :class:`TransitionRefusedError` (a clear one-line :class:`ValidationError`), or, with
  ``strict=False`` (moves that are only worth making if still possible: the breaker's pause, completion, a
  reopening), returns False and changes nothing.

It sits below :mod:`~campaign.services.lifecycle` (launch, pause, resume, cancel, retry, finish) because the
scheduler's firing (:mod:`~campaign.services.scheduling`, which launch calls) reopens campaigns too.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import Connection

from campaign.exceptions import ValidationError
from campaign.models import CAMPAIGN_TRANSITIONS, CampaignStatus
from campaign.store import campaigns as campaign_store

SOURCES: dict[CampaignStatus, frozenset[CampaignStatus]] = {
    target: frozenset(source for source, targets in CAMPAIGN_TRANSITIONS.items() if target in targets)
    for target in CampaignStatus
}
"""For each status, the statuses a campaign may move to it from (the lifecycle's table, read backwards)."""


class TransitionRefusedError(ValidationError):
    """A campaign's status could not move as asked: its current status does not allow it."""


def transition(
    conn: Connection,
    campaign_id: int,
    target: CampaignStatus,
    *,
    now: datetime,
    reason: str | None = None,
    only_from: Collection[CampaignStatus] | None = None,
    finished: bool = False,
    strict: bool = True,
) -> bool:
    """Move the campaign to ``target`` (with ``reason`` shown beside it) in ``conn``'s transaction, if its current
    status allows it; see the module doc. Returns whether it moved.

    ``only_from`` narrows the statuses it may come from (resume: only a paused campaign; reopening: only a sent
    one); it must be allowed by the table. ``finished``: only if no wave is pending and no message unfinished.
    """
    sources = SOURCES[target]
    if only_from is not None:
        if not set(only_from) <= sources:
            # A programming error, not a user's: the caller asked for a move the table does not have.
            bad = ", ".join(sorted(s.value for s in set(only_from) - sources))
            raise ValueError(f"a campaign cannot go from {bad} to {target}")
        sources = frozenset(only_from)
    moved = bool(sources) and campaign_store.change_status(
        conn, campaign_id, target, reason, now, was=sources, finished=finished
    )
    if moved or not strict:
        return moved
    current = campaign_store.find(conn, str(campaign_id))
    if current is None:
        raise TransitionRefusedError(f"campaign {campaign_id} does not exist")
    if finished and current.status in sources:
        raise TransitionRefusedError(f"campaign {current.name} still has messages or waves to send")
    raise TransitionRefusedError(f"campaign {current.name} is {current.status}: it cannot become {target}")
