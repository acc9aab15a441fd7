"""The built-in capture server: real SMTP in, one .eml file per message out, and `campaign mailbox`."""

from __future__ import annotations

import email
import email.policy
import email.utils
import smtplib
import socket
import threading
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner

from campaign.cli import cli
from campaign.mail.capture import CaptureServer, mailbox
from tests.conftest import cli_ok
from tests.test_delivery import TEMPLATES, write_contacts

DATE = email.utils.format_datetime(datetime(2030, 6, 28, 11, 30, tzinfo=UTC))


def message(to: str, subject: str, body: str = "Hello.\n") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Events team <invitations@example.org>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = DATE
    msg.set_content(body)
    return msg


def send_over_smtp(host: str, port: int, *messages: EmailMessage, rcpt: str | None = None) -> None:
    with smtplib.SMTP(host, port, timeout=5) as client:
        for msg in messages:
            client.send_message(msg, to_addrs=[rcpt] if rcpt else None)


def test_capture_server_receives_over_smtp_and_keeps_each_message(tmp_path: Path) -> None:
    directory = tmp_path / "mailbox" / "nested"
    with CaptureServer(directory) as capture:
        assert capture.host == "127.0.0.1"
        assert capture.port > 0
        send_over_smtp(
            capture.host,
            capture.port,
            message("Ana <ana@example.org>", "First"),
            message("bo@example.org", "Invitación — ¿vienes? ✓"),
        )
        send_over_smtp(
            capture.host, capture.port, message("Header To <shown@example.org>", "Third"), rcpt="real@example.net"
        )
        port = capture.port

    files = sorted(directory.iterdir())
    assert [f.suffix for f in files] == [".eml"] * 3, files  # nothing else: no temporary file left behind
    listed = mailbox(directory)
    assert [m.path for m in listed] == files
    assert [(m.to, m.subject) for m in listed] == [
        ("Ana <ana@example.org>", "First"),
        ("bo@example.org", "Invitación — ¿vienes? ✓"),
        ("Header To <shown@example.org>", "Third"),
    ]
    assert {m.date for m in listed} == {DATE}
    # The envelope is recorded like a delivering MTA would: who it was really for.
    third = files[2].read_bytes()
    assert third.startswith(b"X-Captured-From: invitations@example.org\r\nX-Captured-To: real@example.net\r\n")
    parsed = email.message_from_bytes(third, policy=email.policy.default)
    assert parsed["Subject"] == "Third"
    body = parsed.get_body(("plain",))
    assert body is not None
    assert body.get_content().rstrip() == "Hello."
    # Stopped means stopped.
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_mailbox_ignores_what_is_not_a_finished_message(tmp_path: Path) -> None:
    assert mailbox(tmp_path / "missing") == []
    (tmp_path / ".1700000000000000000-1-000001.eml.tmp").write_bytes(b"To: half@example.org\r\nSubj")
    (tmp_path / "notes.txt").write_text("not mail")
    assert mailbox(tmp_path) == []


def test_a_reader_never_sees_a_half_written_message(tmp_path: Path) -> None:
    # Large messages arrive while another thread keeps listing and reading the mailbox: every file it can
    # list is complete (written to a temporary name, then renamed).
    directory = tmp_path / "mailbox"
    count, stop = 15, threading.Event()
    problems: list[str] = []
    seen: set[Path] = set()

    def reader() -> None:
        while not stop.is_set():
            for captured in mailbox(directory):
                data = captured.path.read_bytes()
                if not data.rstrip().endswith(b"END-OF-MESSAGE"):
                    problems.append(f"{captured.path.name}: {len(data)} bytes, incomplete")
                seen.add(captured.path)

    with CaptureServer(directory) as capture:
        thread = threading.Thread(target=reader)
        thread.start()
        try:
            big = ("x" * 76 + "\n") * 4_000 + "END-OF-MESSAGE\n"
            send_over_smtp(
                capture.host, capture.port, *(message(f"p{i}@example.org", f"n{i}", big) for i in range(count))
            )
        finally:
            stop.set()
            thread.join()

    assert problems == []
    listed = mailbox(directory)
    assert [m.subject for m in listed] == [f"n{i}" for i in range(count)]
    assert seen, "the reader should have seen messages while they arrived"


