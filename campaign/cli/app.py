"""What every command shares: the settings and the database handle, made on first use."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import click

from campaign.config import Settings, load_settings
from campaign.secrets import signing_key
from campaign.services.database import require_current_schema
from campaign.store.engine import Database


@dataclass
class App:
    """The command line's context object."""

    config_path: Path | None = None
    debug: bool = False
    _settings: Settings | None = field(default=None, repr=False)
    _db: Database | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        """The loaded settings (loaded once)."""
        if self._settings is None:
            self._settings = load_settings(self.config_path)
        return self._settings

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
        """The token-signing key (environment, or generated under the data directory)."""
        return signing_key(self.settings.data_dir)


pass_app = click.make_pass_decorator(App)
"""Decorator giving a command the :class:`App`."""
