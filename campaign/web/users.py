"""``/users``: the staff users, for admins only (managing users permission): list, add, disable, new password.

The changes are :mod:`campaign.services.users`'s, as ``campaign users`` makes them, and each is written to the
audit log there with the admin as its actor. Every form posts with the session's CSRF token, checked with the role
by :func:`~campaign.web.auth.require` before anything is read: a staff member or an analyst gets the 403 page on
GET and POST alike, and nothing changes.

* ``GET`` :data:`~campaign.rules.routes.USERS`: each user's name, role and whether disabled (since when); beside
  each enabled user a form giving a new password and a button disabling them (not beside the admin's own line:
  the service refuses that, so the page does not offer it); below, the form adding a user.
* ``POST`` :data:`~campaign.rules.routes.USERS` adds a user: name, role, the password twice. Each field is
  checked by the rules the service applies (:mod:`campaign.rules.access`), so each error is one line beside its
  field; the name and role typed are kept, a password never is. Success is a 303 back to the list, which says
  what was done.
* ``POST`` :data:`~campaign.rules.routes.USER_DISABLE` and :data:`~campaign.rules.routes.USER_PASSWORD` (the
  user's name in the path): disabling and a new password end the user's sessions (the service's contract). A
  refusal (the admin's own account, a password the rules refuse) is the list again with the line beside that
  user's form; an unknown user is the one-line 404 page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from campaign.exceptions import AlreadyExistsError, NotFoundError, ValidationError
from campaign.models import AuditAction, Permission, Role, User
from campaign.rules.access import MIN_PASSWORD_LENGTH, check_new_password, parse_user_name, user_name_key
from campaign.rules.routes import USERS
from campaign.services import audit
from campaign.services.sessions import Staff
from campaign.services.users import add_user, disable_user, list_users, set_password
from campaign.web.auth import require, staff_access
from campaign.web.dashboard import problem
from campaign.web.pages import NO_STORE
from campaign.web.settings_page import admin_data

PASSWORD_HINT = f"At least {MIN_PASSWORD_LENGTH} characters, not the user name: a few words make a good one."
"""What the password fields say of the rules (:func:`campaign.rules.access.check_new_password`)."""
DONE = {"added": "added", "disabled": "disabled", "password": "given a new password"}
"""What the list says after a change (``?done=``), of the user named in ``?user=``."""
_DIFFERENT_TWICE = "the two passwords differ; type the same one twice"


@dataclass
class AddForm:
    """The add form as typed (the name and role; never a password) and its errors by field."""

    name: str = ""
    role: str = Role.STAFF.value
    errors: dict[str, str] = field(default_factory=dict)


@dataclass
class RowErrors:
    """A refusal of an action on one user's line: ``user`` (their name key), which form, and the line to show."""

    user: str
    form: str  # "password" or "disable"
    message: str


@require(Permission.MANAGE_USERS)
async def users_page(request: Request, staff: Staff) -> Response:
    """``/users``: the list and the add form (GET), or a user added (POST); see the module doc."""
    if request.method != "POST":
        return await _page(request, staff, AddForm())
    form = await request.form()  # read already by the CSRF check: Starlette keeps it
    typed = AddForm(name=_text(form, "name").strip(), role=_text(form, "role"))
    password = _text(form, "password")
    errors = typed.errors
    try:
        name = parse_user_name(typed.name)
    except ValidationError as exc:
        errors["name"] = str(exc)
    try:
        role = Role(typed.role)
    except ValueError:
        errors["role"] = "choose a role: admin, staff or analyst"
    if message := _password_error(password, _text(form, "password_again"), typed.name):
        errors["password"] = message
    if errors:
        return await _page(request, staff, typed, status=400)
    try:
        user = await run_in_threadpool(add_user, admin_data(request).db, name, role, password, actor=staff.user_id)
    except AlreadyExistsError as exc:
        errors["name"] = str(exc)
        return await _page(request, staff, typed, status=409)
    return _back(request, "added", user.name)


@require(Permission.MANAGE_USERS)
async def disable(request: Request, staff: Staff) -> Response:
    """``POST`` a user's disabling (see the module doc)."""
    name = request.path_params["user"]
    try:
        change = await run_in_threadpool(disable_user, admin_data(request).db, name, actor=staff.user_id)
    except NotFoundError as exc:
        return problem(request, staff, 404, str(exc))
    except ValidationError as exc:
        return await _page(request, staff, AddForm(), RowErrors(user_name_key(name), "disable", str(exc)), status=400)
    return _back(request, "disabled", change.user.name)


@require(Permission.MANAGE_USERS)
async def new_password(request: Request, staff: Staff) -> Response:
    """``POST`` a user's new password (see the module doc)."""
    name = request.path_params["user"]
    form = await request.form()
    password = _text(form, "password")
    refused = _password_error(password, _text(form, "password_again"), name)
    if refused is None:
        try:
            change = await run_in_threadpool(set_password, admin_data(request).db, name, password, actor=staff.user_id)
        except NotFoundError as exc:
            return problem(request, staff, 404, str(exc))
        except ValidationError as exc:
            refused = str(exc)
        else:
            return _back(request, "password", change.user.name)
    return await _page(request, staff, AddForm(), RowErrors(user_name_key(name), "password", refused), status=400)


_USER_ACTIONS = frozenset((AuditAction.USER_ADDED, AuditAction.USER_DISABLED, AuditAction.PASSWORD_SET))
"""The audit entries the users page shows."""


async def _page(
    request: Request, staff: Staff, add: AddForm, row_error: RowErrors | None = None, *, status: int = 200
) -> Response:
    """The list with the add form ``add``, and ``row_error`` beside its user's form."""
    users = await run_in_threadpool(list_users, admin_data(request).db)
    # Who added, disabled or set the password of whom, newest first (the log holds logins too: not shown here).
    entries = await run_in_threadpool(audit.recent_actions, admin_data(request).db, 50, None, _USER_ACTIONS)
    return staff_access(request).pages.page(
        "users.html",
        staff=staff,
        status=status,
        users=users,
        entries=entries,
        own=user_name_key(staff.name),
        key=user_name_key,
        add=add,
        row_error=row_error,
        roles=[role.value for role in Role],
        password_hint=PASSWORD_HINT,
        done=_done(request.query_params, users) if status == 200 else None,
    )


def _password_error(password: str, again: str, user_name: str) -> str | None:
    """Why ``password`` (typed twice: ``again``) may not be ``user_name``'s, or None."""
    try:
        check_new_password(password, user_name)
    except ValidationError as exc:
        return str(exc)
    return None if password == again else _DIFFERENT_TWICE


def _back(request: Request, done: str, name: str) -> Response:
    """A 303 to the list, which then says what was ``done`` to user ``name``."""
    location = staff_access(request).pages.url(USERS) + "?" + urlencode({"done": done, "user": name})
    return RedirectResponse(location, status_code=303, headers=NO_STORE)


def _done(query: Mapping[str, str], users: list[User]) -> str | None:
    """The line saying what the change that led here did: only of a user of the list (a link cannot make the page
    claim anything else)."""
    what = DONE.get(query.get("done", ""))
    asked = user_name_key(query.get("user", ""))
    user = next((u for u in users if user_name_key(u.name) == asked), None)
    return None if what is None or user is None else f"User {user.name} {what}."


def _text(form: FormData, name: str) -> str:
    """Form field ``name`` as text ('' when missing or a file)."""
    value = form.get(name)
    return value if isinstance(value, str) else ""
