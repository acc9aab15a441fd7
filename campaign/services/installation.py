"""The installation id: what makes this database's Message-IDs, calendar UIDs and List-Ids its own.

Every database numbers its first message and its first event 1; mail and calendar clients take two things of
the same name for one (Gmail drops the second message, a calendar updates the old entry). So ``campaign init``
gives each database a random id (the migration that creates the table makes it), and the renderer puts it
into every such name. It never changes: read once per renderer, never per message.
"""

from __future__ import annotations

import re

from campaign.exceptions import StorageError
from campaign.store import installation
from campaign.store.engine import Database

# What the migration makes (16 lower-case base32 characters), with room for a longer one: it goes into
# headers and must be one dot-atom label, lower case as List-Ids want it (RFC 2919).
_VALID = re.compile(r"[a-z0-9]{8,32}")


def installation_id(db: Database) -> str:
    """This database's installation id; :class:`StorageError` when it is missing or damaged.

    A missing id is not made afresh: a new one would rename every message and calendar entry already sent, so
    later mailings would no longer update them.
    """
    with db.read() as conn:
        found = installation.ids(conn)
    if not found:
        raise StorageError(
            f"{db.describe()} has no installation id (table installation is empty): restore the database from a "
            "backup (a new id would rename every message and calendar entry already sent)"
        )
    if len(found) > 1:
        raise StorageError(
            f"{db.describe()} has {len(found)} installation ids: keep the first one made, delete the rest"
        )
    [identifier] = found
    if not _VALID.fullmatch(identifier):
        raise StorageError(
            f"{db.describe()}: installation id {identifier!r} is not 8 to 32 lower-case letters and digits"
        )
    return identifier
