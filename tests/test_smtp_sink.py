"""The lean SMTP server of the scale tests (tests/smtp_sink.py) speaks SMTP: checked with two real clients, the
standard library's ``smtplib`` (one command at a time) and campaign's own (pipelined)."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Iterator

import pytest

from campaign.mail.smtp import ServerChooser, SmtpConnection, SmtpServer
from campaign.models import SmtpSecurity
from tests.smtp_sink import LeanSmtp


@pytest.fixture
def lean() -> Iterator[LeanSmtp]:
    server = LeanSmtp().start()
    try:
        yield server
    finally:
        server.stop()


def test_one_command_at_a_time_with_dot_stuffing_and_commands_out_of_order_refused(lean: LeanSmtp) -> None:
    with smtplib.SMTP("127.0.0.1", lean.port, timeout=5) as client:
        assert client.docmd("MAIL", "FROM:<a@example.org>")[0] == 503, "no MAIL before EHLO/HELO"
        code, features = client.ehlo("client.example")
        assert code == 250
        assert b"PIPELINING" in features
        assert b"8BITMIME" in features
        assert client.docmd("RCPT", "TO:<x@example.org>")[0] == 503, "no RCPT before MAIL"
        assert client.docmd("DATA")[0] == 503, "no DATA before RCPT"
        assert client.docmd("BOGUS")[0] == 500
        # smtplib dot-stuffs the line "." and ".hidden"; the server must unstuff them.
        client.sendmail("a@example.org", ["X@example.org", "y@example.org"], b"Subject: s\r\n\r\n.\r\n.hidden\r\nend")
        client.mail("a@example.org")
        client.rcpt("z@example.org")
        assert client.rset()[0] == 250  # the transaction dropped: nothing delivered to z
    expected = b"Subject: s\r\n\r\n.\r\n.hidden\r\nend\r\n"
    assert lean.delivered == [("x@example.org", expected), ("y@example.org", expected)]


def test_pipelined_transactions_from_campaigns_client_each_delivered_once(lean: LeanSmtp) -> None:
    async def send() -> list[str]:
        server = SmtpServer("127.0.0.1", lean.port, SmtpSecurity.NONE, timeout=5)
        connection = SmtpConnection(ServerChooser([server]))
        replies = [
            await connection.send("from@example.org", f"to{n}@example.org", b"Subject: n\r\n\r\n..dots\r\n")
            for n in range(50)
        ]
        await connection.close()
        return replies

    replies = asyncio.run(send())
    assert replies == ["2.0.0 OK queued"] * 50
    assert lean.received() == {f"to{n}@example.org": 1 for n in range(50)}
    assert {content for _, content in lean.delivered} == {b"Subject: n\r\n\r\n..dots\r\n"}
