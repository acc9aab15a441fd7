"""Typed, frozen settings loaded from ``config.toml`` with environment overrides.

Contract:

* :func:`load_settings` reads one TOML file (``config.toml`` beside the project by default), then applies
  environment overrides named ``CAMPAIGN_<SECTION>_<KEY>`` (``CAMPAIGN_DATABASE_URL``), and returns a
  :class:`Settings`. Nothing else in the library reads configuration: interfaces load it and pass the
  settings down.
* An unknown section or key, or a value of the wrong type, raises :class:`ConfigError` naming the file
  (or the environment variable) and the key. Silently ignoring a misspelt key is how a campaign goes out
  with the wrong settings.
* Relative paths, including the path of a ``sqlite:///`` URL, are resolved against the directory of the
  configuration file, so commands behave the same from any working directory.
* Secrets (the SMTP password, the token-signing key) are never read from the file: see
  :mod:`campaign.secrets`.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from campaign.exceptions import ConfigError

ENV_PREFIX = "CAMPAIGN_"
DEFAULT_CONFIG_NAME = "config.toml"


def _range(minimum: float, maximum: float | None = None) -> dict[str, float | None]:
    """Field metadata: the values a numeric setting may take (checked at load, naming the key)."""
    return {"minimum": minimum, "maximum": maximum}


@dataclass(frozen=True)
class DatabaseSettings:
    """Where the store lives: SQLite by default, PostgreSQL for many workers."""

    url: str = "sqlite:///data/campaign.db"
    busy_timeout_ms: int = field(default=10_000, metadata=_range(0, None))
    echo: bool = False


@dataclass(frozen=True)
class PathSettings:
    """Directories, relative to the configuration file."""

    data: str = "data"
    templates: str = "templates/email"


@dataclass(frozen=True)
class ContactSettings:
    """Contact import behaviour."""

    import_batch_size: int = field(default=20_000, metadata=_range(1, None))


@dataclass(frozen=True)
class MailSettings:
    """Who messages come from and the domain that names them (Message-ID, calendar UID, List-Id)."""

    from_address: str = "invitations@example.org"
    from_name: str = "Events team"
    reply_to: str = ""
    domain: str = "example.org"
    unsubscribe_mailto: str = "unsubscribe@example.org"


@dataclass(frozen=True)
class LinkSettings:
    """Where recipients' clicks land: the public URL of the tracking web service."""

    public_url: str = "https://campaign.example.org"


@dataclass(frozen=True)
class RenderSettings:
    """Message rendering."""

    default_locale: str = "en"
    calendar_method: str = "PUBLISH"
    preview_dir: str = "data/previews"


@dataclass(frozen=True)
class SmtpSettings:
    """How messages leave: the built-in capture server, or a relay (several, with weights and failover)."""

    mode: str = "capture"
    host: str = "localhost"
    port: int = field(default=587, metadata=_range(1, 65535))
    security: str = "starttls"
    username: str = ""
    timeout_seconds: float = field(default=30.0, metadata=_range(0.1, None))
    weight: int = field(default=1, metadata=_range(0, None))
    servers: tuple[str, ...] = ()
    concurrency: int = field(default=10, metadata=_range(1, None))
    mailbox: str = "data/mailbox"


@dataclass(frozen=True)
class DeliverySettings:
    """The delivery worker: batches, leases, rate limits, retries and the failure breaker."""

    batch_size: int = field(default=200, metadata=_range(1, None))
    lease_seconds: int = field(default=120, metadata=_range(1, None))
    poll_seconds: float = field(default=2.0, metadata=_range(0.01, None))
    rate_per_second: float = field(default=0.0, metadata=_range(0, None))
    rate_per_hour: float = field(default=0.0, metadata=_range(0, None))
    per_domain_per_second: float = field(default=0.0, metadata=_range(0, None))
    retry_initial_minutes: float = field(default=5.0, metadata=_range(0, None))
    retry_max_minutes: float = field(default=67.0, metadata=_range(0, None))
    lifetime_hours: float = field(default=120.0, metadata=_range(0, None))
    breaker_window: int = field(default=50, metadata=_range(1, None))
    breaker_threshold: float = field(default=0.8, metadata=_range(0.01, 1))


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


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Load settings from ``path`` (or the nearest ``config.toml``) and the environment.

    Without any configuration file, the defaults apply relative to the working directory.
    """
    environ = os.environ if environ is None else environ
    if path is None:
        path = find_config()
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"{path}: configuration file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    source = str(path) if path is not None else "defaults"
    root = path.resolve().parent if path is not None else Path.cwd()

    sections: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in _SECTIONS:
            raise ConfigError(f"{source}: unknown section [{name}] (known: {', '.join(_SECTIONS)})")
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{name}' must be a table [{name}]")
    for name, cls in _SECTIONS.items():
        sections[name] = _build_section(cls, name, raw.get(name, {}), source, environ)
    return Settings(root=root, **sections)


def _build_section(cls: type, section: str, values: dict[str, Any], source: str, environ: Mapping[str, str]) -> Any:
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in known:
            raise ConfigError(f"{source}: unknown key '{section}.{key}' (known: {', '.join(sorted(known))})")
    kwargs: dict[str, Any] = {}
    for key in known:
        expected = hints[key]
        env_name = f"{ENV_PREFIX}{section}_{key}".upper()
        if env_name in environ:
            kwargs[key] = _coerce_env(environ[env_name], expected, env_name)
        elif key in values:
            kwargs[key] = _check_type(values[key], expected, f"{source}: '{section}.{key}'")
    section_settings = cls(**kwargs)
    for f in dataclasses.fields(cls):
        minimum, maximum = f.metadata.get("minimum"), f.metadata.get("maximum")
        value = getattr(section_settings, f.name)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            raise ConfigError(f"{source}: '{section}.{f.name}' must be {bounds}, not {value}")
    return section_settings


def _check_type(value: Any, expected: type, where: str) -> Any:
    # bool is a subclass of int: `port = true` must not pass as an integer.
    if expected is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if expected is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if expected in (str, bool) and isinstance(value, expected):
        return value
    if expected == tuple[str, ...] and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{where} must be {_type_name(expected)}, got {type(value).__name__} {value!r}")


def _coerce_env(text: str, expected: type, env_name: str) -> Any:
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
    raise ConfigError(f"environment {env_name} must be {_type_name(expected)}, got {text!r}")


def _type_name(expected: type) -> str:
    names: dict[Any, str] = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    return names.get(expected, "a list of strings")
