"""Secrets come from the environment, or from a generated file under ``data/`` that git ignores.

They are never read from ``config.toml``: a configuration file gets committed, shared and pasted into
issues. The token-signing key may be generated on first use, so a new user needs no set-up; the SMTP
password cannot be generated and is only ever read from the environment.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from campaign.exceptions import ConfigError

# Names of where secrets live, not secrets.
SECRET_KEY_ENV = "CAMPAIGN_SECRET_KEY"  # noqa: S105
SMTP_PASSWORD_ENV = "CAMPAIGN_SMTP_PASSWORD"  # noqa: S105
SECRET_KEY_FILE = "secret.key"  # noqa: S105
_MIN_KEY_LENGTH = 32


def signing_key(data_dir: Path, environ: Mapping[str, str] | None = None) -> bytes:
    """Return the key that signs tracking and unsubscribe tokens.

    ``CAMPAIGN_SECRET_KEY`` wins; otherwise ``data_dir/secret.key`` is read, and created (mode 0600,
    random 256 bits) when it does not exist yet. Every process sharing a database must see the same key,
    so on several machines set the environment variable.
    """
    environ = os.environ if environ is None else environ
    if SECRET_KEY_ENV in environ:
        key = environ[SECRET_KEY_ENV]
        if len(key) < _MIN_KEY_LENGTH:
            raise ConfigError(f"environment {SECRET_KEY_ENV} must be at least {_MIN_KEY_LENGTH} characters")
        return key.encode()
    path = data_dir / SECRET_KEY_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    # Write a private temporary file, then link it into place: the link fails if another process won
    # the race, and no reader ever sees a half-written key.
    tmp = data_dir / f".{SECRET_KEY_FILE}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(32) + "\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_bytes().strip()


def smtp_password(environ: Mapping[str, str] | None = None) -> str | None:
    """Return the SMTP password from ``CAMPAIGN_SMTP_PASSWORD``, or None when it is not set."""
    environ = os.environ if environ is None else environ
    return environ.get(SMTP_PASSWORD_ENV)
