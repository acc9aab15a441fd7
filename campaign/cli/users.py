"""``campaign users ...``: the staff who log in to the web pages.

A password is never a command-line argument (the shell's history and ``ps`` would show it): it is asked for twice
on the terminal, without echo, or read from the first line of standard input with ``--password-stdin``.
"""

from __future__ import annotations

import sys

import click

from campaign.cli.app import App, pass_app
from campaign.cli.output import table
from campaign.cli.status import instant
from campaign.exceptions import ValidationError
from campaign.models import Role
from campaign.services.users import add_user, disable_user, list_users, set_password

_PASSWORD_STDIN = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of asking for it.",
)


@click.group("users")
def users_group() -> None:
    """Add, list and disable the staff who log in to the web pages, and set their passwords."""


@users_group.command("add")
@click.argument("name")
@click.option(
    "--role",
    required=True,
    type=click.Choice([role.value for role in Role]),
    help="admin: everything, users included; staff: campaigns and reports; analyst: reports only.",
)
@_PASSWORD_STDIN
@pass_app
def users_add(app: App, name: str, role: str, password_stdin: bool) -> None:
    """Add the user NAME (letters, digits, '.', '_', '-', '@'), asking for their password (at least 12
    characters)."""
    user = add_user(app.database(), name, Role(role), _password(password_stdin))
    click.echo(f"Added user {user.name} ({user.role})")


@users_group.command("list")
@pass_app
def users_list(app: App) -> None:
    """List the users: name, role, when added, and whether disabled."""
    users = list_users(app.database())
    if not users:
        click.echo("No users yet: add one with `campaign users add NAME --role admin`")
        return
    table(
        ["name", "role", "added", "status"],
        [
            [
                u.name,
                u.role,
                instant(u.created_at),
                "active" if u.disabled_at is None else f"disabled {instant(u.disabled_at)}",
            ]
            for u in users
        ],
    )


@users_group.command("disable")
@click.argument("name")
@pass_app
def users_disable(app: App, name: str) -> None:
    """Disable the user NAME: no more logins, and their sessions end now."""
    change = disable_user(app.database(), name)
    click.echo(f"Disabled user {change.user.name}; sessions ended: {change.sessions_ended}")


@users_group.command("password")
@click.argument("name")
@_PASSWORD_STDIN
@pass_app
def users_password(app: App, name: str, password_stdin: bool) -> None:
    """Set a new password for the user NAME (asked for); their sessions end."""
    change = set_password(app.database(), name, _password(password_stdin))
    click.echo(f"New password set for {change.user.name}; sessions ended: {change.sessions_ended}")


def _password(from_stdin: bool) -> str:
    """The password: the first line of standard input (without its line ending), or asked twice on the terminal."""
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise ValidationError("--password-stdin: standard input holds no password (one line is read)")
        return line
    if not sys.stdin.isatty():  # piped: the prompt could hide nothing, and would take two lines for one password
        raise ValidationError(
            "no terminal to ask for the password on: give it on the first line of standard input with --password-stdin"
        )
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
