"""The link destinations of the waves being sent, stored for the click endpoint.

Contract: :func:`destination` is what the click endpoint redirects to: the stored destination of a message's
link, only ever an http(s) URL.

:class:`StoredLinkBook` is the :class:`~campaign.render.links.LinkBook` of one wave in a sending process. It
reads the wave's stored destinations once, and stores a new one (a link a template makes with ``link(url, name)``,
or the event's after an update) the first time it is rendered: one short write per distinct destination per wave
and process, not per message. Processes sending the same wave agree on every
index through the table's unique keys (``links``: wave and index, wave and destination).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

from campaign.render.links import link_key
from campaign.store import links as link_store
from campaign.store.engine import Database

# Two processes storing different destinations at once may pick the same index; the loser tries again.
_ATTEMPTS = 20


@dataclass
class StoredLinkBook:
    """A wave's link destinations, stored in the database; see the module doc."""

    db: Database
    wave_id: int
    _known: dict[str, int] | None = field(default=None, repr=False)

    def index_of(self, url: str, name: str) -> int:
        """The destination's index in the wave, stored first if it is new."""
        key = link_key(url, name)
        if self._known is None:
            with self.db.read() as conn:
                self._known = link_store.wave_links(conn, self.wave_id)
        index = self._known.get(key)
        if index is None:
            index = self._known[key] = self._store(url, name, key)
        return index

    def _store(self, url: str, name: str, key: str) -> int:
        for _ in range(_ATTEMPTS):
            with self.db.write() as conn:
                index = link_store.add_link(conn, self.wave_id, name, url, key, datetime.now(UTC))
            if index is not None:
                return index
        raise RuntimeError(f"wave {self.wave_id}: could not store link {name!r} after {_ATTEMPTS} attempts")


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a link of a message leads, and its name (reports; ``register`` is a registration)."""

    url: str
    name: str


def destination(db: Database, message_id: int, link_index: int) -> Destination | None:
    """The stored destination of link ``link_index`` of message ``message_id``; None when there is none, or when
    what is stored is not an http(s) URL (rendering stores only those; checked again here because a redirect to
    ``javascript:`` or a scheme-relative URL must be impossible whatever the table holds)."""
    with db.read() as conn:
        found = link_store.link_of_message(conn, message_id, link_index)
    if found is None:
        return None
    url, name = found
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return Destination(url, name)
