"""`campaign events update` and `cancel`: the calendar entry keeps its UID with SEQUENCE+1, the notice reaches
exactly the people the invitation reached, pending waves move or are cancelled, and both messages pass the strict
``ical`` parser with the MIME method equal to METHOD."""

from __future__ import annotations

import email.message
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from ical.calendar_stream import IcsCalendarStream
from sqlalchemy import insert, select, update

from campaign.cli import cli
from campaign.exceptions import ValidationError
from campaign.models import CampaignStatus, Contact, EventStatus, MessageStatus, WaveStatus
from campaign.render.filters import sentence
from campaign.render.localtime import plain, session_times
from campaign.render.personalise import RenderedMessage
from campaign.services.campaigns import create_campaign, get_campaign
from campaign.services.contacts import contact_details
from campaign.services.delivery_request import DeliveryRequest
from campaign.services.dispatch import Dispatcher
from campaign.services.events import cancel_event, get_event, update_event
from campaign.services.installation import installation_id
from campaign.services.lifecycle import finish_campaigns, retry_failed
from campaign.services.rendering import wave_renderer
from campaign.services.scheduling import fire_due, fire_times
from campaign.services.transitions import transition
from campaign.services.waves import WaveOptions, add_wave, edit_wave
from campaign.store.engine import Database
from campaign.store.tables import contacts, messages, suppressions, waves
from tests.test_delivery import KEY, Sink, base_settings, pipelining_smtp, send
from tests.test_scheduling import ZURICH, add_contacts, campaign_with, event_values, launch_at, recipients

__all__ = ["pipelining_smtp"]  # a fixture used here

INVITED = ["reached@example.org", "also@example.org"]
QUEUED = "later@example.org"  # invitation still waiting: it will carry the new details itself
SUPPRESSED = "gone@example.org"  # suppressed before the invitation
UNSUBSCRIBED = "left@example.org"  # invited, then unsubscribed


def wave_row(db: Database, name: str, campaign: str = "c") -> dict[str, object]:
    (wave,) = [w for w in get_campaign(db, campaign).waves if w.name == name]
    return {"status": wave.status.value, "audience": wave.audience.value, "kind": wave.kind.value,
            "template": wave.template, "expires_at": wave.expires_at}  # fmt: skip


def talk(start: datetime, **changes: Any) -> dict[str, Any]:
    """The values of `events update` for event ``talk`` (as test_scheduling.add_event_at makes it)."""
    return event_values(start, **changes)


def set_status(db: Database, wave: str, address: str, status: MessageStatus) -> None:
    person = select(contacts.c.id).where(contacts.c.email == address).scalar_subquery()
    wave_id = select(waves.c.id).where(waves.c.name == wave).scalar_subquery()
    with db.write() as conn:
        conn.execute(
            update(messages)
            .where(messages.c.wave_id == wave_id, messages.c.contact_id == person)
            .values(status=status.value)
        )


def suppress(db: Database, address: str) -> None:
    with db.write() as conn:
        conn.execute(
            insert(suppressions).values(email_key=address, reason="unsubscribed", created_at=datetime.now(UTC))
        )


def invited_campaign(db: Database, tmp_path: Path) -> tuple[datetime, datetime]:
    """Campaign ``c`` launched an hour ago for an event in ten days, with a -1d reminder; the invitation reached
    INVITED and UNSUBSCRIBED (who then unsubscribed), waits for QUEUED, was suppressed for SUPPRESSED.
    Returns (launch, event start)."""
    settings = base_settings(tmp_path)
    now = datetime.now(UTC)
    start = (now + timedelta(days=10)).replace(second=0, microsecond=0)
    people = dict.fromkeys([*INVITED, QUEUED, SUPPRESSED, UNSUBSCRIBED], ZURICH)
    suppress(db, SUPPRESSED)
    campaign_with(db, tmp_path, start, ["reminder-1d reminder -1d all"], people)
    launched = now - timedelta(hours=1)
    launch_at(db, settings, launched)
    for address in [*INVITED, UNSUBSCRIBED]:
        set_status(db, "invitation", address, MessageStatus.SENT)
    suppress(db, UNSUBSCRIBED)
    return launched, start


