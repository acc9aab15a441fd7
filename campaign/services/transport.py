"""Which SMTP servers messages go to: the built-in capture server, or the configured relays."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from campaign.config import Settings, parse_relay
from campaign.mail.capture import CaptureServer
from campaign.mail.smtp import SmtpServer
from campaign.models import SmtpSecurity
from campaign.secrets import smtp_password


@contextmanager
def smtp_servers(settings: Settings) -> Iterator[list[SmtpServer]]:
    """The servers to send through, for the duration of the block.

    In capture mode this starts the capture server on 127.0.0.1 (a free port) and stops it afterwards.
    """
    smtp = settings.smtp
    if smtp.mode == "capture":
        with CaptureServer(settings.resolve(smtp.mailbox)) as capture:
            yield [SmtpServer(capture.host, capture.port, SmtpSecurity.NONE, timeout=smtp.timeout_seconds)]
        return
    yield relay_servers(settings)


def relay_servers(settings: Settings) -> list[SmtpServer]:
    """The configured relays: ``smtp.host`` and every ``smtp.servers`` entry (``host:port[:weight]``)."""
    smtp = settings.smtp
    # load_settings admitted only these values (config.SMTP_SECURITIES, built from SmtpSecurity).
    security = SmtpSecurity(smtp.security)
    common = {
        "security": security,
        "username": smtp.username or None,
        "password": smtp_password(),
        "timeout": smtp.timeout_seconds,
    }
    servers = [SmtpServer(smtp.host, smtp.port, weight=smtp.weight, **common)]  # type: ignore[arg-type]
    for entry in smtp.servers:
        relay = parse_relay(entry)  # admitted by load_settings, so it parses
        servers.append(SmtpServer(relay.host, relay.port, weight=relay.weight, **common))  # type: ignore[arg-type]
    return servers
