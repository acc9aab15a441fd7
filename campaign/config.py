"""Typed, frozen settings loaded from ``config.toml`` with environment overrides.

Contract:

* :func:`load_settings` reads one TOML file (``config.toml`` beside the project by default), then applies
  environment overrides named ``CAMPAIGN_<SECTION>_<KEY>`` (``CAMPAIGN_DATABASE_URL``), and returns a
  :class:`Settings`. Nothing else in the library reads configuration: interfaces load it and pass the
  settings down.
* An unknown section or key, a value of the wrong type or outside its allowed values raises
  :class:`ConfigError` naming where the value came from (the file, or ``environment CAMPAIGN_...``) and the
  key. Silently ignoring a misspelt key is how a campaign goes out with the wrong settings. Values are
  checked here, at load, so every command fails early with one line, never halfway through a send:

  - no string setting may contain a control character (:data:`campaign.rules.characters.CONTROL`: C0, DEL,
    C1, U+2028/9): settings reach headers, paths and URLs;
  - ``mail.domain`` is a domain addresses can be at (``parse_mail_domain``: no single label, no special-use
    name such as ``.local``; IDNA allowed, kept in its ASCII form, since it names Message-IDs, calendar UIDs
    and List-Ids); ``mail.from_address``, ``mail.reply_to`` and ``mail.unsubscribe_mailto`` are plain
    addresses (no display name), checked and normalised by the contact rules (``normalise_email``);
  - ``smtp.host`` and the hosts of ``smtp.servers`` are host names or IP addresses
    (:func:`campaign.rules.hosts.is_relay_host`);
  - ``links.public_url`` is an http(s) URL with a host and no quote, space, angle bracket or backslash;
  - ``smtp.mode``, ``smtp.security`` and ``render.calendar_method`` take one of their allowed values
    (:data:`SMTP_MODES`, :data:`SMTP_SECURITIES`, :data:`CALENDAR_METHODS`, the last two built from
    :class:`~campaign.models.SmtpSecurity` and :class:`~campaign.models.CalendarMethod`; any letter case,
    kept in the canonical one), and ``render.default_locale`` is a locale Babel knows (kept as a BCP 47 tag,
    by ``parse_locale``);
  - each ``waves.default`` entry is a wave (:func:`campaign.rules.wave_specs.parse_wave_spec`; an error names the
    entry), none named ``invitation`` and no name twice; ``waves.window`` is a send window
    (:func:`campaign.rules.timing.parse_window`, kept in canonical form) or empty.
  - ``web.host`` is a host name or an IP address to listen on (:func:`check_listen_host`), ``web.port`` a port
    from 0 (any free one) to 65535.
* Environment variables: every variable whose name starts ``CAMPAIGN_`` must be a setting
  (``CAMPAIGN_<SECTION>_<KEY>``, upper case) or a secret (:data:`SECRET_VARIABLES`): a misspelt section or
  key (``CAMPAIGN_SMPT_HOST``, ``CAMPAIGN_SMTP_NOPE``) is an error naming the variable, as an unknown key in
  the file is. ``CAMPAIGN_TEST_*`` is reserved for the project's own test suite and left alone.
* Relative paths, including the path of a ``sqlite:///`` URL, are resolved against the directory of the
  configuration file, so commands behave the same from any working directory.
* Secrets (the SMTP password, the token-signing key) are never read from the file: see
  :mod:`campaign.secrets`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from campaign.exceptions import ConfigError
from campaign.models import CalendarMethod, SmtpSecurity
from campaign.rules.characters import CONTROL
from campaign.rules.contact_fields import (
    FieldError,
    normalise_email,
    parse_locale,
    parse_mail_domain,
    without_format_characters,
)
from campaign.rules.hosts import HOST_EXAMPLES, is_relay_host
from campaign.rules.ip_privacy import IpStorage
from campaign.rules.timing import format_window, parse_window
from campaign.rules.urls import parse_http_url
from campaign.rules.wave_specs import WaveSpec, parse_wave_spec, refuse_event_notice
from campaign.secrets import (
    PREVIOUS_SECRET_KEY_ENV,
    REGISTRATION_HOOK_SECRET_ENV,
    SECRET_KEY_ENV,
    SMTP_PASSWORD_ENV,
)

ENV_PREFIX = "CAMPAIGN_"
DEFAULT_CONFIG_NAME = "config.toml"
# The environment variables campaign.secrets reads: not settings, never in the file.
SECRET_VARIABLES = frozenset({SECRET_KEY_ENV, PREVIOUS_SECRET_KEY_ENV, SMTP_PASSWORD_ENV, REGISTRATION_HOOK_SECRET_ENV})
# The allowed values of the settings that choose a behaviour; services and adapters use these names. A setting
# loads as the member itself (SmtpSecurity.TLS), which is also its string.
SMTP_MODES = ("capture", "relay")
SMTP_SECURITIES: tuple[SmtpSecurity, ...] = tuple(SmtpSecurity)
# The iTIP methods of invitations: CANCEL is for cancellations, never the configured method.
CALENDAR_METHODS: tuple[CalendarMethod, ...] = tuple(m for m in CalendarMethod if m is not CalendarMethod.CANCEL)


# No setting means anything near these: bounds that keep every count and duration well inside what the databases
# and date arithmetic take (a larger value passed the check, and was a traceback where it was used).
_LARGEST = 10**9
_YEAR_SECONDS = 366 * 24 * 3600
_YEAR_MINUTES = 366 * 24 * 60
_CENTURY_HOURS = 100 * 366 * 24
MAX_RETENTION_DAYS = 36_525
"""The longest tracking retention (100 years): ``tracking.retention_days`` and ``campaign tracking purge --days``."""


def _range(minimum: float, maximum: float = _LARGEST) -> dict[str, float | None]:
    """Field metadata: the values a numeric setting may take (checked at load, naming the key)."""
    return {"minimum": minimum, "maximum": maximum}


def _one_of(choices: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Field metadata: the values a string setting may take, in any letter case (kept in the listed one)."""
    return {"choices": choices}


