"""Which SMTP servers messages go to: the built-in capture server, or the configured relays."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import get_args

from campaign.config import Settings
from campaign.exceptions import ConfigError
from campaign.mail.capture import CaptureServer
from campaign.mail.smtp import Security, SmtpServer
from campaign.secrets import smtp_password


@contextmanager
def smtp_servers(settings: Settings) -> Iterator[list[SmtpServer]]:
    """The servers to send through, for the duration of the block.

    In capture mode this starts the capture server on 127.0.0.1 (a free port) and stops it afterwards.
    """
    smtp = settings.smtp
    if smtp.mode == "capture":
        with CaptureServer(settings.resolve(smtp.mailbox)) as capture:
            yield [SmtpServer(capture.host, capture.port, "none", timeout=smtp.timeout_seconds)]
        return
    if smtp.mode != "relay":
        raise ConfigError(f"smtp.mode must be 'capture' or 'relay', not {smtp.mode!r}")
    yield relay_servers(settings)


def relay_servers(settings: Settings) -> list[SmtpServer]:
    """The configured relays: ``smtp.host`` and every ``smtp.servers`` entry (``host:port[:weight]``)."""
    smtp = settings.smtp
    if smtp.security not in get_args(Security):
        raise ConfigError(f"smtp.security must be starttls, tls or none, not {smtp.security!r}")
    security: Security = smtp.security  # type: ignore[assignment]
    common = {
        "security": security,
        "username": smtp.username or None,
        "password": smtp_password(),
        "timeout": smtp.timeout_seconds,
    }
    servers = [SmtpServer(smtp.host, smtp.port, weight=smtp.weight, **common)]  # type: ignore[arg-type]
    for entry in smtp.servers:
        host, _, rest = entry.partition(":")
        port_text, _, weight_text = rest.partition(":")
        try:
            port, weight = int(port_text), int(weight_text or 1)
        except ValueError:
            raise ConfigError(f"smtp.servers entry {entry!r} must be host:port or host:port:weight") from None
        servers.append(SmtpServer(host, port, weight=weight, **common))  # type: ignore[arg-type]
    return servers
