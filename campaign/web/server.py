"""The web app on a uvicorn server: alone (``campaign web``) or in another service's event loop (``campaign serve``).

:class:`WebServer` binds its socket when it is made, before anything is served: a port in use or an address that is
not this machine's is a one-line :class:`WebServerError` naming the setting, before the scheduler sends anything,
and with port 0 the port taken is known at once (:attr:`WebServer.url`). uvicorn is driven programmatically
(``uvicorn.Config`` and ``Server.serve`` on that socket), with its own signal handling turned off: the process's
SIGTERM and SIGINT belong to whoever runs the server, which calls :meth:`WebServer.request_stop` (``campaign web``:
:meth:`WebServer.run`; ``campaign serve``: the scheduler service). A graceful stop closes the socket, lets the
requests in progress finish (at most :data:`GRACE_SECONDS`) and returns; a stop ``at_once`` does not wait.

uvicorn's parser is httptools and its loop uvloop where installed (``campaign web`` runs on uvloop; in
``campaign serve`` the server shares the scheduler's loop). No access log: a line per pixel request would cost
more than the request, and tracking records its own hits. No ``Server:`` header: the server advertises nothing.
``X-Forwarded-For`` only from ``web.trusted_proxies``: uvicorn's default would take the client's address from it
on any connection from 127.0.0.1 (a reverse proxy's, or anyone's on the machine).

The HTTP protocol, with what makes the open pixel fast, is :mod:`campaign.web.protocol`.

Why uvicorn and not granian (Rust's HTTP stack, its RSGI interface): measured with ``wrk -t1 -c50 -d8s``, each
server pinned to one core as ``bench/tracking.py`` pins them, three alternated rounds, granian 2.8.9 with one
worker and one runtime thread (single- or multi-threaded runtime) answering the 43-byte GIF from a handler that
does nothing else made 34,800-38,700 req/s; this server answering the pixel for a token it refuses (the token
checked, the same headers) made 38,700-41,500. Granian's floor is below this server's with more work done, so
it could not do better once the hit is recorded on top.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from types import TracebackType

import uvicorn

from campaign.exceptions import CampaignError
from campaign.services.context import AppContext
from campaign.web.app import create_app
from campaign.web.protocol import HttpProtocol

GRACE_SECONDS = 10
"""On a graceful stop, how long requests in progress may take to finish."""
_BACKLOG = 2048  # connections the kernel queues before accept (uvicorn's default)
# Net new tracked objects between collections of the youngest generation while serving (Python's default: 700).
# A request's own objects die with it (reference counts); what outlives it is its hit (two objects) until the
# recorder writes it, so at 700 the collector ran ~200 times a second under load and passed each buffered hit up
# through every generation; at 5,000, ~40 times (bench/tracking.py, clicks: the collector's time 0.42 → 0.28 s in
# a 10 s run, start-up's collection included).
_YOUNG_COLLECTION = 5_000
# How long a thread holding the GIL may keep it while another waits (Python's default: 5 ms). The recorder's writer
# thread runs Python between its database calls; the event loop waited up to 5 ms for each turn meanwhile. At 1 ms,
# with the threshold above: clicks' p99 9.4-10 → 7.2 ms and 35-37.5 → 31 µs of server CPU a request (the writer's
# slices interleave with the loop's turns instead of stalling them; 10 s runs of bench/tracking.py). Its default
# run, with the recorder's untracked burst memory and migration 0014 too: click 35.9 → 33.9 µs, p99 33.1 → 8.3 ms;
# pixel 26.4 → 25.5 µs, p99 6.3 → 5.8 ms.
_SWITCH_SECONDS = 0.001


class WebServerError(CampaignError):
    """The web server cannot start: its address cannot be listened on, or the app failed to start."""


class _Server(uvicorn.Server):
    """uvicorn's server without its signal handling (see the module doc)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Nothing: uvicorn's own handlers would take the signals from the service running it, and re-raise them
        after the stop (so the process would die of SIGTERM instead of exiting 0)."""
        yield


class WebServer:
    """The web app of ``context`` on a uvicorn server listening on ``host``:``port`` (default: ``web.host`` and
    ``web.port``; port 0 takes any free port). Use it as a context manager, or :meth:`close` it, so that the
    socket is closed if :meth:`serve` never runs."""

    def __init__(self, context: AppContext, *, host: str | None = None, port: int | None = None) -> None:
        settings = context.settings.web
        # The database is checked first: a server never listens on one it cannot use.
        self.app = create_app(context)
        """The Starlette app served."""
        self._socket = listen(settings.host if host is None else host, settings.port if port is None else port)
        config = uvicorn.Config(
            self.app,
            lifespan="on",
            ws="none",
            http=HttpProtocol,
            access_log=False,
            server_header=False,
            # X-Forwarded-For only from the proxies named in web.trusted_proxies: uvicorn's default would believe
            # it from anyone on 127.0.0.1, who could then claim any address.
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=list(settings.trusted_proxies),
            log_config=None,  # the command that runs the server decides where its log lines go
            timeout_graceful_shutdown=GRACE_SECONDS,
        )
        self._server = _Server(config)
        address, bound_port = self._socket.getsockname()[:2]
        shown = f"[{address}]" if self._socket.family == socket.AF_INET6 else address
        self.url = f"http://{shown}:{bound_port}"
        """The URL the server listens on: ``http://127.0.0.1:8080``, ``http://[::1]:41231`` (the port taken)."""

    @property
    def started(self) -> bool:
        """Whether :meth:`serve` has begun answering requests."""
        return self._server.started

    async def serve(self) -> None:
        """Serve until :meth:`request_stop`, then return once the requests in progress are done."""
        try:
            await self._server.serve(sockets=[self._socket])
        except SystemExit:
            # uvicorn's way of saying the app's startup failed (it has logged why).
            raise WebServerError("the web app failed to start (see the log above)") from None
        finally:
            self._socket.close()

    def request_stop(self, *, at_once: bool = False) -> None:
        """Stop serving: gracefully, or ``at_once`` without waiting for the requests in progress. Safe to call more
        than once, and from a signal handler."""
        self._server.should_exit = True
        if at_once:
            self._server.force_exit = True

    def run(self, ready: Callable[[], object] | None = None) -> None:
        """Serve in an event loop of its own (uvloop where installed) until SIGTERM or SIGINT; a second signal
        stops at once. Returns normally either way (``campaign web`` exits 0). ``ready`` is called once the
        signals are handled (a signal before would kill the process): the moment to say the server is up."""
        # What start-up made (modules, the schema, templates: most of the heap) stays for the process's life: frozen,
        # the garbage collector no longer walks it in each full collection, pauses that made the pixel's p99 latency
        # 105 ms instead of 17 (bench/tracking.py). Then the collector's and the GIL's pace while serving (above).
        gc.collect()
        gc.freeze()
        gc.set_threshold(_YOUNG_COLLECTION, *gc.get_threshold()[1:])
        sys.setswitchinterval(_SWITCH_SECONDS)
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(self._serve_until_signalled(ready))

    async def _serve_until_signalled(self, ready: Callable[[], object] | None) -> None:
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT)
        for signum in signals:
            loop.add_signal_handler(signum, self._signalled)
        try:
            if ready is not None:
                ready()
            await self.serve()
        finally:
            for signum in signals:
                loop.remove_signal_handler(signum)

    def _signalled(self) -> None:
        self.request_stop(at_once=self._server.should_exit)

    def close(self) -> None:
        """Close the socket (when :meth:`serve` never ran; closing twice is harmless)."""
        self._socket.close()

    def __enter__(self) -> WebServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host``:``port`` (port 0: any free port), or a one-line :class:`WebServerError`
    saying which setting to change."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise WebServerError(f"web.host: cannot listen on {where}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        # A restarted server may listen again at once, while the old connections wait out TIME_WAIT (this never
        # lets two servers share the port: that would be SO_REUSEPORT).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(_BACKLOG)
    except OSError as exc:
        sock.close()
        raise WebServerError(f"cannot listen on {where}: {_listen_advice(exc)}") from None
    return sock


def _listen_advice(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        return f"{reason}; choose another web.port (or --port), or stop what uses it"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{reason}; web.host (or --host) must be an address of this machine"
    if exc.errno == errno.EACCES:
        return f"{reason}; ports below 1024 need privileges: choose web.port (or --port) 1024 or above"
    return reason


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (not on Windows), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
