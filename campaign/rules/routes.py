"""The web service's URL paths: one table, which the web app routes and message rendering builds links from.

A link in a message and the route that answers it must never disagree: a path written in two places is a link
that one day leads nowhere (an unsubscribe link that 404s breaks RFC 8058 and the mailbox providers' bulk-sender
rules). So every path is written once, here, and both sides read it:

* :mod:`campaign.web.app` turns each entry it serves into a Starlette route (same template, same name);
* :mod:`campaign.render.links` builds the links of a message with :func:`absolute_url` under ``links.public_url``.

Why in ``campaign.rules``: rendering sits below the web app in the layers (interfaces → services → adapters such
as render → config → tokens → rules → models), so it may not import ``campaign.web``; both may import this. It is
pure data and string building, no Starlette (the domain contract forbids it here), so the web app owns how a
template is matched and this module only what the paths are.

Templates use Starlette's syntax: ``{name}`` is a parameter matching one path segment, and may sit between
literal text (``/o/{token}.gif``). Values are percent-encoded when a path is built, so a value can never add a
segment, a query or a fragment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from urllib.parse import quote, urlsplit

from campaign.rules.characters import CONTROL

_PARAMETER = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True, slots=True)
class RoutePath:
    """One path of the web service: its ``name`` (the Starlette route name, stable) and its ``template``."""

    name: str
    template: str
    parameters: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        if not self.template.startswith("/"):
            raise ValueError(f"route {self.name!r}: a path template starts with '/', not {self.template!r}")
        object.__setattr__(self, "parameters", tuple(_PARAMETER.findall(self.template)))

    def path(self, **values: str) -> str:
        """The path with each ``{parameter}`` replaced by its value, percent-encoded (``/o/AbC.gif``).

        Raises ValueError when a parameter is missing or empty, or a value is given that the template lacks:
        a link built wrong is a bug to see at once, not a 404 a recipient finds.
        """
        if set(values) != set(self.parameters):
            raise ValueError(
                f"route {self.name!r} ({self.template}) takes {', '.join(self.parameters) or 'no parameters'}, "
                f"given {', '.join(sorted(values)) or 'none'}"
            )
        if empty := [name for name, value in values.items() if not value]:
            raise ValueError(f"route {self.name!r}: {', '.join(empty)} must not be empty")
        return _PARAMETER.sub(lambda match: quote(values[match.group(1)], safe=""), self.template)


INDEX = RoutePath("index", "/")
"""A plain page saying what the server is."""
HEALTH = RoutePath("health", "/healthz")
"""200 ``ok`` while the database answers; 503 with the reason otherwise (for load balancers and monitors)."""
OPEN = RoutePath("open", "/o/{token}.gif")
"""The open pixel: a 1×1 GIF."""
CLICK = RoutePath("click", "/c/{token}")
"""A link of a message: a redirect to the destination stored for it."""
UNSUBSCRIBE = RoutePath("unsubscribe", "/u/{token}")
"""The unsubscribe page (GET) and RFC 8058 one-click unsubscribe (POST)."""
CALENDAR = RoutePath("calendar", "/ics/{token}")
"""The recipient's own calendar file."""
REGISTRATION_HOOK = RoutePath("registration-hook", "/hooks/registration")
"""Registrations from webinar platforms (Zoom's signed webhook, or a generic signed JSON body)."""