def _checked(check: Callable[[Any], Any]) -> dict[str, Callable[[Any], Any]]:
    """Field metadata: ``check`` returns the value in canonical form or raises ValueError saying what it must be."""
    return {"check": check}


def _domain_name(value: str) -> str:
    # The domain of an address under the rules contacts are imported with, in ASCII: it goes into Message-ID,
    # List-Id and calendar UIDs.
    try:
        return parse_mail_domain(value)
    except FieldError as exc:
        raise ValueError(exc.reason) from None


def _address(value: str) -> str:
    # Normalised as contact addresses are (the domain lower-cased), so the sender compares equal to a contact
    # with the same address. The display-name form ("Team <a@example.org>") is refused: the name has its own key.
    try:
        return normalise_email(value)
    except FieldError as exc:
        raise ValueError(
            f"must be a plain email address like invitations@example.org (no display name): {exc.reason}"
        ) from None


def _optional_address(value: str) -> str:
    return value and _address(value)


def _http_url(value: str) -> str:
    # The rule event URLs follow (campaign.rules.urls): the public URL ends up in the same places.
    try:
        return parse_http_url(value, "url")
    except FieldError as exc:
        raise ValueError(exc.reason) from None


@dataclass(frozen=True, slots=True)
class Relay:
    """One ``smtp.servers`` entry, parsed."""

    host: str
    port: int
    weight: int


def _relay_host(value: str) -> str:
    # The rule smtp.servers entries follow (parse_relay), so a host that works in one works in the other.
    if not is_relay_host(value):
        raise ValueError(f"must be a host name or an IP address ({HOST_EXAMPLES}), not {value!r}")
    return value


