"""The web service's skeleton, through real HTTP: the app on a real uvicorn server on 127.0.0.1 port 0, against a
real SQLite file (and a real PostgreSQL database), spoken to with the standard library's ``http.client``; and
``campaign web`` and ``campaign serve`` as real processes."""

from __future__ import annotations

import asyncio
import http.client
import logging
import os
import queue
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psycopg
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from campaign import __version__
from campaign.config import load_settings
from campaign.exceptions import ConfigError
from campaign.rules import routes
from campaign.rules.routes import RoutePath, absolute_url, token_url
from campaign.secrets import signing_key
from campaign.services.context import AppContext
from campaign.services.database import init_database
from campaign.services.dispatch_summary import DispatchSummary
from campaign.store.engine import Database
from campaign.web.app import SECURITY_HEADERS
from campaign.web.server import WebServer, WebServerError, listen
from scheduler.service import SchedulerService
from tests.conftest import _reset_pg_schema

SECRET = "s3cret-signing-key-that-must-never-show-0123456789"

# ---------------------------------------------------------------------------------------------------------
# The app on a real server, in a thread of this process
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: str


@dataclass
class Running:
    """A web server running in a thread, and how to speak to it."""

    server: WebServer
    host: str
    port: int

    def get(self, path: str, method: str = "GET") -> Reply:
        return request(self.host, self.port, path, method)


def request(host: str, port: int, path: str, method: str = "GET") -> Reply:
    """One request on a connection of its own (http.client: nothing between the test and the server)."""
    with closing(http.client.HTTPConnection(host, port, timeout=10)) as conn:
        conn.request(method, path)
        response = conn.getresponse()
        body = response.read().decode()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, body)


def config_for(tmp_path: Path, url: str) -> Path:
    """A config.toml on the database at ``url``, its web service on any free port."""
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{url}"\n[web]\nport = 0\n')
    # The token-signing key, as `campaign init` makes it: the app verifies tracking tokens with it.
    signing_key(load_settings(config, environ={}).data_dir, environ={}, create=True)
    return config


def db_config(tmp_path: Path, db: Database) -> Path:
    """A config.toml on ``db`` (either backend), its web service on any free port."""
    return config_for(tmp_path, db.url.render_as_string(hide_password=False))


@contextmanager
def running(config: Path, server: WebServer | None = None) -> Iterator[Running]:
    """The web app of ``config`` served on 127.0.0.1, port 0, until the block ends (a graceful stop)."""
    if server is None:
        server = WebServer(AppContext(settings_given=load_settings(config, environ={})), host="127.0.0.1", port=0)
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            asyncio.run(server.serve())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    try:
        yield Running(server, host, int(port))
    finally:
        server.request_stop()
        thread.join(15)
        assert not thread.is_alive(), "the server did not stop"
        assert failure == []


@pytest.fixture
def web(db: Database, tmp_path: Path) -> Iterator[Running]:
    """The app on each backend."""
    with running(db_config(tmp_path, db)) as web:
        yield web


@pytest.fixture
def sqlite_web(sqlite_db: Database, tmp_path: Path) -> Iterator[Running]:
    """The app on a SQLite file, for tests that move, replace or rewrite that file under the running server."""
    with running(db_config(tmp_path, sqlite_db)) as web:
        yield web


def assert_security_headers(reply: Reply) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert reply.headers.get(name.lower()) == value, (name, reply.headers)


# ---------------------------------------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------------------------------------


def test_the_index_says_what_the_server_is_and_nothing_of_its_settings(web: Running, db: Database) -> None:
    reply = web.get("/")
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/plain; charset=utf-8"
    assert reply.body.startswith(f"campaign {__version__}\n")
    assert "web service of campaign" in reply.body
    assert db.describe() not in reply.body
    assert db.url.database is not None
    assert db.url.database not in reply.body
    assert db.backend not in reply.body
    assert "server" not in reply.headers  # the server does not advertise itself
    assert_security_headers(reply)
    head = web.get("/", method="HEAD")
    assert (head.status, head.body) == (200, "")


def test_healthz_is_ok_while_the_database_answers(web: Running) -> None:
    reply = web.get("/healthz")
    # First the verdict, then what the tracking recorder did since the start (nothing yet).
    assert (reply.status, reply.body.splitlines()) == (
        200,
        ["ok", "tracking recorded=0 machine=0 repeats=0 dropped=0 failed_batches=0"],
    )
    assert reply.headers["cache-control"] == "no-store"
    assert_security_headers(reply)