LOGIN = RoutePath("login", "/login")
"""The staff login form (GET) and the login (POST); ``?next=`` names the staff page to return to."""
LOGOUT = RoutePath("logout", "/logout")
"""Ends the staff session (POST, with the session's CSRF token)."""
DASHBOARD = RoutePath("dashboard", "/dashboard")
"""The staff home page: the campaigns (reports permission)."""
STATIC = RoutePath("static", "/static/{name}")
"""The staff pages' stylesheet (and scripts): files shipped in the package, nothing fetched from elsewhere."""
CAMPAIGN_PAGE = RoutePath("campaign-page", "/dashboard/campaigns/{campaign}")
"""One campaign's report on the dashboard (``campaign``: its id; reports permission)."""
CAMPAIGN_RETRY = RoutePath("campaign-retry", "/dashboard/campaigns/{campaign}/retry")
"""Retry a campaign's failed or deferred messages (POST; acting on campaigns permission)."""
MAILBOX = RoutePath("mailbox", "/dashboard/mailbox")
"""The messages the capture server kept (capture mode only; reports permission)."""
MAILBOX_MESSAGE = RoutePath("mailbox-message", "/dashboard/mailbox/{message}")
"""One captured message: its headers, calendar part and HTML in a sandboxed frame."""
MAILBOX_HTML = RoutePath("mailbox-html", "/dashboard/mailbox/{message}/html")
"""A captured message's HTML part, for that frame only: no script, nothing fetched (its own policy)."""
CONTACTS = RoutePath("contacts", "/contacts")
"""The contact lists with their sizes, and the form uploading a CSV into a list (acting on campaigns permission)."""
CONTACTS_UPLOAD = RoutePath("contacts-upload", "/contacts/upload")
"""Upload a contacts CSV (POST, multipart, streamed to the data folder); its import then runs in the background."""
CONTACTS_IMPORT = RoutePath("contacts-import", "/contacts/imports/{job}")
"""An upload's import: its progress, then its counts, flagged contacts and rejected rows."""
CONTACTS_REJECTS = RoutePath("contacts-rejects", "/contacts/imports/{job}/rejects.csv")
"""The rejected rows of an upload's import, as CSV (line, reason, then the row's cells)."""
CONTACTS_LIST = RoutePath("contacts-list", "/contacts/lists/{list}")
"""One list's contacts (``list``: its id), searched by address or name prefix, one page at a time (``after``)."""
CONTACT_PAGE = RoutePath("contact-page", "/contacts/people/{contact}")
"""One contact (``contact``: its id): its fields, lists, messages and tracking history, its suppression."""
CONTACT_SUPPRESS = RoutePath("contact-suppress", "/contacts/people/{contact}/suppress")
"""Suppress a contact's address by hand (POST)."""
CONTACT_UNSUPPRESS = RoutePath("contact-unsuppress", "/contacts/people/{contact}/unsuppress")
"""Lift a contact's suppression by hand (POST; a bounce or a suppression by hand, never the person's own wish)."""
EVENTS = RoutePath("events", "/events")
"""The events, soonest first (acting on campaigns permission, as every event page)."""
EVENT_NEW = RoutePath("event-new", "/events/new")
"""The form of a new event (GET) and its creation (POST)."""
EVENT_PAGE = RoutePath("event-page", "/events/{event}")
"""One event (``event``: its id), its campaigns and what may be done to it."""
EVENT_EDIT = RoutePath("event-edit", "/events/{event}/edit")
"""An event's form (GET), then (POST) the confirmation saying who will be told, then the update."""
EVENT_CANCEL = RoutePath("event-cancel", "/events/{event}/cancel")
"""The confirmation of an event's cancellation, saying who will be told (GET), and the cancellation (POST)."""
CAMPAIGN_NEW = RoutePath("campaign-new", "/campaigns/new")
"""The form of a new campaign: an event and a list, with the default waves (GET), and its creation (POST)."""
CAMPAIGN_MANAGE = RoutePath("campaign-manage", "/campaigns/{campaign}")
"""A campaign's staff page (``campaign``: its id): waves, launch checks, preview as a contact, zones, actions, log."""
CAMPAIGN_PREVIEW_HTML = RoutePath("campaign-preview-html", "/campaigns/{campaign}/preview.html")
"""A contact's invitation HTML (``?email=``), for the preview's sandboxed frame only (its own policy)."""
CAMPAIGN_LAUNCH = RoutePath("campaign-launch", "/campaigns/{campaign}/launch")
"""The launch confirmation: audience, suppressed, first wave's time, checks (GET); the launch (POST)."""
CAMPAIGN_MOVE = RoutePath("campaign-move", "/campaigns/{campaign}/status")
"""The confirmation of a pause, resume or cancel (GET, ``?to=``), and the move (POST, field ``to``)."""
CAMPAIGN_TEST_SEND = RoutePath("campaign-test-send", "/campaigns/{campaign}/test-send")
"""Send one rendered message of a campaign, marked [TEST], to a staff address (POST; as ``campaign test-send``)."""
CAMPAIGN_TEMPLATES = RoutePath("campaign-templates", "/campaigns/{campaign}/templates")
"""The template editor's list: the files of each template the campaign's waves use (``?kind=&ext=&locale=``: a new
locale variant)."""
CAMPAIGN_TEMPLATE_EDIT = RoutePath("campaign-template-edit", "/campaigns/{campaign}/templates/{file}")
"""One template file of a campaign (``file``: ``KIND[.locale].(html|txt|subject)``): its editor with the preview
(GET), the preview without JavaScript or the save (POST, ``action``)."""
CAMPAIGN_TEMPLATE_PREVIEW = RoutePath("campaign-template-preview", "/campaigns/{campaign}/templates/{file}/preview")
"""The draft of a template file rendered as a contact: the editor's preview fragment (POST; htmx asks as staff type)."""
CAMPAIGN_TEMPLATE_FRAME = RoutePath("campaign-template-frame", "/campaigns/{campaign}/templates/{file}/frames/{frame}")
"""A draft preview's HTML, for its sandboxed frame only (its own policy)."""
CAMPAIGN_TEMPLATE_REVERT = RoutePath("campaign-template-revert", "/campaigns/{campaign}/templates/{file}/revert")
"""Remove the campaign's own copy of a template file, so the default serves again (POST)."""
CAMPAIGN_WAVE_NEW = RoutePath("campaign-wave-new", "/campaigns/{campaign}/waves/new")
"""The form of a new wave of a campaign (GET) and its adding (POST; as ``campaign waves add``)."""
CAMPAIGN_WAVE_EDIT = RoutePath("campaign-wave-edit", "/campaigns/{campaign}/waves/{wave}/edit")
"""A wave's form (``wave``: its name; GET) and its change (POST; as ``campaign waves edit``): pending waves only."""
CAMPAIGN_WAVE_REMOVE = RoutePath("campaign-wave-remove", "/campaigns/{campaign}/waves/{wave}/remove")
"""The confirmation of a wave's removal (GET) and the removal (POST; as ``campaign waves remove``)."""
CAMPAIGN_WAVES_STATUS = RoutePath("campaign-waves-status", "/campaigns/{campaign}/waves/status")
"""A campaign's messages counted by wave and status: an HTML fragment the campaign's page polls while sending."""
SETTINGS = RoutePath("settings", "/settings")
"""The settings staff may see, read-only: sender, relay or capture, public URL, database, service running."""
USERS = RoutePath("users", "/users")
"""The staff users (GET) and adding one (POST): admins only (managing users permission)."""
USER_DISABLE = RoutePath("user-disable", "/users/{user}/disable")
"""Disable a user (``user``: their name; POST); never the admin's own account."""
USER_PASSWORD = RoutePath("user-password", "/users/{user}/password")
"""Give a user a new password (``user``: their name; POST, the password twice)."""