def parse_relay(entry: str) -> Relay:
    """Parse ``host:port`` or ``host:port:weight``: a host name or an IP address (an IPv6 one in brackets,
    ``[::1]:25``, as in URLs), a port from 1 to 65535, a weight of at least 0 (default 1).

    Raises ValueError saying what the entry must be. Checked at load, so a typo fails ``campaign init``, not a send.
    """
    text = entry.strip()
    if text.startswith("["):
        # An IPv6 address, whose colons would read as the port's; only such an address goes in brackets.
        host, closed, rest = text[1:].partition("]:")
        well_formed = bool(closed) and ":" in host
    else:
        host, _, rest = text.partition(":")
        well_formed = True
    port_text, _, weight_text = rest.partition(":")
    try:
        port, weight = int(port_text), int(weight_text or 1)
    except ValueError:
        raise ValueError(f"entries must be host:port or host:port:weight, not {entry!r}") from None
    if not well_formed or not is_relay_host(host):
        raise ValueError(f"entry {entry!r} has no valid host name")
    if not 1 <= port <= 65535 or weight < 0:
        raise ValueError(f"entry {entry!r} needs a port from 1 to 65535 and a weight of at least 0")
    return Relay(host, port, weight)


def _networks(entries: tuple[str, ...]) -> tuple[str, ...]:
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(f"entry {entry!r} is not an IP address or network (like 10.0.0.5 or 10.0.0.0/8)") from None
    return entries


def _relays(entries: tuple[str, ...]) -> tuple[str, ...]:
    for entry in entries:
        parse_relay(entry)
    return entries


def _locale(value: str) -> str:
    # Kept as the BCP 47 tag contact locales are stored as.
    try:
        return parse_locale(value)
    except FieldError:
        raise ValueError(f"must be a locale Babel knows (e.g. en, es-CO, pt-PT), not {value!r}") from None


@dataclass(frozen=True)
class DatabaseSettings:
    """Where the store lives: SQLite by default, PostgreSQL for many workers."""

    url: str = "sqlite:///data/campaign.db"
    busy_timeout_ms: int = field(default=10_000, metadata=_range(0, 2**31 - 1))
    echo: bool = False


@dataclass(frozen=True)
class PathSettings:
    """Directories, relative to the configuration file."""

    data: str = "data"
    templates: str = "templates/email"


@dataclass(frozen=True)
class ContactSettings:
    """Contact import behaviour."""

    import_batch_size: int = field(default=20_000, metadata=_range(1))


@dataclass(frozen=True)
class MailSettings:
    """Who messages come from and the domain that names them (Message-ID, calendar UID, List-Id)."""

    from_address: str = field(default="invitations@example.org", metadata=_checked(_address))
    from_name: str = "Events team"
    reply_to: str = field(default="", metadata=_checked(_optional_address))
    domain: str = field(default="example.org", metadata=_checked(_domain_name))
    # None by default: nothing here reads that mailbox, and an address nobody reads breaks the promise it makes.
    unsubscribe_mailto: str = field(default="", metadata=_checked(_optional_address))


@dataclass(frozen=True)
class LinkSettings:
    """Where recipients' clicks land: the public URL of the tracking web service."""

    public_url: str = field(default="https://campaign.example.org", metadata=_checked(_http_url))


@dataclass(frozen=True)
class RenderSettings:
    """Message rendering."""

    default_locale: str = field(default="en", metadata=_checked(_locale))
    calendar_method: str = field(default="PUBLISH", metadata=_one_of(CALENDAR_METHODS))
    preview_dir: str = "data/previews"


@dataclass(frozen=True)
class SmtpSettings:
    """How messages leave: the built-in capture server, or a relay (several, with weights and failover)."""

    mode: str = field(default="capture", metadata=_one_of(SMTP_MODES))
    host: str = field(default="localhost", metadata=_checked(_relay_host))
    port: int = field(default=587, metadata=_range(1, 65535))
    security: str = field(default="starttls", metadata=_one_of(SMTP_SECURITIES))
    username: str = ""
    timeout_seconds: float = field(default=30.0, metadata=_range(0.1, _YEAR_SECONDS))
    weight: int = field(default=1, metadata=_range(0))
    servers: tuple[str, ...] = field(default=(), metadata=_checked(_relays))
    concurrency: int = field(default=10, metadata=_range(1))
    mailbox: str = "data/mailbox"


