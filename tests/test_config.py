"""Configuration: the shipped config.toml, types, unknown keys, environment overrides, secrets."""

from __future__ import annotations

import dataclasses
import os
import stat
import tomllib
from pathlib import Path

import pytest

from campaign.config import Settings, load_settings, resolve_sqlite_url
from campaign.exceptions import ConfigError
from campaign.secrets import signing_key, smtp_password

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_shipped_config_loads_and_states_every_key_with_its_default() -> None:
    settings = load_settings(ROOT / "config.toml", environ={})
    defaults = Settings(root=ROOT)
    assert settings == defaults
    shipped = tomllib.loads((ROOT / "config.toml").read_text())
    sections = [f.name for f in dataclasses.fields(Settings) if f.name != "root"]
    assert set(shipped) == set(sections)
    for section in sections:
        names = {f.name for f in dataclasses.fields(getattr(defaults, section))}
        assert set(shipped[section]) == names, f"config.toml [{section}] must list every key"


def test_every_key_in_config_toml_is_commented() -> None:
    lines = (ROOT / "config.toml").read_text().splitlines()
    for n, line in enumerate(lines):
        if "=" in line and not line.lstrip().startswith("#"):
            assert lines[n - 1].lstrip().startswith("#"), f"config.toml line {n + 1} has no comment above it"


def test_values_from_file_and_relative_paths(tmp_path: Path) -> None:
    path = write(tmp_path, '[database]\nurl = "sqlite:///var/x.db"\nbusy_timeout_ms = 250\n[paths]\ndata = "d"\n')
    settings = load_settings(path, environ={})
    assert settings.database.busy_timeout_ms == 250
    assert settings.database_url == f"sqlite:///{tmp_path / 'var' / 'x.db'}"
    assert settings.data_dir == tmp_path / "d"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[database]\nurll = 'x'\n", "unknown key 'database.urll'"),
        ("[databse]\nurl = 'x'\n", "unknown section [databse]"),
        ("[database]\nbusy_timeout_ms = '10'\n", "'database.busy_timeout_ms' must be an integer"),
        ("[database]\nbusy_timeout_ms = true\n", "'database.busy_timeout_ms' must be an integer"),
        ("[database]\necho = 1\n", "'database.echo' must be true or false"),
        ("database = 3\n", "'database' must be a table"),
        ("[database\n", "not valid TOML"),
    ],
)
def test_bad_files_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_settings(path, environ={})
    assert message in str(exc.value)
    assert str(path) in str(exc.value)


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[database]\nurl = "sqlite:///a.db"\n')
    env = {
        "CAMPAIGN_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1/x",
        "CAMPAIGN_DATABASE_ECHO": "yes",
        "CAMPAIGN_CONTACTS_IMPORT_BATCH_SIZE": "500",
    }
    settings = load_settings(path, environ=env)
    assert settings.database_url == "postgresql+psycopg://postgres@127.0.0.1/x"
    assert settings.database.echo is True
    assert settings.contacts.import_batch_size == 500


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CAMPAIGN_DATABASE_BUSY_TIMEOUT_MS must be an integer"):
        load_settings(write(tmp_path, ""), environ={"CAMPAIGN_DATABASE_BUSY_TIMEOUT_MS": "soon"})


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), environ={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.database.url = "x"  # type: ignore[misc]


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", environ={})


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///data/c.db", "sqlite:////r/data/c.db"),
        ("sqlite:////abs/c.db", "sqlite:////abs/c.db"),
        ("sqlite://", "sqlite://"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
    ],
)
def test_resolve_sqlite_url(url: str, expected: str) -> None:
    assert resolve_sqlite_url(url, Path("/r")) == expected


def test_signing_key_is_generated_once_private_and_stable(tmp_path: Path) -> None:
    key = signing_key(tmp_path / "data", environ={})
    path = tmp_path / "data" / "secret.key"
    assert len(key) >= 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert signing_key(tmp_path / "data", environ={}) == key
    assert list((tmp_path / "data").iterdir()) == [path]


def test_signing_key_from_environment_wins_and_must_be_long(tmp_path: Path) -> None:
    assert signing_key(tmp_path, environ={"CAMPAIGN_SECRET_KEY": "k" * 40}) == b"k" * 40
    assert not (tmp_path / "secret.key").exists()
    with pytest.raises(ConfigError, match="at least 32"):
        signing_key(tmp_path, environ={"CAMPAIGN_SECRET_KEY": "short"})


def test_smtp_password_only_from_environment() -> None:
    assert smtp_password({"CAMPAIGN_SMTP_PASSWORD": "s3cret"}) == "s3cret"
    assert smtp_password({}) is None


def test_secrets_are_git_ignored() -> None:
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "data/secret.key" in ignored


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[delivery]\nbreaker_window = 0\n", "'delivery.breaker_window' must be at least 1, not 0"),
        ("[delivery]\nbreaker_threshold = 1.5\n", "'delivery.breaker_threshold' must be between 0.01 and 1"),
        ("[smtp]\nport = 70000\n", "'smtp.port' must be between 1 and 65535"),
        ("[smtp]\nconcurrency = 0\n", "'smtp.concurrency' must be at least 1"),
    ],
)
def test_numbers_out_of_range_are_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_settings(write(tmp_path, text), environ={})