ROUTES: tuple[RoutePath, ...] = (
    INDEX,
    HEALTH,
    OPEN,
    CLICK,
    UNSUBSCRIBE,
    CALENDAR,
    REGISTRATION_HOOK,
    LOGIN,
    LOGOUT,
    DASHBOARD,
    STATIC,
    CAMPAIGN_PAGE,
    CAMPAIGN_RETRY,
    MAILBOX,
    MAILBOX_MESSAGE,
    MAILBOX_HTML,
    CONTACTS,
    CONTACTS_UPLOAD,
    CONTACTS_IMPORT,
    CONTACTS_REJECTS,
    CONTACTS_LIST,
    CONTACT_PAGE,
    CONTACT_SUPPRESS,
    CONTACT_UNSUPPRESS,
    EVENTS,
    EVENT_NEW,
    EVENT_PAGE,
    EVENT_EDIT,
    EVENT_CANCEL,
    CAMPAIGN_NEW,
    CAMPAIGN_MANAGE,
    CAMPAIGN_PREVIEW_HTML,
    CAMPAIGN_LAUNCH,
    CAMPAIGN_MOVE,
    CAMPAIGN_TEST_SEND,
    CAMPAIGN_TEMPLATES,
    CAMPAIGN_TEMPLATE_EDIT,
    CAMPAIGN_TEMPLATE_PREVIEW,
    CAMPAIGN_TEMPLATE_FRAME,
    CAMPAIGN_TEMPLATE_REVERT,
    CAMPAIGN_WAVE_NEW,
    CAMPAIGN_WAVE_EDIT,
    CAMPAIGN_WAVE_REMOVE,
    CAMPAIGN_WAVES_STATUS,
    SETTINGS,
    USERS,
    USER_DISABLE,
    USER_PASSWORD,
)
"""Every path of the web service."""