@dataclass(frozen=True)
class DeliverySettings:
    """The delivery worker: batches, leases, rate limits, retries and the failure breaker."""

    batch_size: int = field(default=1000, metadata=_range(1))
    lease_seconds: int = field(default=30, metadata=_range(1, _YEAR_SECONDS))
    heartbeat_seconds: float = field(default=5.0, metadata=_range(0.05, _YEAR_SECONDS))
    poll_seconds: float = field(default=2.0, metadata=_range(0.01, _YEAR_SECONDS))
    rate_per_second: float = field(default=0.0, metadata=_range(0))
    rate_per_hour: float = field(default=0.0, metadata=_range(0))
    per_domain_per_second: float = field(default=0.0, metadata=_range(0))
    retry_initial_minutes: float = field(default=5.0, metadata=_range(0, _YEAR_MINUTES))
    retry_max_minutes: float = field(default=67.0, metadata=_range(0, _YEAR_MINUTES))
    lifetime_hours: float = field(default=120.0, metadata=_range(0, _CENTURY_HOURS))
    breaker_window: int = field(default=50, metadata=_range(1))
    breaker_threshold: float = field(default=0.8, metadata=_range(0.01, 1))
    group_commit_ms: float = field(default=100.0, metadata=_range(0, 10_000))
    group_commit_max: int = field(default=500, metadata=_range(1))

    @property
    def beat_seconds(self) -> float:
        """How often a worker renews its leases and its registry row: ``heartbeat_seconds``, but at least three
        times per lease, so that one late beat never lets a lease held by a live worker expire."""
        return min(self.heartbeat_seconds, self.lease_seconds / 3)


# The name of every campaign's first wave, sent at launch; a default wave may not take it.
INVITATION_WAVE = "invitation"
DEFAULT_WAVES = (
    "last-chance last-chance -7d not-registered",
    "reminder-1d reminder -1d registered",
    "reminder-1h reminder -1h registered",
    "follow-up follow-up +1d all",
)


def _wave_specs(entries: tuple[str, ...]) -> tuple[str, ...]:
    # Kept as written (each parsed again where used): checked here so a typo fails at load, not at `create`.
    names: set[str] = set()
    for entry in entries:
        try:
            spec = parse_wave_spec(entry)
            refuse_event_notice(spec.kind, spec.name)
        except ValueError as exc:
            raise ValueError(f"entry {entry!r} is not a wave: {exc}") from None
        if spec.name == INVITATION_WAVE or spec.name in names:
            which = (
                "is the invitation's (every campaign's first wave)" if spec.name == INVITATION_WAVE else "is used twice"
            )
            raise ValueError(f"entry {entry!r}: the name {spec.name!r} {which}; give it another name")
        names.add(spec.name)
    return entries


def _send_window(value: str) -> str:
    # In canonical form (what `campaign waves list` shows); empty: no window.
    return value.strip() and format_window(parse_window(value))


@dataclass(frozen=True)
class WaveSettings:
    """The waves every new campaign gets (``campaign create --waves default``) besides its invitation."""

    default: tuple[str, ...] = field(default=DEFAULT_WAVES, metadata=_checked(_wave_specs))
    window: str = field(default="", metadata=_checked(_send_window))

    @property
    def specs(self) -> list[WaveSpec]:
        """The default waves, parsed."""
        return [parse_wave_spec(entry) for entry in self.default]


@dataclass(frozen=True)
class SchedulerSettings:
    """The scheduler service (``campaign serve``)."""

    # Between two waves' own jobs, the maintenance tick catches up after downtime, picks up waves added while
    # the service runs, tops up invitations for late list members and marks waves and campaigns done.
    tick_seconds: float = field(default=60.0, metadata=_range(1, _YEAR_SECONDS))


