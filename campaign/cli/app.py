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

COUNT = click.IntRange(0, 2**63 - 1)
"""A count option (how many to show, to skip): up to the largest integer the databases store (a larger one was a
traceback from the driver); more than there is means all."""
POSITIVE_COUNT = click.IntRange(1, 2**63 - 1)
"""A count option of at least one."""
