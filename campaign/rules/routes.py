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
from urllib.parse import quote

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

ROUTES: tuple[RoutePath, ...] = (INDEX, HEALTH, OPEN, CLICK, UNSUBSCRIBE, CALENDAR, REGISTRATION_HOOK)
"""Every path of the web service."""


def absolute_url(public_url: str, route: RoutePath, **values: str) -> str:
    """The URL of ``route`` under ``public_url`` (``links.public_url``, with or without a trailing slash, and with
    a path prefix when a proxy serves the service below one): ``https://t.example.org/u/AbC``."""
    return public_url.rstrip("/") + route.path(**values)


def token_url(public_url: str, route: RoutePath, token: str) -> str:
    """:func:`absolute_url` of a route taking one signed token (open, click, unsubscribe, calendar)."""
    return absolute_url(public_url, route, token=token)