def check_listen_host(value: str) -> str:
    """``value`` when the web service can listen on it: a host name or an IP address (IPv6 without brackets);
    else ValueError saying what it must be. The rule of ``web.host`` and of ``campaign web --host``."""
    if not is_relay_host(value):
        raise ValueError(
            f"must be a host name or an IP address to listen on (127.0.0.1 for this machine only, 0.0.0.0 or :: "
            f"for every interface), not {value!r}"
        )
    return value


@dataclass(frozen=True)
class WebSettings:
    """The web service (tracking links, unsubscribe pages, staff pages): ``campaign web``, and ``campaign serve``
    when enabled."""

    enabled: bool = True
    # Loopback by default: the service belongs behind a reverse proxy that terminates TLS for links.public_url.
    host: str = field(default="127.0.0.1", metadata=_checked(check_listen_host))
    # 0: any free port (the command prints the one it got).
    port: int = field(default=8080, metadata=_range(0, 65535))
    # Staff sessions end after this many minutes without a request...
    session_idle_minutes: int = field(default=60, metadata=_range(1, _YEAR_MINUTES))
    # ... and this many hours after the login in any case.
    session_max_hours: float = field(default=12.0, metadata=_range(0.1, _CENTURY_HOURS))
    # Failed logins allowed per user name within login_window_minutes before further attempts are refused (429);
    # a client address is allowed four times as many (people behind one office network share an address).
    login_attempts: int = field(default=5, metadata=_range(1))
    login_window_minutes: int = field(default=15, metadata=_range(1, _YEAR_MINUTES))
    # The reverse proxies (addresses or networks) whose X-Forwarded-For and X-Forwarded-Proto are believed: from
    # them, the client is the one the header names. Empty: the headers are ignored, whoever sends them.
    trusted_proxies: tuple[str, ...] = field(default=(), metadata=_checked(_networks))
    # The largest contacts CSV the staff pages accept, in megabytes (MB of 1,000,000 bytes); a larger upload is
    # refused and its partial file removed. Uploads are streamed to the data folder, never held in memory.
    max_upload_mb: int = field(default=100, metadata=_range(1))


@dataclass(frozen=True)
class TrackingSettings:
    """What the web service records of opens and clicks, and for how long (README: Privacy)."""

    # How much of a visitor's IP address is kept: truncated (its /24 or /48 network), full, or none.
    ip: str = field(default=IpStorage.TRUNCATED.value, metadata=_one_of(tuple(s.value for s in IpStorage)))
    # Whether a hit's user agent is kept ("full", its first 1,000 characters) or not ("none"): it is read to tell
    # people from machines either way, when the hit is written, and kept only for later checks of that.
    user_agent: str = field(default="full", metadata=_one_of(("full", "none")))
    # Hits are written in batches at least this often: a crash loses at most this much of them.
    flush_seconds: float = field(default=1.0, metadata=_range(0.01, 60))
    # Hits waiting to be written; past this, new ones are dropped and counted (a stalled database must not make
    # the pixel slow, nor the process run out of memory).
    queue_size: int = field(default=50_000, metadata=_range(1))
    # The same hit (message, kind, link, client) repeated within this many seconds is recorded once.
    repeat_seconds: float = field(default=10.0, metadata=_range(0, _YEAR_SECONDS))
    # Tracking events older than this are deleted by `campaign tracking purge` (0: kept for ever).
    retention_days: int = field(default=395, metadata=_range(0, MAX_RETENTION_DAYS))


