"""What a delivery run is asked to do, and with what: one object instead of seven arguments passed along.

Contract: a :class:`DeliveryRequest` is immutable and names everything a run of the delivery worker needs from its
caller: the database, the settings, the signing key, the SMTP servers, which campaign (or all that are sending),
whether to keep waiting for more, and who is told of each result. The entry points build one (``campaign send``,
``campaign serve``, ``campaign worker``, the demo, the benchmark) and hand it to
:func:`campaign.services.dispatch.send_due` (one process) or :func:`campaign.services.parallel.send_parallel`
(several); how the run is stopped, its clock and its lease owner name stay arguments of the run itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from campaign.config import Settings
from campaign.mail.smtp import SmtpServer
from campaign.services.dispatch_results import Progress
from campaign.store.engine import Database


@dataclass(frozen=True, slots=True)
class DeliveryRequest:
    """A delivery run's inputs (see the module doc).

    ``campaign_ref``: deliver only this campaign (default: every campaign that is sending); ``wait``: keep running,
    for retries and newly queued messages, until stopped; ``progress``: called with each result's status (in the
    run's process only).
    """

    db: Database
    settings: Settings
    key: bytes
    servers: Sequence[SmtpServer]
    campaign_ref: str | None = None
    wait: bool = False
    progress: Progress | None = None

    def on(self, db: Database) -> DeliveryRequest:
        """The same request on another database handle (a process's own connections, a memory-mapped variant)."""
        return replace(self, db=db)
