"""How campaign starts helper processes (the import's writer, parallel senders)."""

from __future__ import annotations

import multiprocessing
import threading
from multiprocessing.context import BaseContext


def process_context() -> BaseContext:
    """Fork when this process runs no other thread, else spawn.

    A forked child starts at once, with every module already imported and the memory shared until written;
    a spawned one starts a new interpreter and imports everything again (about half a second here). But a
    process with other threads (a web server, the capture SMTP server) is not forked: a lock one of them holds
    would stay locked in the child for ever. Callers close their pooled database connections before forking
    (SQLite and PostgreSQL connections must not cross a fork); children open their own.
    """
    return multiprocessing.get_context("fork" if threading.active_count() == 1 else "spawn")
