"""SQL for a campaign's recent delivery attempts as the outbox records them, every worker's together: what its
failure breaker decides on when one worker's own view suggests pausing it (:mod:`campaign.services.dispatch_failures`).

An attempt's outcome is its message's status as last recorded (``updated_at``): ``sent`` succeeded; ``deferred``,
or ``expired`` after giving up on a transient error (``last_error`` "gave up: ..."), failed against the campaign.
Bounces and permanent failures say something about one recipient, not the server, and are not counted, as the
breaker does not count them. One statement, reading the campaign's most recent results only.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, and_, case, func, or_, select

from campaign.models import MessageStatus
from campaign.store.tables import messages, waves


def recent_outcomes(conn: Connection, campaign_id: int, *, window: int, since: datetime) -> tuple[int, int]:
    """(failures, attempts) among the ``window`` most recent attempts of ``campaign_id`` recorded since ``since``."""
    failed = or_(
        messages.c.status == MessageStatus.DEFERRED.value,
        and_(messages.c.status == MessageStatus.EXPIRED.value, messages.c.last_error.like("gave up:%")),
    )
    recent = (
        select(case((failed, 1), else_=0).label("failed"))
        .where(
            messages.c.wave_id.in_(select(waves.c.id).where(waves.c.campaign_id == campaign_id)),
            messages.c.status.in_(
                [MessageStatus.SENT.value, MessageStatus.DEFERRED.value, MessageStatus.EXPIRED.value]
            ),
            messages.c.updated_at >= since,
        )
        .order_by(messages.c.updated_at.desc())
        .limit(window)
        .subquery()
    )
    row = conn.execute(select(func.coalesce(func.sum(recent.c.failed), 0), func.count()).select_from(recent)).one()
    return int(row[0]), int(row[1])