def test_healthz_is_503_with_the_reason_when_the_database_file_is_gone_and_ok_when_it_is_back(
    sqlite_web: Running, sqlite_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    web = sqlite_web  # SQLite itself: the database file moved away under the running server
    path = sqlite_db.file
    assert path is not None
    moved = path.with_name("elsewhere.db")
    assert web.get("/healthz").status == 200
    with caplog.at_level(logging.INFO, "campaign.web"):
        path.rename(moved)
        # The pool's open connection would still answer (Linux keeps the moved file open): the probe looks at the path.
        for _ in range(2):
            reply = web.get("/healthz")
            assert reply.status == 503
            assert reply.body.splitlines()[0] == (
                f"unavailable: database.url: sqlite:///{path} is missing (moved or deleted since it was opened)"
            )
            assert reply.headers["cache-control"] == "no-store"
            assert_security_headers(reply)
        moved.rename(path)
        assert web.get("/healthz").status == 200
    # Logged once when it failed (not at every poll), once when it recovered.
    assert [r.getMessage().split(":")[0] for r in caplog.records if r.name == "campaign.web"] == [
        "database unhealthy",
        "database healthy again",
    ]


def test_healthz_is_503_when_the_database_file_was_replaced_by_something_unreadable(
    sqlite_web: Running, sqlite_db: Database
) -> None:
    web = sqlite_web  # SQLite itself: the database file replaced under the running server
    path = sqlite_db.file
    assert path is not None
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.write_bytes(b"this is not a database " * 100)
    reply = web.get("/healthz")
    assert reply.status == 503
    assert reply.body.splitlines()[0] == (
        f"unavailable: database.url: sqlite:///{path} was replaced since it was opened: restart this process"
    )


def test_healthz_is_503_when_the_schema_is_gone(sqlite_web: Running, sqlite_db: Database) -> None:
    web = sqlite_web  # SQLite itself: a table dropped from the file by another connection (sqlite3)
    path = sqlite_db.file
    assert path is not None
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("DROP TABLE alembic_version")
        conn.commit()
    reply = web.get("/healthz")
    assert reply.status == 503
    assert reply.body.splitlines()[0] == f"unavailable: database.url: sqlite:///{path} has no campaign schema any more"


@pytest.mark.postgres
def test_healthz_on_postgresql_is_503_while_the_server_drops_the_connection_then_ok_again(
    pg_server: str, tmp_path: Path
) -> None:
    _reset_pg_schema(pg_server)
    url = pg_server.replace("postgresql://", "postgresql+psycopg://", 1)
    database = Database(url)
    init_database(database)
    database.dispose()
    with running(config_for(tmp_path, url)) as web:
        assert web.get("/healthz").status == 200
        name = pg_server.rsplit("/", 1)[1]
        with psycopg.connect(pg_server.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()) AS t",
                (name,),
            ).fetchone()
        assert killed is not None
        assert killed[0] >= 1
        reply = web.get("/healthz")
        assert reply.status == 503
        assert reply.body.startswith(f"unavailable: database.url: {database.describe()} does not answer: ")
        # The reason on one line (a driver's message may hold several), then the recorder's counts.
        assert len(reply.body.splitlines()) == 2
        assert reply.body.splitlines()[1].startswith("tracking recorded=")
        # The dropped connection left the pool: the next check connects again.
        assert web.get("/healthz").status == 200


def test_an_unknown_path_is_a_plain_404_without_a_traceback(web: Running) -> None:
    for path in ("/nope", "/o/", "/u", "/%0d%0aX-Injected:%20yes", "/../../etc/passwd", "/healthz/extra"):
        reply = web.get(path)
        assert reply.status == 404, path
        assert reply.headers["content-type"] == "text/plain; charset=utf-8"
        assert reply.body.startswith("404 Not Found\n")
        assert "nothing at this address" in reply.body
        assert "Traceback" not in reply.body
        assert "x-injected" not in reply.headers
        assert_security_headers(reply)


def test_a_wrong_method_is_a_plain_405_saying_which_are_allowed(web: Running) -> None:
    reply = web.get("/healthz", method="POST")
    assert reply.status == 405
    assert reply.body == "405 Method Not Allowed\n"
    assert set(reply.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}
    assert_security_headers(reply)


