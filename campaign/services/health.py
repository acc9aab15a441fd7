"""Whether a long-running process's database still answers: the web service's ``/healthz``.

A load balancer or a monitor asks often, so a check is one small query on a pooled connection: the schema's
revision (which is also how a database wiped or upgraded under a running process is noticed). A pooled
connection alone would not notice a SQLite file deleted or replaced under the process: on Linux an open
connection keeps reading, and writing, the old file, and what it writes is lost. So for a SQLite file the probe
also checks that the path still names the file it opened.
"""

from __future__ import annotations

import os
from pathlib import Path

from campaign.exceptions import CampaignError, StorageError
from campaign.store import migrate
from campaign.store.engine import SETTING, Database


class DatabaseProbe:
    """Checks ``db``: made where the process opens the database (which must have the current schema then)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._head = migrate.head_revision()  # read once: it parses the migration scripts
        self._file = db.file
        self._identity = _identity(self._file) if self._file is not None else None

    def check(self) -> None:
        """Return when the database answers with the current schema; else raise :class:`StorageError`, one line
        saying what is wrong (never the password: the URL is shown as :meth:`Database.describe` does)."""
        name = self.db.describe()
        if self._file is not None:
            try:
                identity = _identity(self._file)
            except OSError:
                raise StorageError(f"{SETTING}: {name} is missing (moved or deleted since it was opened)") from None
            if identity != self._identity:
                raise StorageError(f"{SETTING}: {name} was replaced since it was opened: restart this process")
        try:
            revision = migrate.current_revision(self.db)
        except CampaignError:
            raise
        except Exception as exc:
            # Whatever the driver raises (a dropped server connection, a file that is no longer a database), the
            # answer is the same: not healthy, and why, on one line (the driver's words, without SQLAlchemy's
            # statement and links).
            cause = getattr(exc, "orig", None) or exc
            reason = " ".join(str(cause).split()) or type(cause).__name__
            raise StorageError(f"{SETTING}: {name} does not answer: {reason}") from exc
        if revision is None:
            raise StorageError(f"{SETTING}: {name} has no campaign schema any more")
        if revision != self._head:
            raise StorageError(f"{SETTING}: {name} is at schema {revision}, this process needs {self._head}")


def _identity(path: Path) -> tuple[int, int]:
    """Which file ``path`` names: its device and inode."""
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino
