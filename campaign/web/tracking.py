"""The tracking endpoints: the open pixel, click redirects and the recipient's calendar file.

Each endpoint is thin: it verifies the token (a :class:`~campaign.tokens.TokenVerifier` of the key ring, for the
endpoint's own purpose), hands a :class:`~campaign.services.tracking.Hit` to the
:class:`~campaign.services.tracking.HitRecorder` (which never waits: it buffers, classifies and writes in
batches) and answers.

* ``GET /o/{token}.gif``: always 200 and the same 43-byte transparent GIF with no-cache headers, whatever the
  token (a mail client shows a broken image otherwise, and the answer says nothing about the token). Only a
  valid open token is recorded. No database access in the request: it is the busiest route.
* ``GET /c/{token}``: a valid click token is a 302 to the destination stored for the message's link
  (:func:`campaign.services.links.destination`, http(s) only), and a click recorded with the link's index and
  name (a person's click on ``register`` is a registration). Anything else is the plain 404 page and nothing is
  recorded. Found destinations are cached (bounded, least recently used), and forgotten every
  :data:`DESTINATION_SECONDS`: an event's change retargets the links already sent (its Join link, its time in an
  add-to-calendar link: :func:`campaign.services.events.update_event`), which clicks then follow within that time;
  those not cached yet are looked up together with the others asked for at the same time
  (:class:`~campaign.services.links.DestinationFinder`). A token that names its wave (version 2,
  :mod:`campaign.tokens`) is looked up by wave and link: a wave has a handful of destinations, so after the
  first click on each every click is answered from memory, and the server answers it before the app as it does
  the pixel (:meth:`TrackingEndpoints.click_now`).
* ``GET /ics/{token}``: a valid calendar token is the recipient's own calendar file
  (:func:`campaign.services.calendars.message_calendar`), and a calendar hit recorded; else 404.

HEAD is answered like GET; the recorder's classifier counts a HEAD as a machine's (scanners check links so).
The client address is the connection's peer (the ASGI scope's ``client``): ``X-Forwarded-For`` is not trusted,
since anyone can send it.

Speed (measured for ``bench/tracking.py``, which drives one server process with a different message's hit each
request). The pixel and the click are plain ASGI apps, and :class:`TrackingFastPath`, in front of Starlette's
routing and middleware, answers their GET and HEAD requests itself (the paths matched by the prefix and suffix
of their templates in :mod:`campaign.rules.routes`, as Starlette's ``{token}`` matches them: one segment, not
empty). Everything else, a click that is a 404 among it, takes the ordinary way. Each answer's headers, the
security headers of every response among them, are built once (a redirect's once per destination), not per
request; the hit's user agent, classifying headers and client are read from the scope's raw headers, without a
``Request``. The app alone (no server): 9 µs a pixel request, against 20 through Starlette's routing and
middleware. The server (:mod:`campaign.web.server`) answers most pixel requests before the app, with
:meth:`TrackingEndpoints.pixel_now`: the same recording and headers, without the ASGI messages.
"""

from __future__ import annotations

import asyncio
import base64
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from campaign.config import Settings
from campaign.models import TrackingKind
from campaign.rules.routes import CLICK, OPEN, RoutePath
from campaign.services.calendars import message_calendar
from campaign.services.installation import installation_id
from campaign.services.links import Destination, DestinationFinder, wave_destinations
from campaign.services.tracking import CLASSIFYING_HEADERS, NO_HEADERS, Hit, HitRecorder
from campaign.store.engine import Database
from campaign.tokens import InvalidTokenError, SigningKeys, TokenClaims, TokenVerifier

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
DESTINATION_SECONDS = 60.0
"""How long a destination found is answered from memory: a link retargeted since is followed after at most this
long. Each wave's few links are looked up again once a minute: nothing next to the clicks (one query for all the
clicks waiting at that moment)."""

