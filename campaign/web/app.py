"""The web app: :func:`create_app` makes the one Starlette application from the shared application context.

* **Paths** come from the table in :mod:`campaign.rules.routes` (:func:`route`): message rendering builds its
  links from the same table, so a link and its route cannot disagree. Only routes that work are served.
* **Headers**: every response carries :data:`SECURITY_HEADERS` (no MIME sniffing, no Referer, a Content-Security-
  Policy that allows nothing, no framing). A response that needs more (a page with a form) sets its own
  ``Content-Security-Policy``, which is then kept.
* **Errors**: a path that does not exist is a plain 404 page, a wrong method a plain 405; an exception in an
  endpoint is logged (one line here, the traceback by the server's logger) and answered with a plain 500 page.
  No response ever shows a traceback, a setting or a secret.
* **Tracking** (:mod:`campaign.web.tracking`): the open pixel, click redirects and calendar files record through
  one :class:`~campaign.services.tracking.HitRecorder` (``app.state.recorder``), whose writer runs as a task for
  the app's lifetime (its lifespan) and writes what is left when the app shuts down. GET and HEAD on the pixel
  and clicks are answered by :class:`~campaign.web.tracking.TrackingFastPath` before Starlette's routing (the
  busiest routes; the same answers, headers included).
* **Registrations** pushed by webinar platforms (:mod:`campaign.web.hooks`), signed with a secret from the
  environment: off (404) without it.
* **Staff pages** (:mod:`campaign.web.auth`: login, logout, sessions, CSRF and roles; ``app.state.staff_access``)
  behind :func:`~campaign.web.auth.require`; tracking, unsubscribe and webhook routes stay public.
* ``/healthz`` answers 200 ``ok`` while the database answers with the current schema, else 503 and the reason on
  one line (:class:`campaign.services.health.DatabaseProbe`); a check taking longer than
  :data:`HEALTH_TIMEOUT_SECONDS` is a 503 too, and concurrent requests share one check in progress, so a database
  that hangs ties up one thread, not one per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from http import HTTPStatus

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from campaign import __version__
from campaign.exceptions import StorageError
from campaign.rules.routes import (
    CALENDAR,
    CAMPAIGN_LAUNCH,
    CAMPAIGN_MANAGE,
    CAMPAIGN_MOVE,
    CAMPAIGN_NEW,
    CAMPAIGN_PAGE,
    CAMPAIGN_PREVIEW_HTML,
    CAMPAIGN_RETRY,
    CAMPAIGN_TEMPLATE_EDIT,
    CAMPAIGN_TEMPLATE_FRAME,
    CAMPAIGN_TEMPLATE_PREVIEW,
    CAMPAIGN_TEMPLATE_REVERT,
    CAMPAIGN_TEMPLATES,
    CAMPAIGN_TEST_SEND,
    CAMPAIGN_WAVE_EDIT,
    CAMPAIGN_WAVE_NEW,
    CAMPAIGN_WAVE_REMOVE,
    CAMPAIGN_WAVES_STATUS,
    CLICK,
    CONTACT_PAGE,
    CONTACT_SUPPRESS,
    CONTACT_UNSUPPRESS,
    CONTACTS,
    CONTACTS_IMPORT,
    CONTACTS_LIST,
    CONTACTS_REJECTS,
    CONTACTS_UPLOAD,
    DASHBOARD,
    EVENT_CANCEL,
    EVENT_EDIT,
    EVENT_NEW,
    EVENT_PAGE,
    EVENTS,
    HEALTH,
    INDEX,
    LOGIN,
    LOGOUT,
    MAILBOX,
    MAILBOX_HTML,
    MAILBOX_MESSAGE,
    OPEN,
    REGISTRATION_HOOK,
    SETTINGS,
    STATIC,
    UNSUBSCRIBE,
    USER_DISABLE,
    USER_PASSWORD,
    USERS,
    RoutePath,
)
from campaign.secrets import registration_hook_secret
from campaign.services.context import AppContext
from campaign.services.health import DatabaseProbe
from campaign.services.tracking import HitRecorder, RecorderStats
from campaign.web.auth import StaffAccess
from campaign.web.campaigns import (
    CampaignsData,
    launch_page,
    manage_page,
    move_page,
    new_campaign,
    preview_html,
    test_send_action,
)
from campaign.web.contacts import (
    ContactsData,
    contact_page,
    contacts_page,
    import_page,
    list_contacts,
    rejects,
    suppress,
    unsuppress,
    upload,
)
from campaign.web.dashboard import DashboardData, campaign_page, dashboard, retry
from campaign.web.events import EventsData, cancel_event_page, edit_event, event_page, events_page, new_event
from campaign.web.hooks import RegistrationHook
from campaign.web.mailbox import mailbox_html, mailbox_message, mailbox_page
from campaign.web.settings_page import AdminData, settings_page
from campaign.web.templates_editor import DraftFrames, edit_page, frame, preview_fragment, revert, templates_page
from campaign.web.tracking import TrackingEndpoints, TrackingFastPath
from campaign.web.unsubscribe import UnsubscribeEndpoint
from campaign.web.users import disable, new_password, users_page
from campaign.web.waves import edit_wave_page, new_wave, remove_wave_page, waves_status

log = logging.getLogger("campaign.web")

SECURITY_HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The pages here load nothing (no script, style, image or frame) and post nowhere; a page that needs more
    # sets its own policy. frame-ancestors and X-Frame-Options both: old browsers know only the second.
    "Content-Security-Policy": "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
}
"""Headers on every response (unless the response set the same header itself)."""

HEALTH_TIMEOUT_SECONDS = 5.0
"""How long ``/healthz`` waits for the database before answering 503."""

_NO_STORE = {"Cache-Control": "no-store"}

Endpoint = Callable[[Request], Awaitable[Response]]


def route(path: RoutePath, endpoint: Endpoint | ASGIApp, *, methods: Sequence[str] = ("GET",)) -> Route:
    """The Starlette route of ``path`` (its template and name from the table) answered by ``endpoint`` (a
    request-response function or method, or an ASGI app object).

    Every route of the app is made here, so none has a path typed anywhere else. GET routes answer HEAD too.
    """
    return Route(path.template, endpoint, methods=list(methods), name=path.name)


def create_app(context: AppContext) -> Starlette:
    """The web app on ``context``'s settings and database, which must have the current schema (checked now, so a
    server never starts on a database it cannot use; the error is a one-line :class:`StorageError`)."""
    db = context.database()
    recorder = HitRecorder(db, context.settings.tracking)
    health = _HealthCheck(DatabaseProbe(db), recorder.stats)
    tracking = TrackingEndpoints(db, context.settings, context.signing_keys(), recorder, SECURITY_HEADERS)
    unsubscribe = UnsubscribeEndpoint(db, context.settings, context.signing_keys())
    registration_hook = RegistrationHook(db, registration_hook_secret())
    staff = StaffAccess(db, context.settings, context.signing_keys())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The recorder writes its buffer while the app serves; cancelling it writes what is left (run's finally),
        # so a graceful stop loses no hit.
        writer = asyncio.create_task(recorder.run(), name="tracking recorder")
        refresher = asyncio.create_task(tracking.keep_destinations_fresh(), name="tracking destinations")
        try:
            yield
        finally:
            refresher.cancel()
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    app = Starlette(
        routes=[
            route(INDEX, index),
            route(HEALTH, health.respond),
            route(OPEN, tracking.open_pixel),
            route(CLICK, tracking.click),
            route(CALENDAR, tracking.calendar),
            route(UNSUBSCRIBE, unsubscribe.respond, methods=("GET", "POST")),
            route(REGISTRATION_HOOK, registration_hook.respond, methods=("POST",)),
            route(LOGIN, staff.login, methods=("GET", "POST")),
            route(LOGOUT, staff.logout, methods=("POST",)),
            route(DASHBOARD, dashboard),
            route(CAMPAIGN_PAGE, campaign_page),
            route(CAMPAIGN_RETRY, retry, methods=("POST",)),
            route(MAILBOX, mailbox_page),
            route(MAILBOX_MESSAGE, mailbox_message),
            route(MAILBOX_HTML, mailbox_html),
            route(CONTACTS, contacts_page),
            route(CONTACTS_UPLOAD, upload, methods=("POST",)),
            route(CONTACTS_IMPORT, import_page),
            route(CONTACTS_REJECTS, rejects),
            route(CONTACTS_LIST, list_contacts),
            route(CONTACT_PAGE, contact_page),
            route(CONTACT_SUPPRESS, suppress, methods=("POST",)),
            route(CONTACT_UNSUPPRESS, unsuppress, methods=("POST",)),
            route(EVENTS, events_page),
            route(EVENT_NEW, new_event, methods=("GET", "POST")),  # before EVENT_PAGE, whose {event} "new" matches
            route(EVENT_PAGE, event_page),
            route(EVENT_EDIT, edit_event, methods=("GET", "POST")),
            route(EVENT_CANCEL, cancel_event_page, methods=("GET", "POST")),
            route(SETTINGS, settings_page),
            route(USERS, users_page, methods=("GET", "POST")),
            route(USER_DISABLE, disable, methods=("POST",)),
            route(USER_PASSWORD, new_password, methods=("POST",)),
            route(CAMPAIGN_NEW, new_campaign, methods=("GET", "POST")),  # before CAMPAIGN_MANAGE, which matches "new"
            route(CAMPAIGN_MANAGE, manage_page),
            route(CAMPAIGN_PREVIEW_HTML, preview_html),
            route(CAMPAIGN_LAUNCH, launch_page, methods=("GET", "POST")),
            route(CAMPAIGN_MOVE, move_page, methods=("GET", "POST")),
            route(CAMPAIGN_TEST_SEND, test_send_action, methods=("POST",)),
            route(CAMPAIGN_WAVE_NEW, new_wave, methods=("GET", "POST")),
            route(CAMPAIGN_WAVE_EDIT, edit_wave_page, methods=("GET", "POST")),
            route(CAMPAIGN_WAVE_REMOVE, remove_wave_page, methods=("GET", "POST")),
            route(CAMPAIGN_WAVES_STATUS, waves_status),
            route(CAMPAIGN_TEMPLATES, templates_page),
            route(CAMPAIGN_TEMPLATE_EDIT, edit_page, methods=("GET", "POST")),
            route(CAMPAIGN_TEMPLATE_PREVIEW, preview_fragment, methods=("POST",)),
            route(CAMPAIGN_TEMPLATE_FRAME, frame),
            route(CAMPAIGN_TEMPLATE_REVERT, revert, methods=("POST",)),
            route(STATIC, staff.pages.static),
        ],
        # The tracking fast path first: it answers the pixel and clicks with the security headers built in.
        middleware=[Middleware(TrackingFastPath, endpoints=tracking), Middleware(SecurityHeaders)],
        exception_handlers={HTTPException: http_error, ClientDisconnect: client_gone, Exception: server_error},
        lifespan=lifespan,
    )
    # A path with a slash added (/login/) is a 404, not Starlette's redirect to the same path without it, which it
    # builds from the request's Host header: a cache or proxy passing any Host on would serve a redirect to
    # anyone's site; and no link of ours ends in a slash.
    app.router.redirect_slashes = False
    app.state.recorder = recorder
    app.state.tracking = tracking  # the server answers the pixel with it (campaign.web.server)
    app.state.staff_access = staff
    app.state.dashboard = DashboardData(db, context.settings)
    app.state.events = EventsData(db, context.settings)
    app.state.contacts = ContactsData(db, context.settings)
    app.state.campaigns = CampaignsData(db, context.settings, context.signing_keys().current)
    app.state.admin = AdminData(db, context.settings)  # the settings and users pages
    app.state.draft_frames = DraftFrames()  # the template editor's previews
    return app


async def index(request: Request) -> Response:
    """What this server is: the program and its version, nothing about its settings."""
    return PlainTextResponse(
        f"campaign {__version__}\n\n"
        "This is the web service of campaign, which sends invitations and reminders for events.\n"
        "The links in its messages lead here.\n"
    )


class _HealthCheck:
    """``/healthz``: one :class:`DatabaseProbe` check at a time, in a worker thread, shared by the requests that
    arrive while it runs; a change of state is logged once (a monitor polling a broken database floods nothing)."""

    def __init__(self, probe: DatabaseProbe, tracking: RecorderStats) -> None:
        self.probe = probe
        self.tracking = tracking
        self._running: asyncio.Future[None] | None = None
        self._failing: str | None = None

    async def respond(self, request: Request) -> Response:
        """200 ``ok``, or 503 with the reason on one line; then what the tracking recorder did since the start."""
        try:
            await self._check()
        except StorageError as exc:
            reason: str | None = str(exc)
        except TimeoutError:
            reason = f"database.url: {self.probe.db.describe()} did not answer within {HEALTH_TIMEOUT_SECONDS:g} s"
        else:
            reason = None
        self._note(reason)
        stats = self.tracking
        # Dropped hits are the number to watch: the database did not keep up (README, Web service).
        counts = (
            f"tracking recorded={stats.recorded} machine={stats.machine} repeats={stats.repeats} "
            f"dropped={stats.dropped} failed_batches={stats.failed_batches}\n"
        )
        if reason is not None:
            return PlainTextResponse(f"unavailable: {reason}\n{counts}", status_code=503, headers=_NO_STORE)
        return PlainTextResponse(f"ok\n{counts}", headers=_NO_STORE)

    async def _check(self) -> None:
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(asyncio.to_thread(self.probe.check))
            # A check that outlives every request waiting for it still has its outcome read (no asyncio warning).
            self._running.add_done_callback(lambda done: done.cancelled() or done.exception())
        await asyncio.wait_for(asyncio.shield(self._running), HEALTH_TIMEOUT_SECONDS)

    def _note(self, reason: str | None) -> None:
        if reason == self._failing:
            return
        if reason is None:
            log.info("database healthy again")
        else:
            log.warning("database unhealthy: %s", reason)
        self._failing = reason


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every response that does not set them itself.

    Plain ASGI rather than Starlette's ``BaseHTTPMiddleware``: it touches only the start of the response, so it
    costs the open pixel (the busiest route) next to nothing.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to the response's start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


_EXPLANATIONS = {
    404: "There is nothing at this address. If you followed a link from a message, it may have been cut short:\n"
    "try copying all of it into the address bar.\n",
}


async def http_error(request: Request, exc: Exception) -> Response:
    """A plain page for an HTTP error (404, 405...): the status, and for a 404 what to try."""
    assert isinstance(exc, HTTPException)
    status = HTTPStatus(exc.status_code)
    body = f"{status.value} {status.phrase}\n"
    if explanation := _EXPLANATIONS.get(status.value):
        body += f"\n{explanation}"
    # exc.headers carries what the status needs (Allow for a 405).
    return PlainTextResponse(body, status_code=status.value, headers=exc.headers)


async def client_gone(request: Request, exc: Exception) -> Response:
    """The client closed the connection before its body was whole: nobody to answer, and nothing went wrong here.
    Anyone can do it, as often as they like; as a server error, each logged an ERROR and a traceback of ~50 lines
    (an attacker review), so it is one line at debug level."""
    log.debug("client gone before its body was read method=%s path=%s", request.method, json.dumps(request.url.path))
    return Response(status_code=400)  # not sent: the connection is closed


async def server_error(request: Request, exc: Exception) -> Response:
    """An endpoint failed: one log line naming the request, and a plain 500 page.

    Starlette answers this outside the middleware (its error handler is the outermost layer), so the page carries
    the security headers itself. The exception goes on to the server, which logs its traceback.
    """
    log.error(
        "request failed method=%s path=%s error=%s",
        request.method,
        json.dumps(request.url.path),  # quoted: a path may hold anything, a line break included
        json.dumps(f"{type(exc).__name__}: {exc}"),
    )
    return PlainTextResponse(
        "500 Internal Server Error\n\nSomething went wrong on our side, and it has been logged. Please try again "
        "later.\n",
        status_code=500,
        headers=SECURITY_HEADERS,
    )
