"""Sending over TLS: implicit TLS and STARTTLS against a real aiosmtpd server with a certificate from a test CA.

The client verifies the server as it would any relay (the system's trust store, here pointed at the test CA
with SSL_CERT_FILE); after the TLS set-up the pipelined session takes the encrypted connection over.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from campaign.exceptions import SmtpConnectionError
from campaign.mail.capture import _FreePortController
from campaign.mail.smtp import Security, ServerChooser, SmtpConnection, SmtpServer
from tests.test_delivery import FaultySmtp

MESSAGE = b"Subject: over TLS\r\n\r\nhello\r\n"


@pytest.fixture
def ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> trustme.CA:
    authority = trustme.CA()
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))  # what ssl.create_default_context() trusts
    return authority


def _server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


def _start(handler: FaultySmtp, security: Security, context: ssl.SSLContext) -> _FreePortController:
    if security == "tls":
        controller = _FreePortController(handler, hostname="127.0.0.1", port=0, ssl_context=context)
    else:
        controller = _FreePortController(
            handler, hostname="127.0.0.1", port=0, tls_context=context, require_starttls=True
        )
    controller.start()
    return controller


@pytest.fixture(params=["tls", "starttls"])
def security(request: pytest.FixtureRequest) -> Security:
    value: Security = request.param
    return value


@pytest.fixture(params=[True, False], ids=["pipelining", "one-by-one"])
def tls_server(request: pytest.FixtureRequest, ca: trustme.CA, security: Security) -> Iterator[tuple[FaultySmtp, int]]:
    handler = FaultySmtp(pipelining=request.param)
    controller = _start(handler, security, _server_context(ca))
    try:
        yield handler, int(controller.port)
    finally:
        controller.stop()


def test_messages_go_over_a_verified_encrypted_session(tls_server: tuple[FaultySmtp, int], security: Security) -> None:
    handler, port = tls_server
    server = SmtpServer("127.0.0.1", port, security, timeout=5)

    encrypted: list[bool] = []

    async def send_three() -> list[str]:
        connection = SmtpConnection(ServerChooser([server]))
        try:
            replies = [await connection.send("from@example.org", f"to{n}@example.org", MESSAGE) for n in range(3)]
            session = connection._pipelined
            assert (session is not None) == handler.pipelining
            if session is not None:  # the pipelined session took the encrypted transport over
                encrypted.append(session._transport.get_extra_info("ssl_object") is not None)
            return replies
        finally:
            await connection.close()

    replies = asyncio.run(send_three())
    assert len(replies) == 3
    assert encrypted == ([True] if handler.pipelining else [])
    assert handler.received() == {f"to{n}@example.org": 1 for n in range(3)}


def test_a_server_whose_certificate_is_not_trusted_is_refused(ca: trustme.CA, security: Security) -> None:
    stranger = trustme.CA()  # not the one SSL_CERT_FILE names: nothing trusts it
    handler = FaultySmtp(pipelining=True)
    controller = _start(handler, security, _server_context(stranger))
    try:
        server = SmtpServer("127.0.0.1", int(controller.port), security, timeout=5)

        async def send() -> str:
            connection = SmtpConnection(ServerChooser([server]))
            try:
                return await connection.send("from@example.org", "to@example.org", MESSAGE)
            finally:
                await connection.close()

        with pytest.raises(SmtpConnectionError):
            asyncio.run(send())
    finally:
        controller.stop()
    assert handler.received() == {}
