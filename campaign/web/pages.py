"""How staff pages are answered: one layout, one stylesheet, the same headers on each.

* Pages are Jinja2 templates of this package (``templates/``), autoescaped, each extending ``base.html`` (the
  header with the user and the logout button, then the page). They work without JavaScript and at phone width.
  Figures are written as in every report (filters ``percent`` and ``duration``, :mod:`campaign.render.figures`);
  instants in a zone with ``local`` (:func:`local_time`, the zone's CLDR name): an event's times on its
  organiser's clock, what happened (the audit log, "as of") on the staff member's, ``staff.zone`` (the browser's
  at login, else UTC), under ``zone_label(zone)`` in a table's heading. ``may(staff.role, Permission.X)`` says
  what to offer.
* Every page is ``Cache-Control: no-store`` (what staff see stays out of caches), ``Referrer-Policy: same-origin``
  (:data:`SAME_ORIGIN_REFERRER`) and carries
  :data:`PAGE_POLICY`: styles and images from this site only, forms posting to this site only, no script, no
  framing. A page with scripts (the charts, the login form's clock) passes :data:`SCRIPT_PAGE_POLICY` in its
  ``headers`` instead, which adds ``script-src 'self'`` for this site's files; its template fills ``base.html``'s
  ``head`` block with them.
* Links and redirects are built from the route table under the path of ``links.public_url`` (:meth:`url`), so
  the pages work when a proxy serves the service below a path (``https://example.org/campaign/``).
* ``/static/{name}`` serves the files of this package's ``static/`` folder and the chart files
  (:func:`campaign.render.charts.assets`: uPlot, ``charts.js``, ``charts.css``), read once at start-up; any other
  name is the 404 page. Nothing is fetched from elsewhere. Templates may import the chart macros
  (``{% from "charts.html" import chart, bar %}``). ``static(name)`` in a template is the file's address with its
  content's hash (``?v=``), which is cached for a year (an hour without it): htmx (vendored from npm,
  ``static/VENDORED.md``) is loaded that way, by the pages that use it only.
"""

from __future__ import annotations

import hashlib
import mimetypes
from datetime import datetime
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from campaign.models import Permission
from campaign.render import charts
from campaign.render.figures import NONE, duration, percent
from campaign.render.localtime import generic_zone_name, wall_clock
from campaign.rules import routes
from campaign.rules.access import may
from campaign.rules.routes import RoutePath
from campaign.services.sessions import Staff

PAGE_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
"""The Content-Security-Policy of staff pages."""

SCRIPT_PAGE_POLICY = "script-src 'self'; " + PAGE_POLICY
"""The policy of a page with scripts: :data:`PAGE_POLICY`, and the scripts this site serves (``/static/``); no
inline script, nothing from elsewhere."""

NO_STORE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}
"""Headers of every staff answer, redirects included."""

SAME_ORIGIN_REFERRER = {"Referrer-Policy": "same-origin"}
"""A staff page's forms and links send its address to this site only (elsewhere nothing, as the app's default
``no-referrer``): a form posted after the session ended leads, after the login, back to the page it was on
(:mod:`.auth`)."""

_STATIC_CACHE = "public, max-age=3600"
_VERSIONED_CACHE = "public, max-age=31536000, immutable"


class StaffPages:
    """Renders staff pages and serves the static files, for the service published at ``public_url``."""

    def __init__(self, public_url: str, *, mailbox_shown: bool = False) -> None:
        self.prefix = urlsplit(public_url).path.rstrip("/")
        """The path the service is published under ('' at the root of its host)."""
        self.templates = Environment(
            loader=ChoiceLoader([PackageLoader("campaign.web", "templates"), charts.template_loader()]),
            autoescape=True,
            undefined=StrictUndefined,
            auto_reload=False,
        )
        self.templates.globals.update(
            url=self.url,
            static=self.static_url,
            routes=routes,
            may=may,
            Permission=Permission,
            mailbox_shown=mailbox_shown,
        )
        self.templates.filters.update(percent=percent, duration=duration, local=local_time)
        # A heading over times of a zone ("When (Central European Time)"), whatever their season.
        self.templates.globals["zone_label"] = generic_zone_name
        files = {
            entry.name: entry.read_bytes()
            for entry in resources.files("campaign.web").joinpath("static").iterdir()
            if entry.is_file()
        }
        self._static = {
            name: (body, mimetypes.guess_type(name)[0] or "application/octet-stream")
            for name, body in {**files, **charts.assets()}.items()
        }
        self._versions = {name: hashlib.sha256(body).hexdigest()[:16] for name, (body, _) in self._static.items()}

    def url(self, route: RoutePath, **values: str) -> str:
        """The address of ``route`` as a browser asks for it: under the published path prefix."""
        return self.prefix + route.path(**values)

    def page(
        self,
        template: str,
        *,
        staff: Staff | None,
        status: int = 200,
        headers: dict[str, str] | None = None,
        **values: Any,
    ) -> HTMLResponse:
        """The page ``template`` rendered with ``values``; ``staff`` (the logged-in user or None) fills the header."""
        html = self.templates.get_template(template).render(staff=staff, **values)
        return HTMLResponse(
            html,
            status_code=status,
            headers={**NO_STORE, **SAME_ORIGIN_REFERRER, "Content-Security-Policy": PAGE_POLICY, **(headers or {})},
        )

    def problem(self, staff: Staff, status: int, message: str, back: tuple[str, str] | None = None) -> HTMLResponse:
        """A page saying, in one line, what went wrong and what to fix; ``back``: a link (its text and address) to
        the page the action was on, beside the one to the dashboard (a 409 on a campaign's launch led only there)."""
        return self.page("problem.html", staff=staff, status=status, message=message, back=back)

    def static_url(self, name: str) -> str:
        """The address of the static file ``name`` with its content's hash (``?v=``): cached for a year, since
        another content is another address."""
        return f"{self.url(routes.STATIC, name=name)}?v={self._versions[name]}"

    async def static(self, request: Request) -> Response:
        """``/static/{name}``: a file shipped in the package, or 404; cached for a year when asked for by
        :meth:`static_url`'s address (the current hash), else for an hour."""
        name = request.path_params["name"]
        found = self._static.get(name)
        if found is None:
            raise HTTPException(404)
        body, media_type = found
        versioned = request.query_params.get("v") == self._versions[name]
        return Response(
            body, media_type=media_type, headers={"Cache-Control": _VERSIONED_CACHE if versioned else _STATIC_CACHE}
        )


def local_time(moment: datetime | None, zone: str, form: str = "%Y-%m-%d %H:%M %Z") -> str:
    """:func:`~campaign.render.localtime.wall_clock` (``%Z``: the zone's CLDR name); the figure for none when
    None."""
    return NONE if moment is None else wall_clock(moment, zone, form)
