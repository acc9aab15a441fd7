"""What the settings page shows a staff member: the settings that say where mail goes from and to, read-only.

Contract: :func:`settings_view` returns only values that are safe to show anyone logged in: the sender, the
delivery mode and the relays' host and port, the public URL, the database's backend (``sqlite`` or
``postgresql``; never its URL, which may carry a password), whether the scheduler service runs
(:mod:`campaign.services.service_status`), and, from the ``workers`` registry as ``campaign status`` and
``campaign workers`` read it (:func:`campaign.services.workers.registry`, :func:`~campaign.services.workers.leader`,
:func:`~campaign.services.workers.running_workers`: one judgement of alive and stale for every interface), which
process leads the scheduler and the delivery workers alive, each with its heartbeat's age (names, hosts and pids
only). It never reads a secret (:mod:`campaign.secrets`: the signing key, the SMTP password, the webhook
secret), nor the SMTP user name, so nothing here can leak one.
"""

from __future__ import annotations

from dataclasses import dataclass

from campaign.config import Settings, parse_relay
from campaign.services.service_status import running_service, service_known
from campaign.services.workers import WorkerState, leader, registry, running_workers
from campaign.store.engine import Database


@dataclass(frozen=True, slots=True)
class ServiceState:
    """Whether ``campaign serve`` (the scheduler and the delivery worker) runs: ``running`` None when it cannot be
    told (a database other than a SQLite file); ``pid`` when running and known."""

    running: bool | None
    pid: int | None = None


@dataclass(frozen=True, slots=True)
class SettingsView:
    """The settings a staff member may see (see the module doc)."""

    from_address: str
    from_name: str
    reply_to: str
    mode: str  # "capture" or "relay"
    relays: tuple[str, ...]  # host:port of each relay (relay mode only)
    security: str
    public_url: str
    database_backend: str
    service: ServiceState
    leader: WorkerState | None  # the scheduler leading now (None: none leads)
    workers: tuple[WorkerState, ...]  # the delivery workers alive, as `campaign workers` lists them


def service_state(db: Database, lead: WorkerState | None = None) -> ServiceState:
    """Whether the scheduler service runs on ``db``: a leader's registry row with a fresh heartbeat says so on
    any database (as in ``campaign status``); otherwise the service's lock is probed (cheap, and changes
    nothing)."""
    if lead is not None:
        return ServiceState(True, lead.record.pid)
    if not service_known(db):
        return ServiceState(None)
    pid = running_service(db)
    if pid is None:
        return ServiceState(False)
    return ServiceState(True, pid or None)


def settings_view(settings: Settings, db: Database) -> SettingsView:
    """The settings page's values for ``settings`` and its database ``db``."""
    smtp = settings.smtp
    relays: tuple[str, ...] = ()
    if smtp.mode == "relay":
        # Host and port only: the relays' user name and password stay out of every page.
        others = (parse_relay(entry) for entry in smtp.servers)  # admitted by load_settings, so they parse
        relays = (f"{smtp.host}:{smtp.port}", *(f"{relay.host}:{relay.port}" for relay in others))
    processes = registry(db, settings)
    lead = leader(processes)
    return SettingsView(
        from_address=settings.mail.from_address,
        from_name=settings.mail.from_name,
        reply_to=settings.mail.reply_to,
        mode=smtp.mode,
        relays=relays,
        security=smtp.security,
        public_url=settings.links.public_url,
        database_backend=db.backend,
        service=service_state(db, lead),
        leader=lead,
        workers=tuple(running_workers(processes)),
    )