def test_an_update_reaches_exactly_those_invited_and_moves_the_reminders(db: Database, tmp_path: Path) -> None:
    settings = base_settings(tmp_path)
    _, start = invited_campaign(db, tmp_path)
    # Another campaign of the event, never launched, and a list member who joined after the invitation fired.
    create_campaign(db, event_ref="talk", list_name="guests", name="draft")
    add_contacts(db, tmp_path, {"newcomer@example.org": ""})
    assert {t.wave: t.fires_at for t in fire_times(db)} == {"reminder-1d": start - timedelta(days=1)}
    before = get_event(db, "talk")

    moved = start + timedelta(days=1, hours=2)
    change = update_event(db, settings, "talk", talk(moved))

    assert change.event.sequence == before.sequence + 1 == 1
    assert change.event.id == before.id  # so the same calendar UID (render.identifiers.event_uid)
    assert change.event.calendar_uid == before.calendar_uid
    assert change.event.starts_at == moved
    assert set(change.changed) == {"starts_at", "ends_at"}
    by_campaign = {n.campaign: n for n in change.campaigns}
    assert (by_campaign["c"].wave, by_campaign["c"].queued, by_campaign["c"].suppressed) == ("update-1", 2, 1)
    assert by_campaign["draft"].wave is None  # a draft gets nothing
    got = recipients(db, "update-1")
    assert {a: s for a, (s, _, _) in got.items()} == {
        INVITED[0]: "queued",
        INVITED[1]: "queued",
        UNSUBSCRIBED: "suppressed",
    }
    assert wave_row(db, "update-1")["audience"] == "invited"
    assert wave_row(db, "update-1")["kind"] == "update"
    # The pending reminder moved with the event; the fired invitation now expires at the new start.
    assert {t.wave: t.fires_at for t in fire_times(db)} == {"reminder-1d": moved - timedelta(days=1)}
    assert wave_row(db, "invitation")["expires_at"] == moved
    assert [w.name for w in get_campaign(db, "draft").waves] == ["invitation"]


def test_a_change_of_title_only_raises_no_sequence_and_sends_nothing(db: Database, tmp_path: Path) -> None:
    settings = base_settings(tmp_path)
    _, start = invited_campaign(db, tmp_path)
    change = update_event(db, settings, "talk", talk(start, title="A better talk"))
    assert change.event.sequence == 0
    assert change.event.title == "A better talk"
    assert change.campaigns == []
    assert update_event(db, settings, "talk", talk(start, title="A better talk")).changed == ()


def test_a_sent_campaign_sends_the_update_again(db: Database, tmp_path: Path) -> None:
    settings = base_settings(tmp_path)
    _, start = invited_campaign(db, tmp_path)
    with db.write() as conn:
        transition(conn, get_campaign(db, "c").campaign.id, CampaignStatus.SENT, now=start)
    update_event(db, settings, "talk", talk(start, join_url="https://events.example.org/elsewhere"))
    assert get_campaign(db, "c").campaign.status is CampaignStatus.SENDING
    assert set(recipients(db, "update-1")) == {*INVITED, UNSUBSCRIBED}


def test_a_cancellation_reaches_those_invited_and_cancels_the_rest(db: Database, tmp_path: Path) -> None:
    settings = base_settings(tmp_path)
    invited_campaign(db, tmp_path)
    create_campaign(db, event_ref="talk", list_name="guests", name="draft")
    change = cancel_event(db, settings, "talk")

    assert change.event.status is EventStatus.CANCELLED
    assert change.event.sequence == 1
    got = recipients(db, "cancellation")
    assert {a: s for a, (s, _, _) in got.items()} == {
        INVITED[0]: "queued",
        INVITED[1]: "queued",
        UNSUBSCRIBED: "suppressed",
    }
    assert wave_row(db, "cancellation")["template"] == "cancellation"
    assert wave_row(db, "reminder-1d")["status"] == WaveStatus.CANCELLED.value
    assert recipients(db, "invitation")[QUEUED][0] == MessageStatus.CANCELLED.value  # never sent now
    assert change.cancelled_messages == 1
    assert get_campaign(db, "draft").campaign.status is CampaignStatus.CANCELLED
    assert fire_times(db) == []