STAFF_PAGES: tuple[RoutePath, ...] = (
    DASHBOARD,
    CAMPAIGN_PAGE,
    MAILBOX,
    MAILBOX_MESSAGE,
    CONTACTS,
    CONTACTS_IMPORT,
    CONTACTS_LIST,
    CONTACT_PAGE,
    EVENTS,
    EVENT_NEW,
    EVENT_PAGE,
    EVENT_EDIT,
    EVENT_CANCEL,
    CAMPAIGN_NEW,
    CAMPAIGN_MANAGE,
    CAMPAIGN_LAUNCH,
    CAMPAIGN_MOVE,
    CAMPAIGN_WAVE_NEW,
    CAMPAIGN_WAVE_EDIT,
    CAMPAIGN_WAVE_REMOVE,
    CAMPAIGN_TEMPLATES,
    CAMPAIGN_TEMPLATE_EDIT,
    SETTINGS,
    USERS,
)
"""The staff pages a login may lead back to (``/login?next=``): GET pages behind a login, nothing else. A staff
page that is not listed works, but a login from its address lands on the dashboard."""

_MAX_DESTINATION = 2000


def staff_destination(target: str) -> str | None:
    """``target`` when it is the local path (and query) of one of :data:`STAFF_PAGES`, else None.

    What a login redirects to comes from the visitor (``?next=``), so it is held to the routes: never a URL with a
    scheme or host, never ``//host`` or ``/\\host`` (browsers read both as another host), no control character
    (browsers drop tabs and line breaks before reading), no fragment, and a path matching a staff page's
    template. Anything else is None: the caller lands on the dashboard (no open redirect).
    """
    if (
        len(target) > _MAX_DESTINATION
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or CONTROL.search(target)
    ):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.fragment or "#" in target:
        return None
    if not any(_pattern(page).fullmatch(parts.path) for page in STAFF_PAGES):
        return None
    return target


@cache
def _pattern(route: RoutePath) -> re.Pattern[str]:
    """The paths ``route`` matches: its template, each ``{parameter}`` one non-empty segment."""
    literals = _PARAMETER.split(route.template)[::2]
    return re.compile("[^/]+".join(re.escape(literal) for literal in literals))


def absolute_url(public_url: str, route: RoutePath, **values: str) -> str:
    """The URL of ``route`` under ``public_url`` (``links.public_url``, with or without a trailing slash, and with
    a path prefix when a proxy serves the service below one): ``https://t.example.org/u/AbC``."""
    return public_url.rstrip("/") + route.path(**values)


def token_url(public_url: str, route: RoutePath, token: str) -> str:
    """:func:`absolute_url` of a route taking one signed token (open, click, unsubscribe, calendar)."""
    return absolute_url(public_url, route, token=token)
