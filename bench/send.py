"""Benchmark: sending personalised invitations end to end (claim, render, send over SMTP, mark sent).

    python bench/send.py [--messages N] [--processes P [P ...]] [--concurrency C [C ...]] [--repeat R]
                         [--mailmerge M]

Needs Postfix's ``smtp-sink`` and ``smtp-source`` (Debian package ``postfix``): when they are missing and this
runs as root, it installs the package (``apt-get install -y postfix``, non-interactive, "No configuration");
otherwise it says how to install it and exits with status 2. The Python peer ``mailmerge`` (PyPI) is installed
into this interpreter's environment with pip when missing.

Setup, not timed: in a temporary directory, a fresh SQLite database with ``N`` generated contacts (default
20,000; 41 real time zones, 14 locales, non-ASCII names, a ``job_title`` attribute) imported from CSV with
:func:`~campaign.services.contact_import.import_contacts`, the sample event
``data/events/ilo-migrant-workers-2020.toml`` moved a month into the future, a campaign with the default templates
and :func:`~campaign.services.lifecycle.launch` (which checks every contact and enqueues N messages). The launched
database is kept as a template and copied afresh for every send.

One ``smtp-sink -u nobody 127.0.0.1:PORT 1024`` on a fresh port receives everything. It sets SO_REUSEPORT, so
a second sink on the same port would silently take a share of the connections: the port is one nothing listens
on, the kernel's table must show exactly one listener on it while the benchmark runs, and the sink's own
delivery counter (``-c``) must grow by exactly the number of messages each measurement sent.

Then, in each of ``--repeat`` rounds (default 3; the machine is shared and noisy, so every figure is the median
of the rounds, and the measurements are interleaved so that drift hits them alike):

* ours, for each ``--processes`` value (default 1 and 2) and each ``--concurrency`` (``[smtp] concurrency``,
  connections per process; default 10, the shipped setting, and 40, a bulk sender's):
  :func:`~campaign.services.dispatch.send_due` (one process) or :func:`~campaign.services.parallel.send_parallel`
  (several) of all N messages, HTML + text + ``.ics`` each; afterwards every message row must be ``sent`` and the
  sink must have counted N more deliveries;
* the loopback limit: ``smtp-source -s 20 -d -m N -l <our median message size>`` into the same sink (C, 20
  sessions, connections reused, no rendering at all); our size is measured as sent to the sink, which offers
  8BITMIME (checked): UTF-8 bodies unencoded;
* the Python peer: ``mailmerge --no-dry-run --no-limit`` of ``--mailmerge`` messages (default 2,000) into the
  sink (security none, no authentication, no rate limit), from a Jinja template whose HTML body is our median
  HTML part with the greeting personalised. It is a single text/html part: mailmerge runs html5lib over the HTML
  of every multipart message, so adding our text part and ``.ics`` would make it ~3.5x slower; the peer is
  measured on its fast path (it opens one connection per message, as it always does).

Prints msg/s for each, the ratios ours/limit and ours/mailmerge for the best setting (and for the shipped one),
and ends with one JSON line of all figures. Targets: ours >= 8x mailmerge and >= 0.35 of the loopback limit.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import email
import email.policy
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
import zoneinfo
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from people import LATIN_FIRST, LATIN_LAST, SCRIPT_NAMES
from sqlalchemy import func, select

from campaign.config import Settings, SmtpSettings, load_settings
from campaign.mail.smtp import SmtpServer
from campaign.models import Contact, SmtpSecurity
from campaign.render.identifiers import message_id_for
from campaign.rules.event_fields import move_to_date, wall_clock
from campaign.services.campaigns import create_campaign, get_campaign
from campaign.services.contact_import import import_contacts
from campaign.services.contacts import find_contacts
from campaign.services.database import init_database
from campaign.services.delivery_request import DeliveryRequest
from campaign.services.dispatch import send_due
from campaign.services.events import add_event, read_event_file
from campaign.services.installation import installation_id
from campaign.services.lifecycle import launch
from campaign.services.parallel import send_parallel
from campaign.services.rendering import wave_renderer
from campaign.store.engine import Database
from campaign.store.tables import messages

ROOT = Path(__file__).resolve().parent.parent
EVENT_FILE = ROOT / "data" / "events" / "ilo-migrant-workers-2020.toml"
TEMPLATES = ROOT / "templates" / "email"
KEY = b"bench-send-signing-key-0123456789"[:32]
LIST_NAME = "bench"
CAMPAIGN_NAME = "bench-send"
SEED = 20200626
TARGET_VS_MAILMERGE = 8.0
TARGET_VS_LIMIT = 0.35
REFERENCE = {"limit_msg_per_s": 12_775, "mailmerge_msg_per_s": 639}  # measured on this machine class
SOURCE_SESSIONS = 20
BULK_CONCURRENCY = 40  # connections per process a bulk sender opens to a relay that allows them
SINK_BACKLOG = 1024
SIZE_SAMPLE = 2_000  # messages built in the parent to learn the median size
_SINK_COUNTER = re.compile(rb"mesg=(\d+)\r")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# (locale, country, zones, weight): where the generated contacts live.
PLACES: list[tuple[str, str, list[str], int]] = [
    ("en", "US", ["America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles",
                  "Pacific/Honolulu"], 16),
    ("en-GB", "GB", ["Europe/London"], 8),
    ("es-CO", "CO", ["America/Bogota"], 10),
    ("es-MX", "MX", ["America/Mexico_City"], 6),
    ("es", "PE", ["America/Lima"], 3),
    ("es", "CL", ["America/Santiago"], 3),
    ("pt-PT", "PT", ["Europe/Lisbon"], 4),
    ("pt-BR", "BR", ["America/Sao_Paulo"], 6),
    ("fr-CH", "CH", ["Europe/Zurich"], 4),
    ("fr-FR", "FR", ["Europe/Paris"], 4),
    ("de-DE", "DE", ["Europe/Berlin"], 4),
    ("it-IT", "IT", ["Europe/Rome"], 2),
    ("ar-EG", "EG", ["Africa/Cairo"], 8),
    ("ar", "AE", ["Asia/Dubai"], 3),
    ("ja-JP", "JP", ["Asia/Tokyo"], 5),
    ("en", "IN", ["Asia/Kolkata"], 6),
    ("en", "NP", ["Asia/Kathmandu"], 2),
    ("en", "PH", ["Asia/Manila"], 8),
    ("en", "KE", ["Africa/Nairobi"], 3),
    ("en", "NG", ["Africa/Lagos"], 3),
    ("en", "ZA", ["Africa/Johannesburg"], 2),
    ("en", "SG", ["Asia/Singapore"], 2),
    ("en", "AU", ["Australia/Sydney"], 2),
    ("en", "NZ", ["Pacific/Auckland"], 1),
    ("en", "CA", ["America/St_Johns", "America/Toronto"], 2),
    ("en", "TH", ["Asia/Bangkok"], 1),
    ("en", "ID", ["Asia/Jakarta"], 2),
    ("en", "CN", ["Asia/Shanghai"], 1),
    ("en", "PK", ["Asia/Karachi"], 1),
    ("en", "IR", ["Asia/Tehran"], 1),
    ("en", "TR", ["Europe/Istanbul"], 1),
    ("en", "UA", ["Europe/Kyiv"], 1),
    ("en", "GR", ["Europe/Athens"], 1),
    ("en", "MA", ["Africa/Casablanca"], 1),
    ("en", "KI", ["Pacific/Kiritimati"], 1),
]  # fmt: skip
JOB_TITLES = [
    "Labour Migration Officer", "Directora de Programas", "Técnica de Integração", "Chargée de mission",
    "مدير برامج الهجرة", "人事部長", "Policy Analyst", "Union Representative", "Researcher", "",
]  # fmt: skip
ORGANISATIONS = ["Ministry of Labour", "ANDI", "Trades Union Congress", "Université de Genève", "IDWF", ""]
DOMAINS = ["example.org", "example.com", "mail.example.org", "correo.example.co"]
CSV_COLUMNS = ["email", "name", "first_name", "last_name", "timezone", "country", "locale", "organisation",
               "job_title"]  # fmt: skip


# --- tools ---------------------------------------------------------------------------------------------------


def _which(name: str) -> str | None:
    """``name`` on PATH or in the system directories (``/usr/sbin`` is often not on a user's PATH)."""
    return shutil.which(name) or shutil.which(name, path=SYSTEM_PATH)


def ensure_postfix_tools() -> tuple[str, str]:
    """Paths of ``smtp-sink`` and ``smtp-source``; installs Debian's ``postfix`` when missing and root."""
    sink, source = _which("smtp-sink"), _which("smtp-source")
    if sink and source:
        return sink, source
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print(
            "bench/send.py needs Postfix's smtp-sink and smtp-source, which are not installed.\n"
            "Please install them, then run this again:\n"
            "    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y postfix   (Debian, Ubuntu)\n"
            "    sudo dnf install postfix                                         (Fedora, RHEL)",
            file=sys.stderr,
        )
        sys.exit(2)
    print("smtp-sink/smtp-source missing: installing the Debian package postfix (No configuration) ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # "No configuration": the package's files only, no mail system configured or started on port 25.
    subprocess.run(
        ["debconf-set-selections"], input=b"postfix postfix/main_mailer_type select No configuration\n", check=False
    )
    apt = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postfix"]
    if subprocess.run(apt, env=env, stdout=subprocess.DEVNULL, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL, check=False)
        if subprocess.run(apt, env=env, stdout=subprocess.DEVNULL, check=False).returncode != 0:
            sys.exit("apt-get install -y postfix failed (see above); install postfix by hand and run this again")
    sink, source = _which("smtp-sink"), _which("smtp-source")
    if not (sink and source):
        sys.exit("postfix is installed but smtp-sink/smtp-source are still missing")
    return sink, source


def ensure_mailmerge() -> str:
    """Path of the ``mailmerge`` command of this interpreter's environment; pip-installs it when missing."""
    command = Path(sys.executable).parent / "mailmerge"
    if not command.exists():
        print("mailmerge missing: pip install mailmerge ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "mailmerge"], check=True)
    if not command.exists():
        sys.exit(f"pip installed mailmerge but {command} does not exist")
    return str(command)


# --- the sink ----------------------------------------------------------------------------------------------


def _listeners(port: int) -> int:
    """How many sockets listen on TCP ``port`` (any address, IPv4 and IPv6), from the kernel's tables."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                count += 1
    return count


def _fresh_port() -> int:
    """A port nothing listens on: the kernel's choice for a socket without SO_REUSEPORT, double-checked."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if _listeners(port) == 0:
            return port
    raise RuntimeError("found no free port")


class Sink:
    """``smtp-sink`` on a fresh port of 127.0.0.1, with its delivery counter (``-c``).

    The sink writes its counter to a file, read when asked: a thread reading a pipe would make this process
    one that :func:`~campaign.services.processes.process_context` cannot fork, and so change what is measured.
    """

    def __init__(self, command: str, directory: Path) -> None:
        self.command = command
        self.port = 0
        self.hostname = f"sink-{os.getpid()}-{random.randrange(16**6):06x}"
        self._output = directory / "smtp-sink.out"
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Sink:
        for _ in range(5):
            self.port = _fresh_port()
            user = ["-u", "nobody"] if os.geteuid() == 0 else []
            with self._output.open("wb") as output:
                self._proc = subprocess.Popen(
                    [self.command, *user, "-c", "-h", self.hostname, f"127.0.0.1:{self.port}", str(SINK_BACKLOG)],
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            if self._wait_listening() and self._banner_is_mine():
                return self
            self._stop()  # someone else took the port at the same moment: try another
        raise RuntimeError("could not start smtp-sink on a port of its own")

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def _wait_listening(self) -> bool:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            if _listeners(self.port) >= 1:
                return self.sole_listener()
            time.sleep(0.02)
        return False

    def sole_listener(self) -> bool:
        """Exactly one socket listens on the port (ours: another sink would make it two)."""
        return _listeners(self.port) == 1

    def _banner_is_mine(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as conn:
            banner = conn.recv(512).decode(errors="replace")
            conn.sendall(b"EHLO bench\r\n")
            extensions = b""
            while not re.search(rb"^250 .*\r\n", extensions, re.M):
                extensions += conn.recv(4096)
            conn.sendall(b"QUIT\r\n")
        # Our messages were sized as sent to a server with 8BITMIME (see prepare): the sink must be one.
        assert b"8BITMIME" in extensions, f"smtp-sink does not offer 8BITMIME: {extensions!r}"
        return self.hostname in banner

    @property
    def count(self) -> int:
        """Messages delivered into the sink so far."""
        # -c prints "sess=N quit=N mesg=N" after each delivery, rewritten in place with a carriage return.
        with self._output.open("rb") as output:
            output.seek(max(0, output.seek(0, os.SEEK_END) - 256))
            counts = _SINK_COUNTER.findall(output.read())
        return int(counts[-1]) if counts else 0

    def complaints(self) -> list[str]:
        """The sink's warnings and fatal errors, if any."""
        text = self._output.read_bytes().decode(errors="replace")
        return [line for line in re.split(r"[\r\n]+", text) if "fatal" in line or "warning" in line]

    def wait_for(self, expected: int, timeout: float = 10.0) -> int:
        """Wait until the counter reaches ``expected`` (its output trails the 250s slightly); returns it."""
        deadline = time.monotonic() + timeout
        while self.count < expected and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        return self.count

    def check(self, before: int, sent: int, what: str) -> None:
        """The sink got exactly ``sent`` messages since ``before``, and is still alone on its port."""
        after = self.wait_for(before + sent)
        assert self.sole_listener(), f"{what}: another process now listens on port {self.port} too"
        assert after - before == sent, (
            f"{what}: sent {sent:,} messages but the sink counted {after - before:,}; it said {self.complaints()}"
        )


# --- the campaign --------------------------------------------------------------------------------------------


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().strip()


def generate_contacts(path: Path, count: int, seed: int = SEED) -> None:
    """Write ``count`` fictional contacts to a CSV file."""
    rng = random.Random(seed)
    available = zoneinfo.available_timezones()
    weights = [place[3] for place in PLACES]
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for i in range(count):
            locale, country, zones, _ = rng.choices(PLACES, weights)[0]
            firsts, lasts = SCRIPT_NAMES.get(locale[:2], (LATIN_FIRST, LATIN_LAST))
            if rng.random() < 0.2:
                firsts, lasts = LATIN_FIRST, LATIN_LAST
            first, last = rng.choice(firsts), rng.choice(lasts)
            roll = rng.random()
            name = (f"{last} {first}" if locale.startswith("ja") else f"{first} {last}") if roll < 0.6 else ""
            if roll >= 0.9:
                first = last = ""  # nobody to greet: "Dear ..." is left out
            zone = rng.choice([z for z in zones if z in available])
            writer.writerow(
                [
                    f"c{i}.{rng.randrange(10**6):06d}@{DOMAINS[i % len(DOMAINS)]}",
                    name,
                    first,
                    last,
                    zone if rng.random() >= 0.03 else "",  # a few without a zone: the fallback line
                    country,
                    locale,
                    rng.choice(ORGANISATIONS),
                    rng.choice(JOB_TITLES),
                ]
            )


def make_settings(work: Path, db_path: Path, concurrency: int) -> Settings:
    config = work / "config.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{db_path}"\n\n'
        f'[paths]\ndata = "{work / "data"}"\ntemplates = "{TEMPLATES}"\n\n'
        f'[mail]\nfrom_address = "invitations@ilo.example.org"\nfrom_name = "ILO Events"\n'
        f'domain = "ilo.example.org"\nunsubscribe_mailto = "unsubscribe@ilo.example.org"\n\n'
        f'[smtp]\nmode = "relay"\nhost = "127.0.0.1"\nsecurity = "none"\nconcurrency = {concurrency}\n',
        encoding="utf-8",
    )
    return load_settings(config, environ={})


def future_event() -> dict[str, Any]:
    """The sample event, moved to the same weekday and wall-clock time about a month from now."""
    values = read_event_file(EVENT_FILE)
    original = wall_clock(values["starts_at"], values["timezone"]).date()
    earliest = datetime.now(UTC).date() + timedelta(days=30)
    day = earliest + timedelta(days=(original.weekday() - earliest.weekday()) % 7)
    values["starts_at"], values["ends_at"] = move_to_date(
        values["starts_at"], values["ends_at"], values["timezone"], day
    )
    return values


@dataclass(frozen=True)
class Prepared:
    """The launched template database and what the other measurements need to know about its messages."""

    db_path: Path
    queued: int
    sizes: list[int]
    html_sizes: list[int]
    sample: Contact
    subject: str
    html: str
    contacts: list[Contact]


def prepare(work: Path, settings: Settings, count: int) -> Prepared:
    """Import, add the event, create and launch the campaign; then learn the size of its messages."""
    csv_path = work / "contacts.csv"
    generate_contacts(csv_path, count)
    db = Database(settings.database_url)
    try:
        init_database(db)
        report = import_contacts(db, csv_path, LIST_NAME)
        assert report.imported == count, f"imported {report.imported} of {count} contacts"
        event = add_event(db, future_event())
        create_campaign(db, event_ref=event.slug, list_name=LIST_NAME, name=CAMPAIGN_NAME)
        launched = launch(db, settings, KEY, CAMPAIGN_NAME)
        assert launched.queued == count, f"launch queued {launched.queued} of {count}"
        details = get_campaign(db, CAMPAIGN_NAME)
        renderer = wave_renderer(settings, KEY, details, details.waves[0], installation_id(db))
        contacts = list(find_contacts(db, list_name=LIST_NAME))[:SIZE_SAMPLE]
    finally:
        db.dispose()
    sizes, html_sizes = [], []
    for contact in contacts:
        message_id = message_id_for(f"size.{contact.id}", renderer.sender)
        # As sent to smtp-sink, which offers 8BITMIME (Sink checks it): UTF-8 bodies go unencoded.
        built = renderer.build(contact, message_id, contact.id, date=datetime.now(UTC), eight_bit=True)
        sizes.append(len(built))
        html_sizes.append(len(renderer.render(contact, contact.id).html.encode()))
    # The contact whose HTML is the median size, with a name to greet, is the model for mailmerge's template.
    median_html = statistics.median_low(html_sizes)
    named = [c for c, s in zip(contacts, html_sizes, strict=True) if c.display_name]
    sample = min(named, key=lambda c: abs(len(renderer.render(c, c.id).html.encode()) - median_html))
    rendered = renderer.render(sample, sample.id)
    return Prepared(
        db_path=Path(settings.database_url.removeprefix("sqlite:///")),
        queued=launched.queued,
        sizes=sizes,
        html_sizes=html_sizes,
        sample=sample,
        subject=rendered.subject,
        html=rendered.html,
        contacts=contacts,
    )


def fresh_copy(template: Path, target: Path) -> None:
    """A copy of the launched database (every message queued), replacing ``target``."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(template, target)


def statuses(db_path: Path) -> dict[str, int]:
    db = Database(f"sqlite:///{db_path}")
    try:
        with db.read() as conn:
            rows = conn.execute(select(messages.c.status, func.count()).group_by(messages.c.status)).all()
    finally:
        db.dispose()
    return {str(status): int(n) for status, n in rows}


# --- the measurements ----------------------------------------------------------------------------------------


def time_ours(settings: Settings, prepared: Prepared, work: Path, sink: Sink, processes: int, count: int) -> float:
    """Seconds for our worker(s) to send every queued message; checks the outcome in the database and sink."""
    db_path = work / f"send-p{processes}.db"
    fresh_copy(prepared.db_path, db_path)
    run_settings = replace(settings, database=replace(settings.database, url=f"sqlite:///{db_path}"))
    servers = [SmtpServer("127.0.0.1", sink.port, SmtpSecurity.NONE)]
    before = sink.count
    if processes == 1:
        db = Database(run_settings.database_url, busy_timeout_ms=run_settings.database.busy_timeout_ms)
        try:
            started = time.perf_counter()
            summary = asyncio.run(send_due(DeliveryRequest(db, run_settings, KEY, servers)))
            seconds = time.perf_counter() - started
        finally:
            db.dispose()
    else:
        # The processes open their own connections; this handle is only named by the request (it connects to nothing).
        db = Database(run_settings.database_url, busy_timeout_ms=run_settings.database.busy_timeout_ms)
        started = time.perf_counter()
        summary = send_parallel(DeliveryRequest(db, run_settings, KEY, servers), processes)
        seconds = time.perf_counter() - started
        db.dispose()
    rows = statuses(db_path)
    assert rows == {"sent": count}, f"P={processes}: message rows are {rows}, expected {count:,} sent"
    assert summary.counts == {"sent": count}, f"P={processes}: the workers report {summary.counts}"
    sink.check(before, count, f"ours P={processes}")
    return seconds


def time_smtp_source(source: str, sink: Sink, count: int, size: int) -> float:
    """Seconds for ``smtp-source`` to send ``count`` messages of ``size`` bytes over 20 reused sessions."""
    before = sink.count
    command = [source, "-s", str(SOURCE_SESSIONS), "-d", "-m", str(count), "-l", str(size), f"127.0.0.1:{sink.port}"]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    sink.check(before, count, "smtp-source")
    return seconds


def write_mailmerge_files(directory: Path, prepared: Prepared, count: int, port: int) -> None:
    """mailmerge's template (our median HTML body, greeting personalised with the name), its CSV and config.

    A single text/html part: mailmerge parses the HTML of every *multipart* message with html5lib (looking
    for images to attach), which makes it about 3.5 times slower; the peer is measured on its fast path.
    mailmerge sends headers through smtplib as ASCII, so the database holds ASCII-folded names.
    """
    directory.mkdir(parents=True, exist_ok=True)
    name = prepared.sample.display_name or ""
    shown = name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    pieces = prepared.html.split(shown) if shown and shown in prepared.html else [prepared.html]
    body = "{{ name }}".join("{% raw %}" + piece + "{% endraw %}" for piece in pieces)
    template = (
        "TO: {{ email }}\n"
        "FROM: ILO Events <invitations@ilo.example.org>\n"
        f"SUBJECT: {_ascii(prepared.subject)}\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/html; charset=utf-8\n"
        "\n"
        f"{body}\n"
    )
    (directory / "template.txt").write_text(template, encoding="utf-8")
    with open(directory / "database.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["email", "name"])
        contacts = prepared.contacts
        for i in range(count):
            contact = contacts[i % len(contacts)]
            writer.writerow([contact.email, _ascii(contact.display_name or "") or "colleague"])
    (directory / "server.conf").write_text(
        f"[smtp_server]\nhost = 127.0.0.1\nport = {port}\nratelimit = 0\n", encoding="utf-8"
    )


def mailmerge_message(directory: Path) -> tuple[int, int]:
    """(bytes of the first message mailmerge builds, as it flattens it to send; bytes of its decoded HTML)."""
    from mailmerge.template_message import TemplateMessage

    with open(directory / "database.csv", encoding="utf-8", newline="") as fh:
        row = next(csv.DictReader(fh))
    _sender, _recipients, message = TemplateMessage(directory / "template.txt").render(row)
    parsed = email.message_from_string(str(message), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed.get_content_type() == "text/html", f"mailmerge message is {parsed.get_content_type()}"
    assert row["name"] in parsed.get_content(), "mailmerge did not personalise the greeting"
    return len(str(message).encode()), len(parsed.get_content().encode())


def time_mailmerge(command: str, directory: Path, sink: Sink, count: int) -> float:
    """Seconds for ``mailmerge`` to send ``count`` messages into the sink (its output discarded)."""
    before = sink.count
    args = [
        command, "--no-dry-run", "--no-limit", "--output-format", "raw",
        "--template", str(directory / "template.txt"),
        "--database", str(directory / "database.csv"),
        "--config", str(directory / "server.conf"),
    ]  # fmt: skip
    started = time.perf_counter()
    result = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=directory, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"mailmerge failed ({result.returncode}): {result.stderr.decode(errors='replace')}")
    sink.check(before, count, "mailmerge")
    return seconds


# --- the report --------------------------------------------------------------------------------------------


def spread(values: list[float]) -> str:
    return f"median of {len(values)}; min {min(values):,.0f}, max {max(values):,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000, help="invitations to send (default 20,000)")
    parser.add_argument(
        "--processes", type=int, nargs="+", default=[1, 2], help="sender process counts to try (default 1 2)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        help="[smtp] concurrency values to try: connections per process (default: the shipped one, 10, and 40)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="rounds of each measurement (default 3)")
    parser.add_argument("--mailmerge", type=int, default=2_000, help="messages sent by mailmerge (default 2,000)")
    args = parser.parse_args()
    shipped = SmtpSettings().concurrency
    concurrencies: list[int] = sorted(set(args.concurrency or [shipped, BULK_CONCURRENCY]))
    if args.messages < 1 or args.repeat < 1 or args.mailmerge < 1 or min(concurrencies) < 1 or min(args.processes) < 1:
        parser.error("--messages, --processes, --concurrency, --repeat and --mailmerge must be at least 1")
    processes: list[int] = sorted(set(args.processes))
    settings_ = [(p, c) for c in concurrencies for p in processes]

    sink_command, source_command = ensure_postfix_tools()
    mailmerge_command = ensure_mailmerge()
    work = Path(tempfile.mkdtemp(prefix="campaign-bench-send-"))
    try:
        settings = make_settings(work, work / "launched.db", concurrencies[0])
        started = time.perf_counter()
        prepared = prepare(work, settings, args.messages)
        size = round(statistics.median(prepared.sizes))
        html_size = round(statistics.median(prepared.html_sizes))
        print(
            f"setup: {args.messages:,} contacts imported, event moved to the future, campaign launched "
            f"({prepared.queued:,} queued) in {time.perf_counter() - started:.1f} s; message size median "
            f"{size:,} bytes ({min(prepared.sizes):,} to {max(prepared.sizes):,}), HTML part {html_size:,}",
            flush=True,
        )
        with Sink(sink_command, work) as sink:
            print(f"smtp-sink on 127.0.0.1:{sink.port} (sole listener, counter -c)", flush=True)
            mm_dir = work / "mailmerge"
            write_mailmerge_files(mm_dir, prepared, args.mailmerge, sink.port)
            mm_size, mm_html = mailmerge_message(mm_dir)
            print(
                f"mailmerge: template with the same HTML body ({mm_html:,} bytes, greeting personalised); "
                f"message size {mm_size:,} bytes",
                flush=True,
            )

            ours: dict[tuple[int, int], list[float]] = {key: [] for key in settings_}
            limit: list[float] = []
            peer: list[float] = []
            for round_ in range(1, args.repeat + 1):
                line = []
                for p, c in settings_:
                    run_settings = replace(settings, smtp=replace(settings.smtp, concurrency=c))
                    seconds = time_ours(run_settings, prepared, work, sink, p, args.messages)
                    ours[p, c].append(args.messages / seconds)
                    line.append(f"ours P={p} C={c} {ours[p, c][-1]:,.0f}")
                limit.append(args.messages / time_smtp_source(source_command, sink, args.messages, size))
                peer.append(args.mailmerge / time_mailmerge(mailmerge_command, mm_dir, sink, args.mailmerge))
                print(
                    f"round {round_}/{args.repeat}: {', '.join(line)}, smtp-source {limit[-1]:,.0f}, "
                    f"mailmerge {peer[-1]:,.0f} msg/s",
                    flush=True,
                )
            total = sink.count

        medians = {key: statistics.median(values) for key, values in ours.items()}
        best_p, best_c = max(medians, key=lambda key: medians[key])
        best = medians[best_p, best_c]
        limit_rate, peer_rate = statistics.median(limit), statistics.median(peer)
        vs_limit, vs_peer = best / limit_rate, best / peer_rate
        for p, c in settings_:
            print(
                f"ours P={p} C={c}: {medians[p, c]:>8,.0f} msg/s  claim + render + send + mark, {args.messages:,} "
                f"invitations, {c} connections per process ({spread(ours[p, c])})"
            )
        print(
            f"limit:        {limit_rate:>8,.0f} msg/s  smtp-source -s {SOURCE_SESSIONS} -d -l {size} "
            f"({spread(limit)}; reference {REFERENCE['limit_msg_per_s']:,})"
        )
        print(
            f"mailmerge:    {peer_rate:>8,.0f} msg/s  {args.mailmerge:,} messages ({spread(peer)}; "
            f"reference {REFERENCE['mailmerge_msg_per_s']:,})"
        )
        print(
            f"best: P={best_p} C={best_c}, {best:,.0f} msg/s = {vs_limit:.2f} of the limit (target >= "
            f"{TARGET_VS_LIMIT}), {vs_peer:.1f}x mailmerge (target >= {TARGET_VS_MAILMERGE:.0f}x); sink counted "
            f"{total:,} in all"
        )
        if shipped in concurrencies:
            shipped_best = max(medians[p, shipped] for p in processes)
            print(
                f"shipped concurrency ({shipped}): {shipped_best:,.0f} msg/s = {shipped_best / limit_rate:.2f} of the "
                f"limit, {shipped_best / peer_rate:.1f}x mailmerge"
            )
        figures: dict[str, Any] = {
            "messages": args.messages,
            "concurrency": concurrencies,
            "repeat": args.repeat,
            "message_bytes_median": size,
            "html_bytes_median": html_size,
            **{f"ours_p{p}_c{c}_msg_per_s": round(medians[p, c]) for p, c in settings_},
            "best_processes": best_p,
            "best_concurrency": best_c,
            "ours_msg_per_s": round(best),
            "limit_msg_per_s": round(limit_rate),
            "mailmerge_messages": args.mailmerge,
            "mailmerge_message_bytes": mm_size,
            "mailmerge_html_bytes": mm_html,
            "mailmerge_msg_per_s": round(peer_rate),
            "ratio_vs_limit": round(vs_limit, 3),
            "ratio_vs_mailmerge": round(vs_peer, 2),
            "target_vs_limit": TARGET_VS_LIMIT,
            "target_vs_mailmerge": TARGET_VS_MAILMERGE,
            "vs_limit_met": vs_limit >= TARGET_VS_LIMIT,
            "vs_mailmerge_met": vs_peer >= TARGET_VS_MAILMERGE,
            "target_met": vs_limit >= TARGET_VS_LIMIT and vs_peer >= TARGET_VS_MAILMERGE,
            "sink_total": total,
            "rounds": {
                **{f"ours_p{p}_c{c}": [round(v) for v in ours[p, c]] for p, c in settings_},
                "limit": [round(v) for v in limit],
                "mailmerge": [round(v) for v in peer],
            },
        }
        print(json.dumps(figures))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
