"""The tracking endpoints: the open pixel, click redirects and the recipient's calendar file.

Each endpoint is thin: it verifies the token (:func:`campaign.tokens.verify` against the key ring, for the
endpoint's own purpose), hands a :class:`~campaign.services.tracking.Hit` to the
:class:`~campaign.services.tracking.HitRecorder` (which never waits: it buffers, classifies and writes in
batches) and answers.

* ``GET /o/{token}.gif``: always 200 and the same 43-byte transparent GIF with no-cache headers, whatever the
  token (a mail client shows a broken image otherwise, and the answer says nothing about the token). Only a
  valid open token is recorded. No database access in the request: it is the busiest route.
* ``GET /c/{token}``: a valid click token is a 302 to the destination stored for the message's link
  (:func:`campaign.services.links.destination`, http(s) only), and a click recorded with the link's index and
  name (a person's click on ``register`` is a registration). Anything else is the plain 404 page and nothing is
  recorded. Destinations never change once stored, so found ones are cached (bounded, least recently used).
* ``GET /ics/{token}``: a valid calendar token is the recipient's own calendar file
  (:func:`campaign.services.calendars.message_calendar`), and a calendar hit recorded; else 404.

HEAD is answered like GET; the recorder's classifier counts a HEAD as a machine's (scanners check links so).
The client address is the connection's peer (``request.client``): ``X-Forwarded-For`` is not trusted, since
anyone can send it.
"""

from __future__ import annotations

import asyncio
import base64
from collections import OrderedDict
from datetime import UTC, datetime

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from campaign.config import Settings
from campaign.models import TrackingKind
from campaign.services.calendars import message_calendar
from campaign.services.installation import installation_id
from campaign.services.links import Destination, destination
from campaign.services.tracking import CLASSIFYING_HEADERS, Hit, HitRecorder
from campaign.store.engine import Database
from campaign.tokens import InvalidTokenError, SigningKeys, TokenClaims, verify

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
"""A 1×1 transparent GIF (43 bytes)."""

NO_CACHE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, private, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
}
"""On every tracking answer: a cached pixel or redirect is an open or a click nobody hears of."""

CACHED_DESTINATIONS = 50_000
"""Link destinations kept in memory (each a message's link: a few hundred bytes)."""

_CALENDAR_HEADERS = {**NO_CACHE, "Content-Disposition": 'attachment; filename="invite.ics"'}


class TrackingEndpoints:
    """The endpoints above, on one database, key ring and recorder."""

    def __init__(self, db: Database, settings: Settings, keys: SigningKeys, recorder: HitRecorder) -> None:
        self.db = db
        self.settings = settings
        self.keys = keys
        self.recorder = recorder
        self._destinations: OrderedDict[tuple[int, int], Destination] = OrderedDict()
        self._installation: str | None = None

    async def open_pixel(self, request: Request) -> Response:
        """The GIF, always; an open recorded for a valid open token."""
        claims = self._claims(request, TrackingKind.OPEN)
        if claims is not None:
            self.recorder.record(self._hit(request, claims))
        return Response(PIXEL, media_type="image/gif", headers=NO_CACHE)

    async def click(self, request: Request) -> Response:
        """A redirect to the link's stored destination, the click recorded; 404 for anything else."""
        claims = self._claims(request, TrackingKind.CLICK)
        if claims is None:
            raise HTTPException(404)
        key = (claims.message_id, claims.link_index)
        found = self._destinations.get(key)
        if found is None:
            found = await asyncio.to_thread(destination, self.db, *key)
            if found is None:
                raise HTTPException(404)
            self._destinations[key] = found
            if len(self._destinations) > CACHED_DESTINATIONS:
                self._destinations.popitem(last=False)
        else:
            self._destinations.move_to_end(key)
        self.recorder.record(self._hit(request, claims, found.name))
        # RedirectResponse percent-encodes what a header may not carry (a stored URL with non-ASCII characters).
        return RedirectResponse(found.url, status_code=302, headers=NO_CACHE)

    async def calendar(self, request: Request) -> Response:
        """The recipient's calendar file, the download recorded; 404 for anything else."""
        claims = self._claims(request, TrackingKind.CALENDAR)
        if claims is None:
            raise HTTPException(404)
        ics = await asyncio.to_thread(self._calendar, claims.message_id)
        if ics is None:
            raise HTTPException(404)
        self.recorder.record(self._hit(request, claims))
        return Response(ics, media_type="text/calendar; charset=utf-8", headers=_CALENDAR_HEADERS)

    def _calendar(self, message_id: int) -> bytes | None:
        # The installation id never changes: read once, on the first calendar asked for.
        if self._installation is None:
            self._installation = installation_id(self.db)
        return message_calendar(self.db, self.settings, self._installation, message_id, datetime.now(UTC))

    def _claims(self, request: Request, purpose: TrackingKind) -> TokenClaims | None:
        try:
            return verify(self.keys, purpose, request.path_params["token"])
        except InvalidTokenError:
            return None

    def _hit(self, request: Request, claims: TokenClaims, link_name: str | None = None) -> Hit:
        headers = request.headers
        return Hit(
            kind=claims.purpose,
            message_id=claims.message_id,
            occurred_at=self.recorder.clock(),
            method=request.method,
            link_index=claims.link_index if claims.purpose is TrackingKind.CLICK else None,
            link_name=link_name,
            user_agent=headers.get("user-agent"),
            ip=request.client.host if request.client else None,
            headers={name: value for name in CLASSIFYING_HEADERS if (value := headers.get(name)) is not None},
        )