@dataclass(frozen=True)
class Settings:
    """All settings. ``root`` is the directory of the configuration file."""

    root: Path
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    paths: PathSettings = field(default_factory=PathSettings)
    contacts: ContactSettings = field(default_factory=ContactSettings)
    mail: MailSettings = field(default_factory=MailSettings)
    links: LinkSettings = field(default_factory=LinkSettings)
    render: RenderSettings = field(default_factory=RenderSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    waves: WaveSettings = field(default_factory=WaveSettings)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    web: WebSettings = field(default_factory=WebSettings)
    tracking: TrackingSettings = field(default_factory=TrackingSettings)
    config_file: Path | None = field(default=None, compare=False)
    """The configuration file read (not a setting: two loads of the same settings compare equal); None when none
    was found (the defaults apply, relative to ``root``)."""

    @property
    def data_dir(self) -> Path:
        """The data directory (database, generated secrets, reports), absolute."""
        return self.resolve(self.paths.data)

    @property
    def templates_dir(self) -> Path:
        """The default email template directory, absolute."""
        return self.resolve(self.paths.templates)

    @property
    def database_url(self) -> str:
        """The database URL with a relative SQLite path made absolute against ``root``."""
        return resolve_sqlite_url(self.database.url, self.root)

    def resolve(self, path: str | Path) -> Path:
        """Return ``path`` made absolute against the configuration file's directory."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.root / p


_SECTIONS: dict[str, type] = {
    "database": DatabaseSettings,
    "paths": PathSettings,
    "contacts": ContactSettings,
    "mail": MailSettings,
    "links": LinkSettings,
    "render": RenderSettings,
    "smtp": SmtpSettings,
    "delivery": DeliverySettings,
    "waves": WaveSettings,
    "scheduler": SchedulerSettings,
    "web": WebSettings,
    "tracking": TrackingSettings,
}


def resolve_sqlite_url(url: str, root: Path) -> str:
    """Make the file path of a ``sqlite:///relative`` URL absolute against ``root``.

    ``sqlite:////abs/path`` and ``sqlite://`` (in memory) and non-SQLite URLs are returned unchanged.
    """
    prefix, sep, rest = url.partition(":///")
    if not sep or not prefix.startswith("sqlite") or rest.startswith("/") or rest in ("", ":memory:"):
        return url
    return f"{prefix}:///{(root / rest).resolve()}"


def find_config(start: Path | None = None) -> Path | None:
    """Return the nearest ``config.toml`` in ``start`` (default: the working directory) or its parents."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / DEFAULT_CONFIG_NAME
        if candidate.is_file():
            return candidate
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    """The TOML file at ``path``, or one line saying why it cannot be read. UTF-8, as TOML says; a byte order mark
    at its start (which some Windows editors write) is taken as UTF-8's."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}): save it as UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Load settings from ``path`` (or the nearest ``config.toml``) and the environment.

    Without any configuration file, the defaults apply relative to the working directory.
    """
    environ = os.environ if environ is None else environ
    if path is None:
        path = find_config()
    raw: dict[str, Any] = {}
    if path is not None:
        raw = _read_toml(path)
    source = str(path) if path is not None else "defaults"
    root = path.resolve().parent if path is not None else Path.cwd()

    sections: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in _SECTIONS:
            raise ConfigError(f"{source}: unknown section [{name}] (known: {', '.join(_SECTIONS)})")
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{name}' must be a table [{name}]")
    _check_environment(environ)
    for name, cls in _SECTIONS.items():
        sections[name] = _build_section(cls, name, raw.get(name, {}), source, environ)
    return Settings(root=root, **sections, config_file=path)


def env_variable(section: str, key: str) -> str:
    """The environment variable that overrides ``section.key``: ``CAMPAIGN_DATABASE_URL`` for ``database.url``."""
    return f"{ENV_PREFIX}{section}_{key}".upper()


# Reserved for the project's test suite (CAMPAIGN_TEST_PG_DSN, CAMPAIGN_TEST_REQUIRE_POSTGRES...): not settings.
TEST_VARIABLE_PREFIX = f"{ENV_PREFIX}TEST_"


def _check_environment(environ: Mapping[str, str]) -> None:
    """Refuse a ``CAMPAIGN_*`` variable that is neither a setting nor a secret (see the module doc)."""
    settings = {env_variable(section, f.name) for section, cls in _SECTIONS.items() for f in dataclasses.fields(cls)}
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX) or name.upper().startswith(TEST_VARIABLE_PREFIX):
            continue
        if name in settings or name in SECRET_VARIABLES:
            continue
        if name.upper() in settings or name.upper() in SECRET_VARIABLES:
            raise ConfigError(f"environment {name}: variable names are upper case: {name.upper()}")
        section, _, key = name[len(ENV_PREFIX) :].partition("_")
        if section.lower() in _SECTIONS:
            keys = sorted(f.name for f in dataclasses.fields(_SECTIONS[section.lower()]))
            raise ConfigError(
                f"environment {name}: unknown setting '{section.lower()}.{key.lower()}' (known: {', '.join(keys)})"
            )
        raise ConfigError(
            f"environment {name}: not a setting; settings are CAMPAIGN_<SECTION>_<KEY> with a section of "
            f"{', '.join(_SECTIONS)} (or a secret: {', '.join(sorted(SECRET_VARIABLES))}); unset it"
        )


