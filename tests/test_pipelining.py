"""PIPELINING (RFC 2920) against a scripted SMTP server on 127.0.0.1 that checks what arrives, and how."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace

import pytest

from campaign.exceptions import MessageRejectedError, RecipientRefusedError, SmtpConnectionError, SmtpTimeoutError
from campaign.mail.pipelining import data_on_the_wire
from campaign.mail.smtp import ServerChooser, SmtpConnection, SmtpServer
from campaign.models import SmtpSecurity

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
MESSAGE = b"Subject: hi\r\n\r\n.a line that starts with a dot\r\nbody\r\n"


async def _line(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r\n"), 5)


async def _greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, pipelining: bool = True) -> None:
    writer.write(b"220 scripted ESMTP\r\n")
    assert (await _line(reader)).startswith(b"EHLO ")
    # A multi-line reply, sent in pieces: the client must put it back together.
    writer.write(b"250-scripted\r\n250-SIZE 1000000\r\n")
    await writer.drain()
    writer.write(b"250-PIPELINING\r\n250 HELP\r\n" if pipelining else b"250 HELP\r\n")


async def _commands(reader: asyncio.StreamReader, count: int) -> list[bytes]:
    return [await _line(reader) for _ in range(count)]


async def _message(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r\n.\r\n"), 5)


async def _transaction(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, final: bytes | None) -> None:
    """Take one pipelined transaction and its message; answer the message with ``final`` (None: not at all)."""
    await _commands(reader, 3)
    writer.write(b"250 ok\r\n250 ok\r\n354 go ahead\r\n")
    await _message(reader)
    if final is not None:
        writer.write(final)


@asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[SmtpServer]:
    """A server that runs ``script`` for one connection; its assertion errors fail the test."""
    failures: list[BaseException] = []
    done = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await script(reader, writer)
        except BaseException as exc:
            failures.append(exc)
        finally:
            writer.close()
            done.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield SmtpServer("127.0.0.1", port, SmtpSecurity.NONE, timeout=3)
        await asyncio.wait_for(done.wait(), 5)
    finally:
        server.close()
        await server.wait_closed()
    if failures:
        raise failures[0]


def test_mail_rcpt_and_data_go_out_before_any_reply_and_two_messages_share_the_session() -> None:
    asyncio.run(_mail_rcpt_and_data_go_out_before_any_reply_and_two_messages_share_the_session())


async def _mail_rcpt_and_data_go_out_before_any_reply_and_two_messages_share_the_session() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _greet(reader, writer)
        for n in (1, 2):
            # Nothing is answered until all three commands are here: a client waiting for MAIL's reply hangs.
            mail, rcpt, data = await _commands(reader, 3)
            assert (mail, rcpt, data) == (
                b"MAIL FROM:<from@example.org>\r\n",
                f"RCPT TO:<to{n}@example.org>\r\n".encode(),
                b"DATA\r\n",
            )
            writer.write(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n")
            body = await _message(reader)
            assert body == b"Subject: hi\r\n\r\n..a line that starts with a dot\r\nbody\r\n.\r\n"  # dot-stuffed
            writer.write(f"250 2.0.0 queued as {n}\r\n".encode())
        assert await _line(reader) == b"QUIT\r\n"
        writer.write(b"221 bye\r\n")

    async with scripted(script) as server:
        connection = SmtpConnection(ServerChooser([server]))
        assert await connection.send("from@example.org", "to1@example.org", MESSAGE) == "2.0.0 queued as 1"
        assert await connection.send("from@example.org", "to2@example.org", MESSAGE) == "2.0.0 queued as 2"
        await connection.close()


def test_a_refused_recipient_bounces_and_the_session_carries_on_after_rset() -> None:
    asyncio.run(_a_refused_recipient_bounces_and_the_session_carries_on_after_rset())


async def _a_refused_recipient_bounces_and_the_session_carries_on_after_rset() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _greet(reader, writer)
        await _commands(reader, 3)
        writer.write(b"250 ok\r\n550 5.1.1 no such user\r\n554 5.5.1 no valid recipients\r\n")
        assert await _line(reader) == b"RSET\r\n"
        writer.write(b"250 reset\r\n")
        await _commands(reader, 3)
        # A server that opens DATA although it refused the recipient gets an empty message to close it.
        writer.write(b"250 ok\r\n550 5.1.1 no such user either\r\n354 go ahead\r\n")
        assert await _line(reader) == b".\r\n"
        writer.write(b"554 5.5.1 no valid recipients\r\n")
        assert await _line(reader) == b"RSET\r\n"
        writer.write(b"250 reset\r\n")
        await _transaction(reader, writer, b"554 5.7.1 message refused\r\n")
        assert await _line(reader) == b"RSET\r\n"
        writer.write(b"250 reset\r\n")
        assert await _line(reader) == b"QUIT\r\n"

    async with scripted(script) as server:
        connection = SmtpConnection(ServerChooser([server]))
        for recipient in ("gone@example.org", "gone2@example.org"):
            with pytest.raises(RecipientRefusedError) as refused:
                await connection.send("from@example.org", recipient, MESSAGE)
            assert refused.value.code == 550
        with pytest.raises(MessageRejectedError) as rejected:
            await connection.send("from@example.org", "to@example.org", MESSAGE)
        assert rejected.value.code == 554
        await connection.close()


def test_without_pipelining_commands_wait_for_their_replies() -> None:
    asyncio.run(_without_pipelining_commands_wait_for_their_replies())


async def _without_pipelining_commands_wait_for_their_replies() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _greet(reader, writer, pipelining=False)
        for reply in (b"250 ok\r\n", b"250 ok\r\n", b"354 go ahead\r\n"):
            await _line(reader)
            # The next command must not be here before this reply is sent.
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(reader.read(1), 0.05)
            writer.write(reply)
        assert await _message(reader) == b"Subject: hi\r\n\r\n..a line that starts with a dot\r\nbody\r\n.\r\n"
        writer.write(b"250 queued\r\n")

    async with scripted(script) as server:
        connection = SmtpConnection(ServerChooser([server]))
        assert await connection.send("from@example.org", "to@example.org", MESSAGE) == "queued"
        await connection.close()


def test_an_unsolicited_reply_ends_the_session_and_the_next_message_goes_on_a_new_one() -> None:
    asyncio.run(_unsolicited_reply())


async def _unsolicited_reply() -> None:
    sessions = 0

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sessions
        sessions += 1
        await _greet(reader, writer)
        if sessions == 1:
            await asyncio.sleep(0.1)
            writer.write(b"421 4.3.2 shutting down soon\r\n")  # between transactions, unasked
            await writer.drain()
            await asyncio.wait_for(reader.read(), 5)  # until the client goes
            return
        await _transaction(reader, writer, b"250 queued on the second session\r\n")
        await asyncio.wait_for(reader.read(), 5)

    failures: list[BaseException] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await script(reader, writer)
        except BaseException as exc:
            failures.append(exc)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    smtp = SmtpServer("127.0.0.1", server.sockets[0].getsockname()[1], SmtpSecurity.NONE, timeout=3)
    try:
        connection = SmtpConnection(ServerChooser([smtp]))
        await connection._connect()
        await asyncio.sleep(0.4)  # the unsolicited reply arrives
        with pytest.raises(SmtpConnectionError):
            await connection.send("from@example.org", "to@example.org", MESSAGE)
        assert await connection.send("from@example.org", "to@example.org", MESSAGE) == "queued on the second session"
        await connection.close()
    finally:
        server.close()
        await server.wait_closed()
    assert not failures, failures
    assert sessions == 2


def test_a_session_refused_at_ehlo_is_closed_not_left_open() -> None:
    asyncio.run(_refused_at_ehlo())


async def _refused_at_ehlo() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 scripted ESMTP\r\n")
        assert (await _line(reader)).startswith(b"EHLO ")
        writer.write(b"554 5.7.1 client host blocked\r\n")
        await writer.drain()
        # The client must hang up: read until it does (a leaked socket would time out here).
        while await asyncio.wait_for(reader.read(1024), 3):
            pass

    async with scripted(script) as server:
        connection = SmtpConnection(ServerChooser([server]))
        with pytest.raises(SmtpConnectionError, match="refused the session"):
            await connection.send("from@example.org", "to@example.org", MESSAGE)


def test_a_reply_later_than_the_timeout_fails_the_message_after_fast_ones_share_the_watchdog() -> None:
    asyncio.run(_a_reply_later_than_the_timeout_fails_the_message_after_fast_ones_share_the_watchdog())


async def _a_reply_later_than_the_timeout_fails_the_message_after_fast_ones_share_the_watchdog() -> None:
    timeout = 0.5

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _greet(reader, writer)
        for n in range(3):  # answered more and more slowly, but each within the timeout
            await _transaction(reader, writer, None)
            await asyncio.sleep(n * timeout * 0.4)
            writer.write(b"250 2.0.0 queued\r\n")
        await _transaction(reader, writer, None)
        await asyncio.sleep(timeout * 3)  # never answers in time

    async with scripted(script) as server:
        connection = SmtpConnection(ServerChooser([replace(server, timeout=timeout)]))
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(3):
            assert await connection.send("from@example.org", "to@example.org", MESSAGE) == "2.0.0 queued"
        assert loop.time() - started > timeout  # the fast ones together outlasted one timeout
        late = loop.time()
        with pytest.raises(SmtpTimeoutError):
            await connection.send("from@example.org", "to@example.org", MESSAGE)
        assert timeout <= loop.time() - late < timeout * 2.5
        await connection.close()


def test_a_quit_never_answered_is_given_two_seconds_not_the_session_timeout() -> None:
    asyncio.run(_a_quit_never_answered_is_given_two_seconds_not_the_session_timeout())


async def _a_quit_never_answered_is_given_two_seconds_not_the_session_timeout() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _greet(reader, writer)
        await _transaction(reader, writer, b"250 2.0.0 queued\r\n")
        assert await _line(reader) == b"QUIT\r\n"
        await asyncio.sleep(3)  # no answer

    async with scripted(script) as server:
        connection = SmtpConnection(ServerChooser([replace(server, timeout=8)]))
        await connection.send("from@example.org", "to@example.org", MESSAGE)  # leaves the watchdog armed for 8 s
        loop = asyncio.get_running_loop()
        started = loop.time()
        await connection.close()
        assert loop.time() - started < 2.5


def test_replies_with_bytes_that_are_not_utf8_come_back_as_text_a_database_stores() -> None:
    asyncio.run(_replies_with_bytes_that_are_not_utf8_come_back_as_text_a_database_stores())


async def _replies_with_bytes_that_are_not_utf8_come_back_as_text_a_database_stores() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _greet(reader, writer)
        await _transaction(reader, writer, b"250 2.0.0 Nachricht \xfcbernommen\x00\r\n")  # Latin-1, and a NUL
        await _commands(reader, 3)
        writer.write(b"250 ok\r\n550 5.1.1 Empf\xe4nger unbekannt\r\n554 5.5.1 no valid recipients\r\n")
        assert await _line(reader) == b"RSET\r\n"
        writer.write(b"250 reset\r\n")
        assert await _line(reader) == b"QUIT\r\n"
        writer.write(b"221 bye\r\n")

    async with scripted(script) as server:
        connection = SmtpConnection(ServerChooser([server]))
        reply = await connection.send("from@example.org", "to@example.org", MESSAGE)
        assert reply == "2.0.0 Nachricht \ufffdbernommen"
        with pytest.raises(RecipientRefusedError) as refused:
            await connection.send("from@example.org", "gone@example.org", MESSAGE)
        assert refused.value.reply == "5.1.1 Empf\ufffdnger unbekannt"
        assert str(refused.value).encode("utf-8")  # no lone surrogate left: encodes strictly
        await connection.close()


@pytest.mark.parametrize(
    ("message", "wire"),
    [
        (b"Subject: x\r\n\r\nbody\r\n", b"Subject: x\r\n\r\nbody\r\n.\r\n"),
        (b"Subject: x\r\n\r\n.a\r\n..b\r\nc.d\r\n.\r\n", b"Subject: x\r\n\r\n..a\r\n...b\r\nc.d\r\n..\r\n.\r\n"),
        (b".first\r\nsecond", b"..first\r\nsecond\r\n.\r\n"),
        (b"no dot at a line start\n.\r\nx", b"no dot at a line start\n.\r\nx\r\n.\r\n"),  # a bare LF is no line end
    ],
    ids=["nothing to stuff", "dots at line starts", "a dot first, no final line end", "dot after a bare LF"],
)
def test_data_is_dot_stuffed_and_ended(message: bytes, wire: bytes) -> None:
    assert data_on_the_wire(message) == wire