def test_an_endpoint_that_fails_is_logged_and_answered_with_a_plain_500(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = db_config(tmp_path, db)
    server = WebServer(AppContext(settings_given=load_settings(config, environ={})), host="127.0.0.1", port=0)

    async def failing(request: Request) -> Response:
        raise RuntimeError(f"no luck with {SECRET}")

    # A route of this test's own (the app serves only routes that work): how any endpoint failing is answered.
    server.app.router.routes.append(Route("/failing", failing))
    with caplog.at_level(logging.ERROR), running(config, server) as web:
        reply = web.get("/failing")
        assert web.get("/healthz").status == 200  # the server goes on serving
    assert reply.status == 500
    assert reply.body.startswith("500 Internal Server Error\n")
    assert SECRET not in reply.body
    assert "Traceback" not in reply.body
    assert "RuntimeError" not in reply.body
    assert_security_headers(reply)
    lines = [r.getMessage() for r in caplog.records if r.name == "campaign.web"]
    assert lines == ['request failed method=GET path="/failing" error="RuntimeError: no luck with ' + SECRET + '"']


# ---------------------------------------------------------------------------------------------------------
# The path table
# ---------------------------------------------------------------------------------------------------------


def test_the_path_table_has_the_issues_paths_each_once() -> None:
    assert {r.name: r.template for r in routes.ROUTES} == {
        "index": "/",
        "health": "/healthz",
        "open": "/o/{token}.gif",
        "click": "/c/{token}",
        "unsubscribe": "/u/{token}",
        "calendar": "/ics/{token}",
        "registration-hook": "/hooks/registration",
        "login": "/login",
        "logout": "/logout",
        "dashboard": "/dashboard",
        "static": "/static/{name}",
        "campaign-page": "/dashboard/campaigns/{campaign}",
        "campaign-retry": "/dashboard/campaigns/{campaign}/retry",
        "mailbox": "/dashboard/mailbox",
        "mailbox-message": "/dashboard/mailbox/{message}",
        "mailbox-html": "/dashboard/mailbox/{message}/html",
        "events": "/events",
        "event-new": "/events/new",
        "event-page": "/events/{event}",
        "event-edit": "/events/{event}/edit",
        "event-cancel": "/events/{event}/cancel",
        "contacts": "/contacts",
        "contacts-upload": "/contacts/upload",
        "contacts-import": "/contacts/imports/{job}",
        "contacts-rejects": "/contacts/imports/{job}/rejects.csv",
        "contacts-list": "/contacts/lists/{list}",
        "contact-page": "/contacts/people/{contact}",
        "contact-suppress": "/contacts/people/{contact}/suppress",
        "contact-unsuppress": "/contacts/people/{contact}/unsuppress",
        "campaign-new": "/campaigns/new",
        "campaign-manage": "/campaigns/{campaign}",
        "campaign-preview-html": "/campaigns/{campaign}/preview.html",
        "campaign-launch": "/campaigns/{campaign}/launch",
        "campaign-move": "/campaigns/{campaign}/status",
        "campaign-test-send": "/campaigns/{campaign}/test-send",
        "campaign-templates": "/campaigns/{campaign}/templates",
        "campaign-template-edit": "/campaigns/{campaign}/templates/{file}",
        "campaign-template-preview": "/campaigns/{campaign}/templates/{file}/preview",
        "campaign-template-frame": "/campaigns/{campaign}/templates/{file}/frames/{frame}",
        "campaign-template-revert": "/campaigns/{campaign}/templates/{file}/revert",
        "campaign-wave-new": "/campaigns/{campaign}/waves/new",
        "campaign-wave-edit": "/campaigns/{campaign}/waves/{wave}/edit",
        "campaign-wave-remove": "/campaigns/{campaign}/waves/{wave}/remove",
        "campaign-waves-status": "/campaigns/{campaign}/waves/status",
        "settings": "/settings",
        "users": "/users",
        "user-disable": "/users/{user}/disable",
        "user-password": "/users/{user}/password",
    }
    assert len({r.template for r in routes.ROUTES}) == len(routes.ROUTES)


def test_every_route_the_app_serves_comes_from_the_table(db: Database, tmp_path: Path) -> None:
    config = db_config(tmp_path, db)
    with WebServer(AppContext(settings_given=load_settings(config, environ={})), port=0) as server:
        served = {route.name: route.path for route in server.app.routes if isinstance(route, Route)}
    table = {r.name: r.template for r in routes.ROUTES}
    assert served
    assert {name: table.get(name) for name in served} == served


def test_links_are_built_from_the_table_under_the_public_url() -> None:
    assert token_url("https://t.example.org", routes.OPEN, "AbC-_9") == "https://t.example.org/o/AbC-_9.gif"
    assert token_url("https://t.example.org/", routes.UNSUBSCRIBE, "x") == "https://t.example.org/u/x"
    assert token_url("https://example.org/mail/", routes.CALENDAR, "x") == "https://example.org/mail/ics/x"
    assert absolute_url("https://t.example.org", routes.REGISTRATION_HOOK) == "https://t.example.org/hooks/registration"
    # A value can never add a segment, a query or a fragment.
    assert routes.CLICK.path(token="a/../b?c#d") == "/c/a%2F..%2Fb%3Fc%23d"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "takes token, given none"),
        ({"token": "a", "extra": "b"}, "takes token, given extra, token"),
        ({"token": ""}, "token must not be empty"),
    ],
)
def test_a_link_built_wrong_is_an_error_at_once(values: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        routes.CLICK.path(**values)
    with pytest.raises(ValueError, match="starts with '/'"):
        RoutePath("bad", "o/{token}")


# ---------------------------------------------------------------------------------------------------------
# The commands, as real processes
# ---------------------------------------------------------------------------------------------------------


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    env["CAMPAIGN_SECRET_KEY"] = SECRET
    return env


def campaign(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "campaign", "--config", str(config), *args]


class Lines:
    """The lines a process writes to a pipe, read in a thread, so a test can wait for one with a time limit."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern: str, seconds: float = 30) -> re.Match[str]:
        while True:
            try:
                line = self._queue.get(timeout=seconds)
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} in {seconds} s; saw {self.seen}") from None
            if line is None:
                raise AssertionError(f"the stream ended without a line matching {pattern!r}; saw {self.seen}")
            self.seen.append(line)
            if match := re.search(pattern, line):
                return match

    def rest(self, seconds: float = 30) -> str:
        while (line := self._queue.get(timeout=seconds)) is not None:
            self.seen.append(line)
        return "".join(self.seen)


@contextmanager
def process(command: list[str]) -> Iterator[subprocess.Popen[str]]:
    """``command`` as a real process, killed if a test leaves it running."""
    proc = subprocess.Popen(command, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def http_get(url: str, path: str) -> Reply:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return request(host, int(port), path)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_campaign_web_prints_its_url_serves_and_stops_on_a_signal_with_status_0(
    db: Database, tmp_path: Path, signum: signal.Signals
) -> None:
    config = db_config(tmp_path, db)
    with process(campaign(config, "web", "--host", "127.0.0.1", "--port", "0")) as web:
        assert web.stdout is not None
        assert web.stderr is not None
        out, err = Lines(web.stdout), Lines(web.stderr)
        url = out.wait_for(r"^Listening on (http://127\.0\.0\.1:\d+)$").group(1)
        assert not url.endswith(":0")
        assert http_get(url, "/").status == 200
        assert http_get(url, "/healthz").body.startswith("ok\n")
        web.send_signal(signum)
        assert web.wait(timeout=30) == 0
        assert out.rest().splitlines() == [f"Listening on {url}", "Stopped."]
        assert "Traceback" not in err.rest()
    with pytest.raises(ConnectionRefusedError):
        http_get(url, "/")


def test_campaign_web_on_a_port_in_use_says_so_in_one_line(db: Database, tmp_path: Path) -> None:
    config = db_config(tmp_path, db)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = subprocess.run(
            campaign(config, "web", "--port", str(port)), env=environment(), capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"Error: cannot listen on 127.0.0.1:{port}: Address already in use; choose another web.port (or --port), "
        "or stop what uses it"
    ]


def test_campaign_web_refuses_a_bad_host_and_a_bad_setting(db: Database, tmp_path: Path) -> None:
    config = db_config(tmp_path, db)
    done = subprocess.run(
        campaign(config, "web", "--host", "not a host"), env=environment(), capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "Invalid value for '--host': must be a host name or an IP address to listen on" in done.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[web]\nport = 70000\n")
    done = subprocess.run(campaign(bad, "web"), env=environment(), capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"Error: {bad}: 'web.port' must be between 0 and 65535, not 70000"]


def test_campaign_web_on_a_database_without_the_schema_says_what_to_run(empty_db: Database, tmp_path: Path) -> None:
    empty_db.create()
    config = db_config(tmp_path, empty_db)
    done = subprocess.run(campaign(config, "web"), env=environment(), capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"Error: {empty_db.describe()} has no campaign schema yet: run `campaign init`"]
    assert done.stdout == ""


def test_a_bad_host_setting_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[web]\nhost = "http://example.org"\n')
    with pytest.raises(ConfigError, match=r"'web\.host' must be a host name or an IP address to listen on"):
        load_settings(config, environ={})


def test_campaign_serve_runs_the_web_service_beside_the_scheduler_and_stops_both(db: Database, tmp_path: Path) -> None:
    config = db_config(tmp_path, db)
    with process(campaign(config, "serve")) as serve:
        assert serve.stderr is not None
        assert serve.stdout is not None
        err = Lines(serve.stderr)
        url = err.wait_for(r"INFO web listening url=(http://127\.0\.0\.1:\d+)$").group(1)
        err.wait_for(r"INFO serving ")
        assert http_get(url, "/healthz").body.startswith("ok\n")
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0
        rest = err.rest()
        assert "INFO stopping" in rest
        assert "INFO stopped" in rest
        assert "Traceback" not in rest
    with pytest.raises(ConnectionRefusedError):
        http_get(url, "/healthz")


def test_campaign_serve_without_the_web_service_and_with_a_port_in_use(db: Database, tmp_path: Path) -> None:
    url = db.url.render_as_string(hide_password=False)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        # The port is taken: the service stops before it starts, in one line.
        config = tmp_path / "config.toml"
        config.write_text(f'[database]\nurl = "{url}"\n[web]\nport = {port}\n')
        done = subprocess.run(campaign(config, "serve"), env=environment(), capture_output=True, text=True, timeout=60)
        assert done.returncode == 1
        assert done.stderr.splitlines()[-1:] == [
            f"Error: cannot listen on 127.0.0.1:{port}: Address already in use; choose another web.port (or --port), "
            "or stop what uses it"
        ]
        # web.enabled = false: the scheduler alone, whatever holds the port.
        config.write_text(f'[database]\nurl = "{url}"\n[web]\nenabled = false\nport = {port}\n')
        with process(campaign(config, "serve")) as serve:
            assert serve.stderr is not None
            err = Lines(serve.stderr)
            err.wait_for(r"INFO serving ")
            serve.send_signal(signal.SIGTERM)
            assert serve.wait(timeout=30) == 0
            assert "web listening" not in err.rest()


def test_a_host_that_does_not_resolve_is_one_line_naming_the_setting() -> None:
    with pytest.raises(WebServerError, match=r"^web\.host: cannot listen on no-such-host\.invalid:0: "):
        listen("no-such-host.invalid", 0)


# ---------------------------------------------------------------------------------------------------------
# Beside the scheduler, in one event loop
# ---------------------------------------------------------------------------------------------------------


def scheduler_context(tmp_path: Path, db: Database) -> AppContext:
    context = AppContext(settings_given=load_settings(db_config(tmp_path, db), environ={}))
    context._key = SECRET.encode()
    return context


def test_the_scheduler_stops_its_web_server_when_it_stops(db: Database, tmp_path: Path) -> None:
    context = scheduler_context(tmp_path, db)
    service = SchedulerService(context, tick_seconds=1)
    web = WebServer(context, host="127.0.0.1", port=0)

    async def scenario() -> tuple[Reply, DispatchSummary]:
        with context.smtp_servers() as servers:
            run = asyncio.create_task(service.run(servers, companions=[web]))
            await wait_until(lambda: web.started)
            reply = await asyncio.to_thread(http_get, web.url, "/healthz")
            service.request_stop()
            return reply, await asyncio.wait_for(run, 30)

    reply, summary = asyncio.run(scenario())
    assert (reply.status, reply.body.splitlines()[0]) == (200, "ok")
    assert summary.counts == {}
    with pytest.raises(ConnectionRefusedError):
        http_get(web.url, "/healthz")


def test_a_web_server_that_fails_stops_the_scheduler_and_its_error_is_raised(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    context = scheduler_context(tmp_path, db)
    service = SchedulerService(context, tick_seconds=1)
    web = WebServer(context, host="127.0.0.1", port=0)

    @asynccontextmanager
    async def failing_startup(app: object) -> AsyncIterator[None]:
        raise RuntimeError("the app could not start")
        yield

    # An app whose start-up fails (the app has no start-up of its own yet): what the scheduler does then.
    web.app.router.lifespan_context = failing_startup

    async def scenario() -> None:
        with context.smtp_servers() as servers:
            await asyncio.wait_for(service.run(servers, companions=[web]), 30)

    with caplog.at_level(logging.INFO), pytest.raises(WebServerError, match="the web app failed to start"):
        asyncio.run(scenario())
    logged = [r.getMessage() for r in caplog.records if r.name == "campaign.serve"]
    assert "stopping: a service beside the scheduler ended" in logged
    assert logged[-1].startswith("stopped")


async def wait_until(condition: Callable[[], bool], seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")