# ---------------------------------------------------------------------------------------------------------
# The command line: `campaign mailbox`, and capture mode end to end
# ---------------------------------------------------------------------------------------------------------


def future_event_file(tmp_path: Path) -> Path:
    start = (datetime.now(UTC) + timedelta(days=10)).replace(microsecond=0, tzinfo=None)
    path = tmp_path / "summit.toml"
    path.write_text(
        'title = "Labour migration summit"\n'
        f"start = {start.isoformat()}\n"
        f"end = {(start + timedelta(hours=1)).isoformat()}\n"
        'timezone = "UTC"\n'
        'registration_url = "https://events.example.org/register"\n'
    )
    return path


def test_cli_mailbox_lists_and_shows_captured_messages(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[paths]\ntemplates = "{TEMPLATES}"\n[smtp]\nmailbox = "captured"\n')
    run = cli_ok(config)
    assert "0 messages in" in run("mailbox")
    with CaptureServer(tmp_path / "captured") as capture:
        send_over_smtp(
            capture.host,
            capture.port,
            message("ana@example.org", "Agenda for Friday"),
            message("bo@example.org", "Slides"),
        )

    listing = run("mailbox")
    assert "ana@example.org" in listing
    assert "Agenda for Friday" in listing
    assert "bo@example.org" in listing
    assert "Slides" in listing
    assert listing.index("Agenda for Friday") < listing.index("Slides")
    assert f"2 messages in {tmp_path / 'captured'}" in listing
    latest = run("mailbox", "--limit", "1")
    assert "Slides" in latest
    assert "Agenda for Friday" not in latest

    shown = run("mailbox", "--show", "1")
    assert "X-Captured-To: ana@example.org" in shown
    assert "Subject: Agenda for Friday" in shown
    assert "Hello." in shown
    assert "Slides" not in shown

    missing = CliRunner().invoke(cli, ["--config", str(config), "mailbox", "--show", "3"])
    assert missing.exit_code == 1
    assert "no message 3 (the mailbox has 2)" in missing.output


def test_capture_mode_end_to_end_test_send_launch_send_and_mailbox(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[paths]\ntemplates = "{TEMPLATES}"\n[smtp]\nmode = "capture"\nconcurrency = 2\n')
    emails = write_contacts(tmp_path / "guests.csv", 4)
    run = cli_ok(config)

    run("init")
    run("contacts", "import", str(tmp_path / "guests.csv"), "--list", "guests")
    run("events", "add", str(future_event_file(tmp_path)))
    # Only the invitation: with the default reminder waves the campaign stays sending until they fire.
    run("create", "--event", "summit", "--list", "guests", "--name", "summit", "--waves", "none")

    tested = run("test-send", "summit", "--to", "staff@example.org")
    assert "Sent a test of summit as guest000@example.org to staff@example.org: 250" in tested
    assert "Captured in" in tested
    assert "4 messages queued, 0 suppressed" in run("launch", "summit")
    sent = run("send")
    assert "Delivery: 4 sent" in sent
    assert "Campaign summit is sent." in sent

    captured = mailbox(tmp_path / "data" / "mailbox")
    assert len(captured) == 5
    assert captured[0].subject.startswith("[TEST] ")
    assert "staff@example.org" in captured[0].to
    assert sorted(m.to.rsplit("<", 1)[-1].rstrip(">") for m in captured[1:]) == emails
    assert not any(m.subject.startswith("[TEST]") for m in captured[1:])
    listing = run("mailbox")
    assert "5 messages in" in listing
    assert "[TEST]" in listing
