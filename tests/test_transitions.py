"""The one checked campaign transition (services/transitions.py).

The transition runs on real databases (SQLite and PostgreSQL): every move of the lifecycle's table is allowed, every
other one refused with a clear error and no change; a move from a status changed since it was read is refused; a
campaign is completed once, only when nothing is left to send, even by two processes at once.
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import update

from campaign.models import CAMPAIGN_TRANSITIONS, UNFINISHED_MESSAGES, CampaignStatus, MessageStatus
from campaign.services.campaigns import get_campaign
from campaign.services.lifecycle import finish_campaigns, launch, pause_sending
from campaign.services.transitions import SOURCES, TransitionRefusedError, transition
from campaign.store import outbox
from campaign.store.engine import Database
from campaign.store.tables import campaigns
from tests.test_delivery import KEY, base_settings, campaign_status, prepare, tuned

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent


def force_status(db: Database, ref: str, status: CampaignStatus) -> int:
    """Put the campaign in ``status`` behind the lifecycle's back (a test's setup only); returns its id."""
    campaign_id = get_campaign(db, ref).campaign.id
    with db.write() as conn:
        conn.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(status=status.value))
    return campaign_id


def send_everything(db: Database, campaign_id: int) -> None:
    """Every unfinished message of the campaign becomes sent (as a delivery run would make them)."""
    with db.write() as conn:
        unfinished = sorted(s.value for s in UNFINISHED_MESSAGES)
        outbox.set_status_where(conn, campaign_id, unfinished, MessageStatus.SENT.value, NOW)


# ---------------------------------------------------------------------------------------------------------
# The checked transition
# ---------------------------------------------------------------------------------------------------------


def test_sources_are_the_table_read_backwards() -> None:
    for target in CampaignStatus:
        assert {s for s, targets in CAMPAIGN_TRANSITIONS.items() if target in targets} == SOURCES[target]
    assert SOURCES[CampaignStatus.DRAFT] == frozenset()  # nothing goes back to draft
    assert CampaignStatus.CANCELLED not in SOURCES[CampaignStatus.SENDING]


def test_every_move_of_the_table_is_allowed_and_every_other_refused(db: Database, tmp_path: Path) -> None:
    prepare(db, tmp_path, 1)
    for source in CampaignStatus:
        for target in CampaignStatus:
            campaign_id = force_status(db, "c", source)
            allowed = target in CAMPAIGN_TRANSITIONS[source]
            with db.write() as conn:
                assert transition(conn, campaign_id, target, now=NOW, strict=False) is allowed, (source, target)
            assert campaign_status(db, "c") is (target if allowed else source)
            if not allowed:
                force_status(db, "c", source)
                refused = f"^campaign c is {source}: it cannot become {target}$"
                with pytest.raises(TransitionRefusedError, match=refused), db.write() as conn:
                    transition(conn, campaign_id, target, now=NOW)
                assert campaign_status(db, "c") is source


def test_a_move_records_its_reason_and_only_from_narrows_it(db: Database, tmp_path: Path) -> None:
    prepare(db, tmp_path, 1)
    campaign_id = force_status(db, "c", CampaignStatus.SENDING)
    with db.write() as conn:
        # Resume is paused → sending only: a sending campaign is not "resumed" again.
        paused = {CampaignStatus.PAUSED}
        assert not transition(conn, campaign_id, CampaignStatus.SENDING, now=NOW, only_from=paused, strict=False)
        assert transition(conn, campaign_id, CampaignStatus.PAUSED, now=NOW, reason="speaker ill")
    details = get_campaign(db, "c").campaign
    assert (details.status, details.status_reason) == (CampaignStatus.PAUSED, "speaker ill")
    with db.write() as conn, pytest.raises(ValueError, match="a campaign cannot go from cancelled to sending"):
        transition(conn, campaign_id, CampaignStatus.SENDING, now=NOW, only_from={CampaignStatus.CANCELLED})


def test_a_move_from_a_status_changed_since_it_was_read_is_refused(db: Database, tmp_path: Path) -> None:
    # A worker read "sending" and decides to pause on its breaker; staff cancelled meanwhile: the pause is refused
    # by the database (the status is not what the worker read), the cancellation stands.
    settings = tuned(base_settings(tmp_path))
    prepare(db, tmp_path, 3)
    launch(db, settings, KEY, "c")
    campaign_id = get_campaign(db, "c").campaign.id
    assert get_campaign(db, "c").campaign.status is CampaignStatus.SENDING  # what the worker read
    force_status(db, "c", CampaignStatus.CANCELLED)
    with db.write() as conn:
        assert pause_sending(conn, campaign_id, "breaker", NOW) is None
    assert campaign_status(db, "c") is CampaignStatus.CANCELLED

    force_status(db, "c", CampaignStatus.SENDING)
    with db.write() as conn:
        assert pause_sending(conn, campaign_id, "breaker", NOW) == "c"
    assert get_campaign(db, "c").campaign.status_reason == "breaker"


def test_completion_waits_for_the_last_message_and_happens_once(db: Database, tmp_path: Path) -> None:
    settings = tuned(base_settings(tmp_path))
    prepare(db, tmp_path, 4)
    launch(db, settings, KEY, "c")
    campaign_id = get_campaign(db, "c").campaign.id
    sent = {CampaignStatus.SENDING}

    # Queued messages left: the conditional UPDATE itself refuses, whatever its caller believed.
    with db.write() as conn:
        done = transition(conn, campaign_id, CampaignStatus.SENT, now=NOW, only_from=sent, finished=True, strict=False)
        assert not done
        with pytest.raises(TransitionRefusedError, match=r"^campaign c still has messages or waves to send$"):
            transition(conn, campaign_id, CampaignStatus.SENT, now=NOW, only_from=sent, finished=True)
    assert finish_campaigns(db, NOW) == []
    assert campaign_status(db, "c") is CampaignStatus.SENDING

    send_everything(db, campaign_id)
    assert finish_campaigns(db, NOW) == ["c"]
    assert finish_campaigns(db, NOW) == []  # the next idle worker finds it sent already
    assert campaign_status(db, "c") is CampaignStatus.SENT


def test_two_idle_workers_finishing_at_once_mark_the_campaign_sent_once(db: Database, tmp_path: Path) -> None:
    settings = tuned(base_settings(tmp_path))
    prepare(db, tmp_path, 4)
    launch(db, settings, KEY, "c")
    send_everything(db, get_campaign(db, "c").campaign.id)
    start = threading.Barrier(4)
    finished: list[list[str]] = []

    def idle_worker() -> None:
        start.wait()
        finished.append(finish_campaigns(db, NOW))

    threads = [threading.Thread(target=idle_worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(finished) == [[], [], [], ["c"]]
    assert campaign_status(db, "c") is CampaignStatus.SENT


def test_only_the_transition_writes_a_campaigns_status() -> None:
    # One way to move a status: the store's conditional UPDATE is called from services/transitions.py alone.
    callers = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "campaign").rglob("*.py"))
        if re.search(r"\bchange_status\(", path.read_text())
    ]
    assert callers == ["campaign/services/transitions.py", "campaign/store/campaigns.py"]
    for path in (ROOT / "campaign").rglob("*.py"):
        assert "set_status(" not in path.read_text().replace("set_status_where(", ""), path