def test_cancelled_campaigns_end_once_the_notice_is_sent(db: Database, tmp_path: Path, pipelining_smtp: Sink) -> None:
    settings = base_settings(tmp_path)
    invited_campaign(db, tmp_path)
    set_status(db, "invitation", QUEUED, MessageStatus.SENT)
    assert finish_campaigns(db, datetime.now(UTC)) == []  # the reminder is still pending
    cancel_event(db, settings, "talk")
    assert get_campaign(db, "c").campaign.status is CampaignStatus.SENDING
    summary = send(db, settings, pipelining_smtp.servers())
    assert sorted(pipelining_smtp.handler.received()) == sorted([*INVITED, QUEUED])
    assert summary.finished == ["c"]
    assert get_campaign(db, "c").campaign.status is CampaignStatus.SENT
    assert wave_row(db, "cancellation")["status"] == WaveStatus.DONE.value


def calendar_parts(message: email.message.EmailMessage) -> list[tuple[str, bytes]]:
    """(MIME method= parameter, bytes) of each calendar part: the text/calendar alternative and the attachment."""
    found = []
    for part in message.walk():
        if part.get_content_type() in ("text/calendar", "application/ics"):
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            found.append((str(part.get_param("method")), payload))
    assert [m for m, _ in found].count("None") == 1  # only the attachment lacks method=
    return found


@pytest.mark.parametrize("method", ["PUBLISH", "REQUEST"])
def test_update_and_cancellation_pass_the_strict_parser_with_the_same_uid(
    db: Database, tmp_path: Path, pipelining_smtp: Sink, method: str
) -> None:
    settings = base_settings(tmp_path)
    settings = replace(settings, render=replace(settings.render, calendar_method=method))
    _, start = invited_campaign(db, tmp_path)
    address = INVITED[0]
    set_status(db, "invitation", address, MessageStatus.QUEUED)
    send(db, settings, pipelining_smtp.servers())  # the invitation, as first sent
    moved = start + timedelta(hours=3)
    update_event(db, settings, "talk", talk(moved))
    send(db, settings, pipelining_smtp.servers())
    cancel_event(db, settings, "talk")
    send(db, settings, pipelining_smtp.servers())

    sent = pipelining_smtp.handler.messages_for(address)
    assert [m["Subject"].split(":")[0] for m in sent[1:]] == ["Moved", "Cancelled"]
    seen = []
    for message, (expected_method, sequence, status) in zip(
        sent, [(method, 0, "CONFIRMED"), (method, 1, "CONFIRMED"), ("CANCEL", 2, "CANCELLED")], strict=True
    ):
        parts = calendar_parts(message)
        assert parts, message
        for mime_method, ics in parts:
            assert mime_method in (expected_method, "None")  # the attachment carries none
            text = ics.decode("utf-8")
            assert f"METHOD:{expected_method}\r\n" in text
            calendar = IcsCalendarStream.calendar_from_ics(text)  # strict: raises on anything wrong
            (vevent,) = calendar.events
            assert vevent.sequence == sequence
            assert vevent.status is not None
            assert vevent.status.value == status
            seen.append(vevent.uid)
        if sequence == 1:
            assert vevent.dtstart == moved
    assert len(set(seen)) == 1


