"""Creating and reading campaigns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from campaign.config import INVITATION_WAVE
from campaign.exceptions import AlreadyExistsError, NotFoundError, ValidationError
from campaign.models import Audience, Campaign, CampaignStatus, Event, EventStatus, Wave, WaveKind, WaveStatus
from campaign.rules.contact_fields import clean_text
from campaign.rules.references import MAX_NAME_LENGTH, refuse_all_digit_name, refuse_long_name
from campaign.rules.timing import format_window
from campaign.rules.wave_specs import WaveSpec
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


def wave_values(
    spec: WaveSpec,
    *,
    window: str = "",
    template: str | None = None,
    subject: str | None = None,
    expires_at: datetime | None = None,
    expires_offset: timedelta | None = None,
) -> dict[str, Any]:
    """The ``waves`` columns of a wave written as ``spec``: its template is its kind's unless given, its send
    window its own, else ``window`` (the configured default; empty: none)."""
    return {
        "name": spec.name,
        "kind": spec.kind.value,
        "template": template or spec.kind.value,
        "subject": subject,
        "audience": spec.audience.value,
        "offset_seconds": None if spec.offset is None else int(spec.offset.total_seconds()),
        "send_at": spec.send_at,
        "window": format_window(spec.window) if spec.window else (window or None),
        "expires_at": expires_at,
        "expires_offset_seconds": None if expires_offset is None else int(expires_offset.total_seconds()),
    }


def invitation_spec() -> WaveSpec:
    """Every campaign's first wave: the invitation, to all, at launch."""
    return WaveSpec(INVITATION_WAVE, WaveKind.INVITATION, None, None, Audience.ALL)


def create_campaign(
    db: Database,
    *,
    event_ref: str,
    list_name: str,
    name: str | None = None,
    template_dir: Path | None = None,
    waves: Sequence[WaveSpec] = (),
    window: str = "",
) -> CampaignDetails:
    """A draft campaign for an event and a list, with its invitation wave (at launch) and ``waves``;
    ``window`` is the send window of those that give none. ``campaign create`` goes through
    :func:`campaign.services.waves.create_with_waves`, which also checks the configured default waves."""
    with db.write() as conn:
        campaign_id = write_campaign(
            conn,
            event_ref=event_ref,
            list_name=list_name,
            name=name,
            template_dir=template_dir,
            waves=waves,
            window=window,
            now=datetime.now(UTC),
        )
    return get_campaign(db, str(campaign_id))


def write_campaign(
    conn: Connection,
    *,
    event_ref: str,
    list_name: str,
    name: str | None,
    template_dir: Path | None,
    waves: Sequence[WaveSpec],
    window: str,
    now: datetime,
    track_opens: bool = True,
    track_clicks: bool = True,
) -> int:
    """:func:`create_campaign` in the caller's transaction, so that a check of the waves written can still roll
    the whole campaign back; returns its id. ``track_opens`` / ``track_clicks``: whether its messages carry an
    open pixel and tracked links (privacy, per campaign)."""
    names = [INVITATION_WAVE, *(spec.name for spec in waves)]
    if len(set(names)) < len(names):
        raise ValidationError(f"wave names must differ (the first is always {INVITATION_WAVE!r}): {', '.join(names)}")
    if template_dir is not None and not template_dir.is_dir():
        raise ValidationError(f"template directory {template_dir} does not exist")
    event = event_store.find(conn, event_ref)
    if event is None:
        raise NotFoundError(f"no event {event_ref!r} (see `campaign events list`)", field="event")
    if event.status is EventStatus.CANCELLED:
        # Its drafts were cancelled with it; a new one would invite people to what is not happening.
        raise ValidationError(f"event {event.slug} is cancelled: no campaign can invite to it", field="event")
    contact_list = list_store.find(conn, clean_text(list_name) or list_name)  # as an import names it
    if contact_list is None:
        raise NotFoundError(f"no list {list_name!r} (see `campaign lists`)", field="list")
    # The default is cut to fit (an event slug and a list name may both be long); a name given is refused.
    name = clean_text(name) or f"{event.slug}-{contact_list.name}"[:MAX_NAME_LENGTH]
    try:
        refuse_long_name(name, what="the campaign name")
        refuse_all_digit_name(name, what="campaign name", thing="a campaign", fix="give a name with a letter in it")
    except ValidationError as exc:
        raise ValidationError(str(exc), field="name") from None
    if campaign_store.find(conn, name) is not None:
        raise AlreadyExistsError(f"a campaign named {name!r} already exists", field="name")
    campaign_id = campaign_store.insert_campaign(
        conn,
        {
            "name": name,
            "event_id": event.id,
            "list_id": contact_list.id,
            "template_dir": str(template_dir.resolve()) if template_dir else None,
            "status": CampaignStatus.DRAFT.value,
            "track_opens": track_opens,
            "track_clicks": track_clicks,
        },
        now,
    )
    for spec in (invitation_spec(), *waves):
        values = wave_values(spec, window=window)
        values |= {"campaign_id": campaign_id, "status": WaveStatus.PENDING.value}
        campaign_store.insert_wave(conn, values, now)
    return campaign_id


def find_campaign(conn: Connection, ref: str) -> Campaign:
    """The campaign ``ref`` names (name or id, see :mod:`campaign.rules.references`); raises
    :class:`NotFoundError` saying where to look."""
    campaign = campaign_store.find(conn, ref)
    if campaign is None:
        raise NotFoundError(f"no campaign {ref!r} (see `campaign list`)")
    return campaign


def no_such_wave(campaign: Campaign, name: str, known: Sequence[str]) -> NotFoundError:
    """The refusal of a wave ``name`` that ``campaign`` lacks, naming the waves it has (``known``): worded for the
    command line and the web pages alike, no command to run."""
    has = f"its waves: {', '.join(known)}" if known else "it has no wave"
    return NotFoundError(f"campaign {campaign.name} has no wave {name!r} ({has})")


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
