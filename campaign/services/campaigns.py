"""Creating and reading campaigns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection

from campaign.exceptions import AlreadyExistsError, NotFoundError, ValidationError
from campaign.models import Audience, Campaign, CampaignStatus, Event, Wave, WaveKind, WaveStatus
from campaign.rules.contact_fields import clean_text
from campaign.rules.references import MAX_NAME_LENGTH, refuse_all_digit_name, refuse_long_name
from campaign.store import campaigns as campaign_store
from campaign.store import events as event_store
from campaign.store import lists as list_store
from campaign.store.engine import Database


@dataclass(frozen=True, slots=True)
class CampaignDetails:
    """A campaign with its event and waves."""

    campaign: Campaign
    event: Event
    waves: list[Wave]


def create_campaign(
    db: Database, *, event_ref: str, list_name: str, name: str | None = None, template_dir: Path | None = None
) -> CampaignDetails:
    """A draft campaign for an event and a list, with its invitation wave."""
    if template_dir is not None and not template_dir.is_dir():
        raise ValidationError(f"template directory {template_dir} does not exist")
    now = datetime.now(UTC)
    with db.write() as conn:
        event = event_store.find(conn, event_ref)
        if event is None:
            raise NotFoundError(f"no event {event_ref!r} (see `campaign events list`)")
        contact_list = list_store.find(conn, list_name)
        if contact_list is None:
            raise NotFoundError(f"no list {list_name!r} (see `campaign lists`)")
        # The default is cut to fit (an event slug and a list name may both be long); a name given is refused.
        name = clean_text(name) or f"{event.slug}-{contact_list.name}"[:MAX_NAME_LENGTH]
        refuse_long_name(name, what="the campaign name")
        refuse_all_digit_name(name, what="campaign name", thing="a campaign", fix="give a name with a letter in it")
        if campaign_store.find(conn, name) is not None:
            raise AlreadyExistsError(f"a campaign named {name!r} already exists")
        campaign_id = campaign_store.insert_campaign(
            conn,
            {
                "name": name,
                "event_id": event.id,
                "list_id": contact_list.id,
                "template_dir": str(template_dir.resolve()) if template_dir else None,
                "status": CampaignStatus.DRAFT.value,
            },
            now,
        )
        campaign_store.insert_wave(
            conn,
            {
                "campaign_id": campaign_id,
                "name": "invitation",
                "kind": WaveKind.INVITATION.value,
                "template": "invitation",
                "audience": Audience.ALL.value,
                "status": WaveStatus.PENDING.value,
            },
            now,
        )
    return get_campaign(db, str(campaign_id))


def find_campaign(conn: Connection, ref: str) -> Campaign:
    """The campaign ``ref`` names (name or id, see :mod:`campaign.rules.references`); raises
    :class:`NotFoundError` saying where to look."""
    campaign = campaign_store.find(conn, ref)
    if campaign is None:
        raise NotFoundError(f"no campaign {ref!r} (see `campaign list`)")
    return campaign


def get_campaign(db: Database, ref: str) -> CampaignDetails:
    """A campaign by name or id, with its event and waves; raises :class:`NotFoundError`."""
    with db.read() as conn:
        campaign = find_campaign(conn, ref)
        event = event_store.find(conn, str(campaign.event_id))
        assert event is not None
        return CampaignDetails(campaign, event, campaign_store.waves_of(conn, campaign.id))


def list_campaigns(db: Database) -> list[Campaign]:
    """Every campaign, newest first."""
    with db.read() as conn:
        return campaign_store.all_campaigns(conn)