@pytest.mark.parametrize("method", ["PUBLISH", "REQUEST"])
def test_a_cancellation_names_its_recipient_as_attendee_where_the_invitations_did(
    db: Database, tmp_path: Path, pipelining_smtp: Sink, method: str
) -> None:
    """RFC 5546 3.2.5: a CANCEL of the whole event includes the attendees, and Outlook and Google match it to the
    entry a REQUEST made by UID and attendee. Under PUBLISH there is no attendee: one calendar for everyone."""
    settings = base_settings(tmp_path)
    settings = replace(settings, render=replace(settings.render, calendar_method=method))
    invited_campaign(db, tmp_path)
    cancel_event(db, settings, "talk")
    send(db, settings, pipelining_smtp.servers())

    sequence = get_event(db, "talk").sequence
    calendars = {}
    for address in INVITED:
        (message,) = pipelining_smtp.handler.messages_for(address)
        parts = calendar_parts(message)
        assert {mime_method for mime_method, _ in parts} == {"CANCEL", "None"}  # the attachment carries none
        (ics,) = {ics for _, ics in parts}  # the alternative and the attachment are the same calendar
        calendar = IcsCalendarStream.calendar_from_ics(ics.decode("utf-8"))  # strict: raises on anything wrong
        assert "METHOD:CANCEL\r\n" in ics.decode("utf-8")
        (vevent,) = calendar.events
        assert (vevent.sequence, vevent.status.value if vevent.status else None) == (sequence, "CANCELLED")
        attendees = [attendee.uri for attendee in vevent.attendees]
        assert attendees == ([f"mailto:{address}"] if method == "REQUEST" else [])
        calendars[address] = (vevent.uid, ics)
    assert len({uid for uid, _ in calendars.values()}) == 1
    # PUBLISH: the very same bytes for everyone, built once for the wave; REQUEST: each recipient's own.
    assert len({ics for _, ics in calendars.values()}) == (1 if method == "PUBLISH" else len(INVITED))


def test_a_long_running_worker_renders_the_event_as_it_now_stands(db: Database, tmp_path: Path) -> None:
    settings = base_settings(tmp_path)
    _, start = invited_campaign(db, tmp_path)
    dispatcher = Dispatcher(DeliveryRequest(db, settings, KEY, []))
    (wave,) = [w for w in get_campaign(db, "c").waves if w.name == "invitation"]
    dispatcher._forget_stale_renderers([wave])
    assert dispatcher._renderer(wave).event.starts_at == start
    moved = start + timedelta(days=2)
    update_event(db, settings, "talk", talk(moved))
    dispatcher._forget_stale_renderers([wave])
    renderer = dispatcher._renderer(wave)
    assert (renderer.event.starts_at, renderer.event.sequence) == (moved, 1)


# ---------------------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------------------