def _build_section(cls: type, section: str, values: dict[str, Any], source: str, environ: Mapping[str, str]) -> Any:
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in values:
        if key not in fields:
            raise ConfigError(f"{source}: unknown key '{section}.{key}' (known: {', '.join(sorted(fields))})")
    kwargs: dict[str, Any] = {}
    for key, f in fields.items():
        env_name = env_variable(section, key)
        # Errors name where the value came from: the variable that overrode the file, or the file.
        if env_name in environ:
            what = f"environment {env_name}: '{section}.{key}'"
            value = _coerce_env(environ[env_name], hints[key], what)
        elif key in values:
            what = f"{source}: '{section}.{key}'"
            value = _check_type(values[key], hints[key], what)
        else:
            # Defaults are valid by construction: the shipped config.toml states every one and a test loads it.
            continue
        kwargs[key] = _check_value(value, f.metadata, what)
    return cls(**kwargs)


def _check_value(value: Any, metadata: Mapping[str, Any], what: str) -> Any:
    """``value`` checked against the field's metadata, in canonical form; ``what`` names it in errors."""
    for text in value if isinstance(value, tuple) else (value,):
        if not isinstance(text, str):
            continue
        if control := CONTROL.search(text):
            # The value is not repeated: a database URL may hold a password.
            raise ConfigError(f"{what} must not contain control characters (U+{ord(control.group()):04X})")
        if (hidden := without_format_characters(text)) != text:
            # A bidi override in from_name reverses what every inbox shows in From: (as in contact names).
            invisible = next(ch for ch in text if ch not in hidden)
            raise ConfigError(f"{what} must not contain invisible formatting characters (U+{ord(invisible):04X})")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{what} must be a finite number, not {value}")
    minimum, maximum = metadata.get("minimum"), metadata.get("maximum")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        if maximum is None or maximum == _LARGEST:  # no bound of its own: say the one crossed
            bounds = f"at least {minimum}" if minimum is not None and value < minimum else f"at most {maximum}"
        else:
            bounds = f"between {minimum} and {maximum}"
        raise ConfigError(f"{what} must be {bounds}, not {value}")
    if (choices := metadata.get("choices")) is not None:
        for choice in choices:
            if value.lower() == choice.lower():
                return choice
        raise ConfigError(f"{what} must be one of {', '.join(choices)}, not {value!r}")
    if (check := metadata.get("check")) is not None:
        try:
            return check(value)
        except ValueError as exc:
            raise ConfigError(f"{what} {exc}") from None
    return value


def _check_type(value: Any, expected: type, what: str) -> Any:
    # bool is a subclass of int: `port = true` must not pass as an integer.
    if expected is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if expected is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if expected in (str, bool) and isinstance(value, expected):
        return value
    if expected == tuple[str, ...] and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{what} must be {_type_name(expected)}, got {type(value).__name__} {value!r}")


def _coerce_env(text: str, expected: type, what: str) -> Any:
    if expected is str:
        return text
    if expected == tuple[str, ...]:
        return tuple(part.strip() for part in text.split(",") if part.strip())
    if expected is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
    else:
        try:
            return expected(text)
        except ValueError:
            pass
    raise ConfigError(f"{what} must be {_type_name(expected)}, got {text!r}")


def _type_name(expected: type) -> str:
    names: dict[Any, str] = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    return names.get(expected, "a list of strings")
