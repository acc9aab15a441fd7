"""Sending over SMTP with aiosmtplib: reused connections, several servers with weights and failover, and
pipelined transactions where the server offers PIPELINING (:mod:`campaign.mail.pipelining`).

Contract: :meth:`SmtpConnection.send` returns the server's reply to DATA (a 250) or raises a
:class:`~campaign.exceptions.DeliveryError` subclass that says what to do: transient (try again later),
:class:`RecipientRefusedError` (5xx at RCPT: bounce), :class:`MessageRejectedError` (5xx at MAIL/DATA: fail).
Callers never see aiosmtplib's exceptions, and the replies they get are text a database can store
(:func:`storable`).
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiosmtplib

from campaign.exceptions import (
    DeliveryError,
    MessageRejectedError,
    PermanentDeliveryError,
    RecipientRefusedError,
    SmtpAuthenticationError,
    SmtpConnectionError,
    SmtpTimeoutError,
    TransientDeliveryError,
)
from campaign.mail.pipelining import PipelinedSession, data_on_the_wire
from campaign.models import SmtpSecurity

# How a connection is secured: the value set settings check smtp.security against, under the name used here.
Security = SmtpSecurity


@dataclass(frozen=True, slots=True)
class SmtpServer:
    """One SMTP server (relay) to send through."""

    host: str
    port: int
    security: Security = SmtpSecurity.STARTTLS
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0
    weight: int = 1
    local_hostname: str | None = None

    def describe(self) -> str:
        """``host:port``."""
        return f"{self.host}:{self.port}"


@dataclass(slots=True)
class ServerChooser:
    """Picks a server by weight, avoiding servers that failed recently (failover)."""

    servers: Sequence[SmtpServer]
    cooldown: float = 30.0
    _down_until: dict[SmtpServer, float] = field(default_factory=dict)

    def choose(self) -> SmtpServer:
        """A server that is up (by weight), or, when all are down, the one that comes back first."""
        now = time.monotonic()
        up = [s for s in self.servers if self._down_until.get(s, 0.0) <= now]
        if not up:
            return min(self.servers, key=lambda s: self._down_until.get(s, 0.0))
        return random.choices(up, weights=[s.weight for s in up])[0]

    def failed(self, server: SmtpServer) -> None:
        """Mark a server as down for the cooldown."""
        if len(self.servers) > 1:
            self._down_until[server] = time.monotonic() + self.cooldown


class SmtpConnection:
    """One reused SMTP session, reconnecting (to a chosen server) when needed."""

    def __init__(self, chooser: ServerChooser) -> None:
        self._chooser = chooser
        self._client: aiosmtplib.SMTP | None = None
        self._pipelined: PipelinedSession | None = None  # the session, when the server offers PIPELINING
        self._server: SmtpServer | None = None
        self._eight_bit = False  # the server offers 8BITMIME

    async def _connect(self) -> aiosmtplib.SMTP:
        server = self._chooser.choose()
        client = aiosmtplib.SMTP(
            hostname=server.host,
            port=server.port,
            timeout=server.timeout,
            use_tls=server.security == SmtpSecurity.TLS,
            start_tls=server.security == SmtpSecurity.STARTTLS,
            username=server.username,
            password=server.password,
            local_hostname=server.local_hostname,
            tls_context=ssl.create_default_context() if server.security != SmtpSecurity.NONE else None,
        )
        try:
            await client.connect()
            if client.is_ehlo_or_helo_needed:  # aiosmtplib says EHLO lazily; the extensions are wanted now
                await client.ehlo()
            pipelined = PipelinedSession(client, server.timeout) if client.supports_extension("pipelining") else None
        except BaseException as exc:
            client.close()  # a session refused after connecting must not leave its socket open
            self._chooser.failed(server)
            error = _classify(exc, server)
            if isinstance(error, PermanentDeliveryError):
                # A 5xx greeting or EHLO ("client host blocked") refuses the session, not this message: no
                # message may fail for it; it is deferred, and the failure breaker sees it.
                raise SmtpConnectionError(
                    f"{server.describe()} refused the session: {error}", error.code, error.reply
                ) from exc
            raise error from exc
        self._client, self._server, self._pipelined = client, server, pipelined
        self._eight_bit = client.supports_extension("8bitmime")
        return client

    @property
    def _connected(self) -> bool:
        if self._pipelined is not None:
            return self._pipelined.is_connected
        return self._client is not None and self._client.is_connected

    async def accepts_8bit(self) -> bool:
        """Whether the server takes 8-bit bodies (8BITMIME, RFC 6152): connects first when needed, so it
        raises what :meth:`send` raises for a connection that fails."""
        await self._ensure_connected()
        return self._eight_bit

    async def _ensure_connected(self) -> None:
        if not self._connected:
            await self.close()
            await self._connect()

    async def send(self, sender: str, recipient: str, data: bytes, *, eight_bit: bool = False) -> str:
        """Send one message (CRLF line ends, as MessageSkeleton builds); returns the reply to the end of DATA.

        ``eight_bit``: the message has 8-bit bodies (built for a server that :meth:`accepts_8bit`). Should the
        session have been replaced meanwhile by one with a server that does not, the message is deferred (a
        :class:`TransientDeliveryError`), never sent as it is.
        """
        await self._ensure_connected()
        client, server, pipelined = self._client, self._server, self._pipelined
        assert client is not None
        assert server is not None
        if eight_bit and not self._eight_bit:
            raise TransientDeliveryError(f"{server.describe()} does not take 8-bit messages (no 8BITMIME)")
        body = b" BODY=8BITMIME" if eight_bit else b""
        try:
            sender, recipient = _ascii_address(sender), _ascii_address(recipient)
            if pipelined is not None:
                reply = await pipelined.transmit(sender, recipient, data, body)
            else:
                reply = await _transmit(client, sender, recipient, data, body)
        except BaseException as exc:
            error = _classify(exc, server)
            if isinstance(error, TransientDeliveryError):
                # After a 4xx or a broken session, start the next message on a fresh connection.
                await self.close()
                if isinstance(error, SmtpConnectionError | SmtpTimeoutError):
                    self._chooser.failed(server)
            elif self._connected:
                # A refused recipient or message leaves the session usable, once reset.
                try:
                    await (pipelined.reset() if pipelined is not None else client.rset())
                except aiosmtplib.SMTPException:
                    await self.close()
            raise error from exc
        return storable(reply)

    async def close(self) -> None:
        """Say QUIT (politely, briefly) and drop the session."""
        client, self._client = self._client, None
        pipelined, self._pipelined = self._pipelined, None
        if pipelined is not None:
            try:
                await pipelined.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                pipelined.close()
        elif client is not None and client.is_connected:
            try:
                await asyncio.wait_for(client.quit(), timeout=2)
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                client.close()


async def _transmit(client: aiosmtplib.SMTP, sender: str, recipient: str, data: bytes, body: bytes) -> str:
    """MAIL (with ``body``, its BODY parameter or nothing), RCPT and DATA for one message, one command at a
    time (a server without PIPELINING); returns the reply to DATA. ``data`` must use CRLF line ends: it goes out
    through aiosmtplib's protocol as :func:`data_on_the_wire` makes it, not through ``data()``, which costs a
    third of sending (about 300 µs for a 28 KB invitation) rescanning it."""
    if client.protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("connection lost")
    if client.is_ehlo_or_helo_needed:
        await client.ehlo()
    # MAIL and RCPT with addresses already validated at import: no per-message address parsing.
    mail = await client.execute_command(b"MAIL", b"FROM:<" + sender.encode() + b">" + body)
    if mail.code != aiosmtplib.SMTPStatus.completed:
        raise aiosmtplib.SMTPSenderRefused(mail.code, mail.message, sender)
    rcpt = await client.execute_command(b"RCPT", b"TO:<" + recipient.encode() + b">")
    if rcpt.code not in (aiosmtplib.SMTPStatus.completed, aiosmtplib.SMTPStatus.will_forward):
        raise aiosmtplib.SMTPRecipientRefused(rcpt.code, rcpt.message, recipient)
    protocol = client.protocol
    start = await protocol.execute_command(b"DATA", timeout=client.timeout)
    if start.code != aiosmtplib.SMTPStatus.start_input:
        raise aiosmtplib.SMTPDataError(start.code, start.message)
    protocol.write(data_on_the_wire(data))
    response = await protocol.read_response(timeout=client.timeout)
    if response.code != aiosmtplib.SMTPStatus.completed:
        raise aiosmtplib.SMTPDataError(response.code, response.message)
    return response.message


def storable(reply: str) -> str:
    """A server's reply as text any database stores: replies are read with undecodable bytes kept as lone
    surrogates, which no UTF-8 column takes (SQLite would store invalid text, PostgreSQL refuse it); they
    become U+FFFD, and NULs go."""
    if reply.isascii() and "\x00" not in reply:
        return reply
    try:
        data = reply.encode("utf-8", "surrogateescape")  # the server's bytes again
    except UnicodeEncodeError:
        data = reply.encode("utf-8", "replace")
    return data.decode("utf-8", "replace").replace("\x00", "")


def _ascii_address(address: str) -> str:
    """The address with its domain in IDNA form (``bücher.de`` → ``xn--bcher-kva.de``).

    A non-ASCII local part would need SMTPUTF8 end to end, which campaign does not do yet: such a message is
    refused here, permanently, rather than failing in the middle of the SMTP dialogue.
    """
    local, _, domain = address.rpartition("@")
    if not local.isascii():
        raise MessageRejectedError(f"{address}: a non-ASCII local part needs SMTPUTF8, which is not supported")
    return address if domain.isascii() else f"{local}@{domain.encode('idna').decode('ascii')}"


def _classify(exc: BaseException, server: SmtpServer) -> DeliveryError:
    where = server.describe()
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refused = exc.recipients[0] if exc.recipients else None
        code, message = (refused.code, refused.message) if refused else (None, str(exc))
        return _by_code(code, message, "recipient refused", RecipientRefusedError)
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        # Our From refused (530 authentication required, 550 sender not permitted): a configuration problem
        # that every message would hit. Deferred, so the breaker pauses the campaign instead of failing it.
        message = storable(exc.message)
        return TransientDeliveryError(f"{where}: sender refused: {exc.code} {message}", exc.code, message)
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused | aiosmtplib.SMTPDataError):
        kind = RecipientRefusedError if isinstance(exc, aiosmtplib.SMTPRecipientRefused) else MessageRejectedError
        return _by_code(exc.code, exc.message, "refused", kind)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        message = storable(exc.message)
        return SmtpAuthenticationError(f"{where}: authentication failed: {exc.code} {message}", exc.code, message)
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return SmtpTimeoutError(f"{where}: timed out: {exc}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return _by_code(exc.code, exc.message, "error", MessageRejectedError)
    if isinstance(exc, aiosmtplib.SMTPException | OSError):
        return SmtpConnectionError(f"{where}: connection failed: {exc}")
    if isinstance(exc, Exception):
        # Anything else is unexpected: deferred with the error shown, never a dead worker.
        return TransientDeliveryError(f"{where}: unexpected error: {exc!r}")
    raise exc


def _by_code(code: int | None, message: str, what: str, permanent: type[DeliveryError]) -> DeliveryError:
    message = storable(message)
    text = f"{what}: {code} {message}".strip()
    if code is not None and 500 <= code < 600:
        return permanent(text, code, message)
    return TransientDeliveryError(text, code, message)
