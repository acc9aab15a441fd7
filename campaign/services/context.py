"""The composition root of every interface: settings, the database handle, the signing key and the SMTP servers.

The command line (:class:`campaign.cli.app.App`), the scheduler service (``scheduler/``) and the coming web app
build these the same way from here, so none of them imports another, and each is built once, on first use.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from campaign.config import Settings, load_settings
from campaign.mail.smtp import SmtpServer
from campaign.secrets import signing_key, signing_keys
from campaign.services.database import require_current_schema
from campaign.services.transport import smtp_servers
from campaign.store.engine import Database
from campaign.tokens import SigningKeys


@dataclass
class AppContext:
    """What a long-running process or a command shares: made on first use, closed with :meth:`close`.

    ``config_path`` is the configuration file (default: the nearest ``config.toml``); tests and embedding code
    may pass ready ``settings`` instead.
    """

    config_path: Path | None = None
    settings_given: Settings | None = field(default=None, repr=False)
    _db: Database | None = field(default=None, init=False, repr=False)
    _key: bytes | None = field(default=None, init=False, repr=False)
    _keys: SigningKeys | None = field(default=None, init=False, repr=False)

    @property
    def settings(self) -> Settings:
        """The loaded settings (loaded once)."""
        if self.settings_given is None:
            self.settings_given = load_settings(self.config_path)
        return self.settings_given

    def database(self, *, check_schema: bool = True) -> Database:
        """The database handle; by default it must already have the current schema."""
        if self._db is None:
            settings = self.settings
            self._db = Database(
                settings.database_url,
                busy_timeout_ms=settings.database.busy_timeout_ms,
                echo=settings.database.echo,
            )
        if check_schema:
            require_current_schema(self._db)
        return self._db

    def signing_key(self) -> bytes:
        """The token-signing key (environment, or generated under the data directory); read once."""
        if self._key is None:
            self._key = signing_key(self.settings.data_dir)
        return self._key

    def signing_keys(self) -> SigningKeys:
        """The key ring that verifies tokens: the current key, and the previous one while it is set (links in
        mail signed before a rotation keep working); read once."""
        if self._keys is None:
            self._keys = SigningKeys.from_keys(signing_keys(self.settings.data_dir))
        return self._keys

    def smtp_servers(self) -> AbstractContextManager[list[SmtpServer]]:
        """The servers to send through, for the duration of a ``with`` block (see :func:`smtp_servers`)."""
        return smtp_servers(self.settings)

    def close(self) -> None:
        """Close the database's connections (a later :meth:`database` opens new ones)."""
        if self._db is not None:
            self._db.dispose()
            self._db = None