_AGENTS_REMEMBERED = 10_000  # distinct user agents kept decoded (forgotten all at once past it)...
_AGENT_REMEMBERED_BYTES = 512  # ...of at most this length (browsers' are 100-200 bytes): at most ~10 MB in all
_CALENDAR_HEADERS = {**NO_CACHE, "Content-Disposition": 'attachment; filename="invite.ics"'}
_GET_OR_HEAD = ("GET", "HEAD")
# The raw (lower-case) names of the request headers a hit keeps for classification.
_CLASSIFYING = {name.encode("latin-1"): name for name in CLASSIFYING_HEADERS}
RawHeaders = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class _Redirect:
    """A found destination: its link's name, and the headers of the 302 to it."""

    name: str
    headers: RawHeaders


class TrackingEndpoints:
    """The endpoints above, on one database, key ring and recorder. ``headers`` are added to each answer (the
    app's security headers: the fast path answers outside the app's middleware)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        keys: SigningKeys,
        recorder: HitRecorder,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.verifier = TokenVerifier(keys)
        self.recorder = recorder
        self.headers = dict(headers or {})
        self.open_pixel = _Asgi(self.answer_open)
        """The ASGI app of the open route."""
        self.click = _Asgi(self.answer_click)
        """The ASGI app of the click route."""
        self._finder = DestinationFinder(db)
        self._wave_finder = DestinationFinder(db, wave_destinations)
        self._destinations: OrderedDict[tuple[int, int], _Redirect] = OrderedDict()
        # By (wave id, link index): a few per wave, so a plain dict, emptied if it ever grows past the bound.
        self._wave_redirects: dict[tuple[int, int], _Redirect] = {}
        self._redirects: dict[Destination, _Redirect] = {}
        self._pixel_headers = _raw(Response(PIXEL, media_type="image/gif", headers=NO_CACHE), self.headers)
        self._installation: str | None = None
        self._agents: dict[bytes, str] = {}  # user agents seen lately, as received: see _agent
        self._open_affixes = _affixes(OPEN)
        self._click_affixes = _affixes(CLICK)

    def forget_destinations(self) -> None:
        """Forget the destinations found so far (each is looked up again at its next click)."""
        self._destinations.clear()
        self._wave_redirects.clear()
        self._redirects.clear()

    async def keep_destinations_fresh(self) -> None:
        """:meth:`forget_destinations` every :data:`DESTINATION_SECONDS`, until cancelled (a task of the app's
        lifetime)."""
        while True:
            await asyncio.sleep(DESTINATION_SECONDS)
            self.forget_destinations()

    async def answer_open(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The GIF, always; an open recorded for a valid open token (``scope["path_params"]["token"]``)."""
        self._record_open(scope["path_params"]["token"], scope)
        await send({"type": "http.response.start", "status": 200, "headers": self._pixel_headers})
        await send({"type": "http.response.body", "body": PIXEL})

    def pixel_now(self, path: str, scope: Scope) -> RawHeaders | None:
        """For a server answering the pixel itself, without the app (``scope``: the request's ``method``,
        ``headers`` and ``client``): None when ``path`` is not the pixel's; else the open recorded as
        :meth:`answer_open` records it, and the headers of the answer, whose body is :data:`PIXEL`."""
        if (token := _token(path, *self._open_affixes)) is None:
            return None
        self._record_open(token, scope)
        return self._pixel_headers

    def _record_open(self, token: str, scope: Scope) -> None:
        claims = self._claims(token, TrackingKind.OPEN)
        if claims is not None:
            self.recorder.record(self._hit(scope, claims))

    async def answer_click(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A redirect to the link's stored destination, the click recorded; 404 for anything else."""
        if not await self.redirect(scope["path_params"]["token"], scope, send):
            raise HTTPException(404)

    async def redirect(self, token: str, scope: Scope, send: Send) -> bool:
        """Answer a click on ``token`` with a redirect and record it; False (nothing sent, nothing recorded) when
        the token is not a valid click token or its link has no destination."""
        claims = self._claims(token, TrackingKind.CLICK)
        if claims is None:
            return False
        if claims.wave_id is not None:
            found = await self._wave_redirect(claims.wave_id, claims.link_index)
            if found is None:
                return False
            self.recorder.record(self._hit(scope, claims, found.name))
            await send({"type": "http.response.start", "status": 302, "headers": found.headers})
            await send({"type": "http.response.body", "body": b""})
            return True
        key = (claims.message_id, claims.link_index)
        found = self._destinations.get(key)
        if found is None:
            destination = await self._finder.find(*key)
            if destination is None:
                return False
            found = self._destinations[key] = self._redirect(destination)
            if len(self._destinations) > CACHED_DESTINATIONS:
                self._destinations.popitem(last=False)
        else:
            self._destinations.move_to_end(key)
        self.recorder.record(self._hit(scope, claims, found.name))
        await send({"type": "http.response.start", "status": 302, "headers": found.headers})
        await send({"type": "http.response.body", "body": b""})
        return True

    def click_now(self, path: str, scope: Scope) -> RawHeaders | None:
        """For a server answering clicks itself, as :meth:`pixel_now` the pixel: the headers of the 302 (no body)
        when ``path`` is a click on a token naming its wave whose destination is in memory, the click recorded as
        :meth:`redirect` records it; None otherwise, with nothing recorded (the app then answers)."""
        if (token := _token(path, *self._click_affixes)) is None:
            return None
        claims = self._claims(token, TrackingKind.CLICK)
        if claims is None or claims.wave_id is None:
            return None
        found = self._wave_redirects.get((claims.wave_id, claims.link_index))
        if found is None:
            return None
        self.recorder.record(self._hit(scope, claims, found.name))
        return found.headers

    async def _wave_redirect(self, wave_id: int, link_index: int) -> _Redirect | None:
        key = (wave_id, link_index)
        found = self._wave_redirects.get(key)
        if found is None:
            destination = await self._wave_finder.find(wave_id, link_index)
            if destination is None:
                return None
            if len(self._wave_redirects) >= CACHED_DESTINATIONS:
                self._wave_redirects.clear()
            found = self._wave_redirects[key] = self._redirect(destination)
        return found

    def _redirect(self, destination: Destination) -> _Redirect:
        # The messages of a wave share its destinations: each one's answer is made once (a few in memory).
        found = self._redirects.get(destination)
        if found is None:
            if len(self._redirects) >= CACHED_DESTINATIONS:
                self._redirects.clear()
            # RedirectResponse percent-encodes what a header may not carry (a stored URL with non-ASCII
            # characters); its headers are kept, not the response.
            response = RedirectResponse(destination.url, status_code=302, headers=NO_CACHE)
            found = self._redirects[destination] = _Redirect(destination.name, _raw(response, self.headers))
        return found

    async def calendar(self, request: Request) -> Response:
        """The recipient's calendar file, the download recorded; 404 for anything else."""
        claims = self._claims(request.path_params["token"], TrackingKind.CALENDAR)
        if claims is None:
            raise HTTPException(404)
        ics = await asyncio.to_thread(self._calendar, claims.message_id)
        if ics is None:
            raise HTTPException(404)
        self.recorder.record(self._hit(request.scope, claims))
        return Response(ics, media_type="text/calendar; charset=utf-8", headers=_CALENDAR_HEADERS)

    def _calendar(self, message_id: int) -> bytes | None:
        # The installation id never changes: read once, on the first calendar asked for.
        if self._installation is None:
            self._installation = installation_id(self.db)
        return message_calendar(self.db, self.settings, self._installation, message_id, datetime.now(UTC))

    def _agent(self, raw: bytes) -> str:
        """A user agent not seen lately, decoded and remembered: most hits come from a few clients (each mail
        provider's proxy, the common browsers), so their hits share one string each, instead of each hit
        holding its own copy of 100-odd bytes until the recorder writes it (and having it hashed again there)."""
        agent = raw.decode("latin-1")
        if len(raw) <= _AGENT_REMEMBERED_BYTES:  # a head may be 32 KiB: anyone could fill the memory otherwise
            if len(self._agents) >= _AGENTS_REMEMBERED:
                self._agents.clear()
            self._agents[raw] = agent
        return agent

    def _claims(self, token: str, purpose: TrackingKind) -> TokenClaims | None:
        try:
            return self.verifier.verify(purpose, token)
        except InvalidTokenError:
            return None

    def _hit(self, scope: Scope, claims: TokenClaims, link_name: str | None = None) -> Hit:
        # The first value of each header, as Starlette's Headers.get reads it (names are lower case in ASGI).
        user_agent = None
        headers: dict[str, str] | None = None  # most requests carry no classifying header: none made for them
        for name, value in scope["headers"]:
            if name == b"user-agent":
                if user_agent is None and (user_agent := self._agents.get(value)) is None:
                    user_agent = self._agent(value)
            elif (classifying := _CLASSIFYING.get(name)) is not None:
                if headers is None:
                    headers = {}
                if classifying not in headers:
                    headers[classifying] = value.decode("latin-1")
        client = scope.get("client")
        # Positional, in Hit's order: a request's hit is made faster so than by keywords.
        return Hit(
            claims.purpose,
            claims.message_id,
            self.recorder.clock(),
            scope["method"],
            claims.link_index if claims.purpose is TrackingKind.CLICK else None,
            link_name,
            user_agent,
            client[0] if client else None,
            NO_HEADERS if headers is None else headers,
        )


class TrackingFastPath:
    """ASGI middleware answering GET and HEAD on the open pixel and click routes before Starlette's routing and
    the middleware after it (see the module doc); a click it cannot redirect, and everything else, goes on to
    ``app``. Outside the app's error handling only by its position in Starlette's stack: an exception here is
    the app's plain 500 page too."""

    def __init__(self, app: ASGIApp, endpoints: TrackingEndpoints) -> None:
        self.app = app
        self.endpoints = endpoints
        self._open = _affixes(OPEN)
        self._click = _affixes(CLICK)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a pixel or a click here, or pass the request on."""
        # Under a root path Starlette matches what follows it: left to Starlette (no server here sets one).
        if scope["type"] == "http" and scope["method"] in _GET_OR_HEAD and not scope.get("root_path"):
            path: str = scope["path"]
            if (token := _token(path, *self._open)) is not None:
                scope["path_params"] = {"token": token}
                await self.endpoints.answer_open(scope, receive, send)
                return
            if (token := _token(path, *self._click)) is not None and await self.endpoints.redirect(token, scope, send):
                return
        await self.app(scope, receive, send)


class _Asgi:
    """An ASGI callable as Starlette routes to it: an object, since it treats functions and methods as
    request-response endpoints."""

    def __init__(self, answer: ASGIApp) -> None:
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.answer(scope, receive, send)


def _affixes(route: RoutePath) -> tuple[str, str]:
    """What comes before and after the token in ``route``'s template (``/o/`` and ``.gif``)."""
    prefix, token, suffix = route.template.partition("{token}")
    if not token or "{" in prefix + suffix:
        raise ValueError(f"route {route.name!r}: the fast path serves one {{token}} parameter, not {route.template}")
    return prefix, suffix


def _token(path: str, prefix: str, suffix: str) -> str | None:
    """The token of ``path`` under a template of ``prefix``, ``{token}``, ``suffix``: as Starlette matches it, one
    path segment, not empty; None when the path is not the route's."""
    if not (path.startswith(prefix) and path.endswith(suffix)) or len(path) <= len(prefix) + len(suffix):
        return None
    token = path[len(prefix) : len(path) - len(suffix)]
    return None if "/" in token else token


def _raw(response: Response, extra: Mapping[str, str]) -> RawHeaders:
    """The raw headers of ``response`` (a Starlette response: its content type, length and encoding of values
    are Starlette's), and ``extra`` where the response does not set the same header."""
    headers = list(response.raw_headers)
    present = {name for name, _ in headers}
    for name, value in extra.items():
        raw_name = name.lower().encode("latin-1")
        if raw_name not in present:
            headers.append((raw_name, value.encode("latin-1")))
    return headers
