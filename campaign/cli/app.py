"""What every command shares: the settings and the database handle, made on first use (see
:mod:`campaign.services.context`, which the scheduler service shares)."""

from __future__ import annotations

from dataclasses import dataclass

import click

from campaign.services.context import AppContext


@dataclass
class App(AppContext):
    """The command line's context object: the shared :class:`AppContext`, and how errors are shown."""

    debug: bool = False


pass_app = click.make_pass_decorator(App)
"""Decorator giving a command the :class:`App`."""