def run(config: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def write_event(path: Path, slug: str, start: str) -> Path:
    path.write_text(
        f'slug = "{slug}"\ntitle = "A talk"\nstart = {start}\nend = {start[:11]}23:00:00\n'
        'timezone = "Europe/Zurich"\njoin_url = "https://events.example.org/join"\n',
        encoding="utf-8",
    )
    return path


def one_line_error(result: Any, *words: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.output.count("\n") == 1, result.output
    assert result.output.startswith("Error: ")
    for word in words:
        assert word in result.output, result.output


def test_cli_update_and_cancel(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[database]\nurl = "sqlite:///data/c.db"\n[paths]\ndata = "data"\n')
    assert run(config, "init").exit_code == 0
    year = datetime.now(UTC).year + 1
    event = write_event(tmp_path / "talk.toml", "talk", f"{year}-06-01T10:00:00")
    assert run(config, "events", "add", str(event)).exit_code == 0

    one_line_error(run(config, "events", "update", "nope", str(event)), "no event 'nope'")
    one_line_error(run(config, "events", "cancel", "nope"), "no event 'nope'")
    other = write_event(tmp_path / "other.toml", "other", f"{year}-06-01T10:00:00")
    one_line_error(run(config, "events", "update", "talk", str(other)), "'other'", 'slug = "talk"')
    one_line_error(run(config, "events", "update", "talk", str(tmp_path / "missing.toml")), "missing.toml")

    moved = write_event(tmp_path / "talk.toml", "talk", f"{year}-06-02T10:00:00")
    updated = run(config, "events", "update", "talk", str(moved))
    assert updated.exit_code == 0, updated.output
    assert "sequence 1" in updated.output
    assert f"{year}-06-02 10:00" in updated.output

    cancelled = run(config, "events", "cancel", "talk")
    assert cancelled.exit_code == 0, cancelled.output
    assert "Cancelled event talk (sequence 2)" in cancelled.output
    assert "cancelled, sequence 2" in run(config, "events", "show", "talk").output
    one_line_error(run(config, "events", "cancel", "talk"), "already cancelled")
    one_line_error(run(config, "events", "update", "talk", str(moved)), "already cancelled")


def test_no_wave_is_added_to_a_cancelled_events_campaign(db: Database, tmp_path: Path) -> None:
    settings = base_settings(tmp_path)
    invited_campaign(db, tmp_path)
    cancel_event(db, settings, "talk")
    with pytest.raises(ValidationError, match="cancelled"):
        add_wave(db, settings, "c", "late", WaveOptions(kind="reminder", at="-1h"))


def test_the_update_notice_says_what_changed_in_each_recipients_zone_and_language(db: Database, tmp_path: Path) -> None:
    settings = base_settings(tmp_path)
    _, start = invited_campaign(db, tmp_path)
    moved = start + timedelta(days=1, hours=2)
    update_event(db, settings, "talk", talk(moved))
    update_event(db, settings, "talk", talk(moved, join_url="https://events.example.org/join-here"))

    details = get_campaign(db, "c")
    notices = {w.name: w for w in details.waves if w.name.startswith("update-")}
    assert notices["update-1"].event_before is not None
    assert notices["update-1"].event_before.starts_at == start  # read back from the database
    assert notices["update-1"].event_before.changed == ("starts_at", "ends_at")
    assert notices["update-2"].event_before is not None
    assert notices["update-2"].event_before.changed == ("join_url",)
    manila = replace(contact_details(db, INVITED[0]).contact, timezone="Asia/Manila")
    spanish = replace(manila, timezone="America/Bogota", locale="es-CO")  # times end "a. m." or "p. m."

    def render(wave: str, contact: Contact) -> RenderedMessage:
        return wave_renderer(settings, KEY, details, notices[wave], installation_id(db)).render(contact)

    moved_en = render("update-1", manila)
    was = session_times(start, start + timedelta(hours=1), "Asia/Manila", ZURICH, "en").when
    now_ = session_times(moved, moved + timedelta(hours=1), "Asia/Manila", ZURICH, "en").when
    assert moved_en.subject.startswith("Moved: A talk")
    assert f"It was planned for {plain(was)}." in moved_en.text
    assert plain(now_) in moved_en.text
    assert f"It was planned for {was}." in moved_en.html
    moved_es = render("update-1", spanish)
    was_es = session_times(start, start + timedelta(hours=1), "America/Bogota", ZURICH, "es-CO").when
    assert was_es.endswith(".")
    assert moved_es.subject.startswith("Nueva fecha: A talk")
    assert f"Estaba prevista para el {sentence(plain(was_es))}" in moved_es.text
    # A Spanish time may end "a. m.": one full stop, not two (a new user's review read "a. m..").
    assert ".." not in moved_es.text
    assert ".." not in moved_es.html
    assert "La sesión cambia de horario" in moved_es.text  # not "de fecha": the day may be the same
    # A recipient without a zone sees the organiser's time and UTC: never "in your time zone", and the UTC line
    # right after the new time, not after the old one (it read as part of it).
    nowhere = replace(manila, timezone=None)
    fallback = render("update-1", nowhere)
    assert "in your time zone" not in fallback.text
    assert "in your time zone" not in fallback.html
    new_utc = session_times(moved, moved + timedelta(hours=1), None, ZURICH, "en").utc_line_plain
    assert fallback.text.index(f"({new_utc})") < fallback.text.index("It was planned for")
    assert "The new time, in your time zone:" in moved_en.text
    link_only = render("update-2", manila)
    assert link_only.subject.startswith("Updated: A talk")
    assert "It was planned" not in link_only.text
    assert "The link to join the session has changed" in link_only.text


def test_a_fired_reminder_still_waiting_goes_at_the_new_time_in_each_zones_window(db: Database, tmp_path: Path) -> None:
    settings = base_settings(tmp_path)
    now = datetime.now(UTC)
    start = (now + timedelta(days=10)).replace(hour=12, minute=0, second=0, microsecond=0)  # 20:00 in Manila
    people = {"manila@example.org": "Asia/Manila", "zurich@example.org": ZURICH}
    campaign_with(db, tmp_path, start, ["reminder-1d reminder -1d all"], people, window="09:00-17:00")
    launch_at(db, settings, now)
    fired_at = start - timedelta(days=1)
    # The reminder fires at its time: Zurich (13:00) at once, Manila (20:00) at 09:00 the next day.
    fire_due(db, settings, fired_at)
    before = recipients(db, "reminder-1d")
    assert before["zurich@example.org"][:2] == ("queued", fired_at)
    assert before["manila@example.org"][:2] == ("queued", start - timedelta(hours=11))
    set_status(db, "reminder-1d", "zurich@example.org", MessageStatus.SENT)

    moved = start + timedelta(days=2, hours=6)  # the reminder's new time: 18:00 UTC, 02:00 in Manila
    update_event(db, settings, "talk", talk(moved), now=fired_at + timedelta(minutes=1))

    after = recipients(db, "reminder-1d")
    assert after["manila@example.org"][:2] == ("queued", moved - timedelta(days=1) + timedelta(hours=7))
    assert after["zurich@example.org"][:2] == ("sent", fired_at)  # sent is sent
    assert wave_row(db, "reminder-1d")["expires_at"] == moved


@pytest.mark.parametrize("days", [15, -5], ids=["postponed", "brought-forward"])
def test_a_done_invitations_expiry_follows_the_moved_event(db: Database, tmp_path: Path, days: int) -> None:
    # Its expiry stayed at the old start: once that passed, a postponed event's newcomers were never invited,
    # and an event brought forward had them invited after its new start (a review's reproduction).
    settings = base_settings(tmp_path)
    launched = datetime.now(UTC)
    start = (launched + timedelta(days=10)).replace(hour=12, minute=0, second=0, microsecond=0)  # 13:00 in Zurich
    campaign_with(db, tmp_path, start, [], {"p0@example.org": ZURICH}, window="09:00-10:00")
    launch_at(db, settings, launched)
    with db.write() as conn:  # as if the invitation went out
        conn.execute(update(messages).values(status=MessageStatus.SENT.value))
        conn.execute(update(waves).values(status=WaveStatus.DONE.value))
    moved = start + timedelta(days=days)
    update_event(db, settings, "talk", talk(moved), now=launched + timedelta(minutes=1))
    assert wave_row(db, "invitation")["status"] == "done"
    assert wave_row(db, "invitation")["expires_at"] == moved
    add_contacts(db, tmp_path, {"late@example.org": ZURICH})
    if days > 0:  # after the old start: the newcomer is still invited, in the next morning's window
        fired = [(f.wave, f.queued) for f in fire_due(db, settings, start + timedelta(hours=1)) if f.topped_up]
        assert fired == [("invitation", 1)]
        assert recipients(db, "invitation")["late@example.org"][:2] == ("queued", start + timedelta(hours=20))
    else:  # two hours before the new start, past its day's window: the next one is after it, so not invited
        fire_due(db, settings, moved - timedelta(hours=2))
        status, at, _ = recipients(db, "invitation").get("late@example.org", ("absent", None, None))
        assert status != "queued", f"invited for {at}, after the session began at {moved}"


def test_a_retry_after_the_event_is_cancelled_retries_only_the_cancellation_notice(
    db: Database, tmp_path: Path
) -> None:
    # `campaign retry --failed` queued a given-up invitation again after the cancellation: the worker then sent
    # an invitation to a cancelled event after its cancellation notice (a review's reproduction).
    settings = base_settings(tmp_path)
    invited_campaign(db, tmp_path)
    set_status(db, "invitation", QUEUED, MessageStatus.EXPIRED)  # outside its send window, say
    cancel_event(db, settings, "talk")
    set_status(db, "cancellation", INVITED[0], MessageStatus.FAILED)
    assert retry_failed(db, "c") == 1
    assert recipients(db, "invitation")[QUEUED][0] == MessageStatus.EXPIRED.value
    assert recipients(db, "cancellation")[INVITED[0]][0] == MessageStatus.QUEUED.value


def test_a_wave_moved_after_the_launch_to_a_time_already_passed_fires_it_is_not_skipped(
    db: Database, tmp_path: Path
) -> None:
    # The launch skips a wave planned before it whose time had passed; it read the wave's creation time, so a
    # wave moved after the launch to a past time (an edit, its event moved earlier) was marked missed "its time
    # had passed when the campaign was launched", which was not so (a review's reproduction), where a wave added
    # with that time fires at once.
    settings = base_settings(tmp_path)
    start = (datetime.now(UTC) + timedelta(days=10)).replace(second=0, microsecond=0)
    campaign_with(db, tmp_path, start, ["early reminder -5d all", "mid reminder -3d all", "old reminder -12d all"],
                  {"p0@example.org": ZURICH})  # fmt: skip
    fired = {f.wave: f for f in launch_at(db, settings, datetime.now(UTC))}
    assert fired["old"].status is WaveStatus.MISSED  # planned before the launch, its time passed: skipped
    edit_wave(db, settings, "c", "mid", WaveOptions(at="-11d"))  # a day before the launch
    assert {f.wave: f.status for f in fire_due(db, settings, datetime.now(UTC))} == {"mid": WaveStatus.ENQUEUED}
    # The event brought forward six days: early (-5d) now falls a day before the launch.
    update_event(db, settings, "talk", talk(start - timedelta(days=6)), now=datetime.now(UTC))
    assert wave_row(db, "early")["status"] == WaveStatus.ENQUEUED.value
    assert list(recipients(db, "early")) == ["p0@example.org"]


def test_two_updates_before_the_first_notice_goes_send_one_notice_from_what_recipients_knew(
    db: Database, tmp_path: Path
) -> None:
    # A paused campaign's update notice waits; a second update added another: on resume two "Moved" notices went,
    # the second saying the event had been at the first update's time, which nobody was told of (a review's
    # reproduction). Now the unsent notice is replaced by one from what recipients last knew.
    settings = base_settings(tmp_path)
    _, start = invited_campaign(db, tmp_path)
    with db.write() as conn:
        transition(conn, get_campaign(db, "c").campaign.id, CampaignStatus.PAUSED, now=datetime.now(UTC))
    update_event(db, settings, "talk", talk(start + timedelta(days=1)))
    change = update_event(db, settings, "talk", talk(start + timedelta(days=2)))
    (notice,) = [w for w in get_campaign(db, "c").waves if w.kind.value == "update"]
    assert notice.status is WaveStatus.PENDING
    assert notice.event_before is not None
    assert (notice.event_before.starts_at, notice.event_before.changed) == (start, ("starts_at", "ends_at"))
    assert change.campaigns[0].wave == notice.name
    # Moved back to where recipients last knew it: no notice at all.
    change = update_event(db, settings, "talk", talk(start))
    assert [w for w in get_campaign(db, "c").waves if w.kind.value == "update"] == []
    assert "no notice" in change.campaigns[0].note


def test_no_campaign_is_created_for_a_cancelled_event(db: Database, tmp_path: Path) -> None:
    # A campaign made after the cancellation was launched and sent everyone an ordinary invitation (a review's
    # reproduction through the pages): the cancellation had cancelled only the drafts that existed then.
    settings = base_settings(tmp_path)
    invited_campaign(db, tmp_path)
    cancel_event(db, settings, "talk")
    with pytest.raises(ValidationError, match="event talk is cancelled: no campaign can invite to it"):
        create_campaign(db, event_ref="talk", list_name="guests", name="late")
