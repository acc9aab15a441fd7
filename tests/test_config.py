"""Configuration: the shipped config.toml, types, unknown keys, environment overrides, secrets."""

from __future__ import annotations

import dataclasses
import os
import re
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
    sections = [f.name for f in dataclasses.fields(Settings) if f.name not in ("root", "config_file")]
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
    with pytest.raises(ConfigError, match=r"CAMPAIGN_DATABASE_BUSY_TIMEOUT_MS: .database\.busy_timeout_ms. must be an"):
        load_settings(write(tmp_path, ""), environ={"CAMPAIGN_DATABASE_BUSY_TIMEOUT_MS": "soon"})


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), environ={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.database.url = "x"  # type: ignore[misc]


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_a_file_not_in_utf8_is_one_line_and_a_byte_order_mark_is_taken(tmp_path: Path) -> None:
    latin = tmp_path / "latin.toml"
    latin.write_bytes('[mail]\nfrom_name = "Équipe"\n'.encode("latin-1"))  # a Windows editor's "ANSI"
    with pytest.raises(ConfigError, match=r"latin\.toml: not UTF-8 text \(byte 0xc9 at offset 20\): save it as UTF-8"):
        load_settings(latin, environ={})
    marked = tmp_path / "marked.toml"
    marked.write_bytes(b"\xef\xbb\xbf[web]\nport = 8081\n")
    assert load_settings(marked, environ={}).web.port == 8081


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
    key = signing_key(tmp_path / "data", environ={}, create=True)
    path = tmp_path / "data" / "secret.key"
    assert len(key) >= 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert signing_key(tmp_path / "data", environ={}, create=True) == key
    assert signing_key(tmp_path / "data", environ={}) == key
    assert list((tmp_path / "data").iterdir()) == [path]


def test_only_init_makes_a_signing_key(tmp_path: Path) -> None:
    """A key made by any command would silently break the links of every message signed with the lost one."""
    with pytest.raises(ConfigError, match=r"no token-signing key: .*secret.key does not exist; run `campaign init`"):
        signing_key(tmp_path / "data", environ={})
    assert not (tmp_path / "data").exists()


def test_a_command_after_the_key_is_lost_says_to_run_init(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from campaign.cli import cli

    path = write(tmp_path, '[database]\nurl = "sqlite:///c.db"\n')
    assert CliRunner().invoke(cli, ["--config", str(path), "init"]).exit_code == 0
    (tmp_path / "data" / "secret.key").unlink()
    result = CliRunner(env={"CAMPAIGN_SECRET_KEY": None}).invoke(cli, ["--config", str(path), "check", "x"])
    assert result.exit_code == 1
    assert "run `campaign init` to make one" in result.output
    assert not (tmp_path / "data" / "secret.key").exists()


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
        # Values that passed the check and then were a traceback where they were used (date arithmetic, SQLite).
        ("[tracking]\nretention_days = 1000000\n", "'tracking.retention_days' must be between 0 and 36525"),
        ("[delivery]\nlifetime_hours = 1e12\n", "'delivery.lifetime_hours' must be between 0 and 878400"),
        ("[tracking]\nrepeat_seconds = 1e30\n", "'tracking.repeat_seconds' must be between 0 and 31622400"),
        ("[tracking]\nqueue_size = 99999999999999999999\n", "'tracking.queue_size' must be at most 1000000000"),
    ],
)
def test_numbers_out_of_range_are_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_settings(write(tmp_path, text), environ={})


# --- values checked at load: every error names the key and where the value came from -------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # The issue's repro: a domain that broke Message-ID, List-Id and the calendar UID.
        ('[mail]\ndomain = "ex ample.org>\\r\\nX: y"\n', "'mail.domain' must not contain control characters"),
        ('[mail]\ndomain = "ex ample.org"\n', "'mail.domain' must be a domain name like example.org"),
        ('[mail]\ndomain = "example.org>"\n', "'mail.domain' must be a domain name"),
        ('[mail]\ndomain = "exa_mple.org"\n', "'mail.domain' must be a domain name"),
        ('[mail]\ndomain = "-example.org"\n', "'mail.domain' must be a domain name"),
        ('[mail]\ndomain = "example..org"\n', "'mail.domain' must be a domain name"),
        ('[mail]\ndomain = ""\n', "'mail.domain' must be a domain name"),
        ('[mail]\ndomain = "a@example.org"\n', "'mail.domain' must be a domain name"),
        ('[mail]\ndomain = "192.0.2.1"\n', "'mail.domain' must be a domain name"),
        # The issue's repro: this went out as `From: Events team <not an address>`.
        ('[mail]\nfrom_address = "not an address"\n', "'mail.from_address' must be a plain email address"),
        ('[mail]\nfrom_address = "Events <a@example.org>"\n', "'mail.from_address' must be a plain email address"),
        ('[mail]\nfrom_address = ""\n', "'mail.from_address' must be a plain email address"),
        ('[mail]\nfrom_address = "a@example.org\\r\\nBcc: x@example.org"\n', "'mail.from_address' must not contain"),
        ('[mail]\nreply_to = "a@b@example.org"\n', "'mail.reply_to' must be a plain email address"),
        ('[mail]\nreply_to = "Replies <r@example.org>"\n', "'mail.reply_to' must be a plain email address"),
        ('[mail]\nunsubscribe_mailto = "unsubscribe"\n', "'mail.unsubscribe_mailto' must be a plain email address"),
        ('[mail]\nfrom_name = "Events\\r\\nBcc: x@example.org"\n', "'mail.from_name' must not contain control"),
        ('[mail]\nfrom_name = "Events\\u0000"\n', "'mail.from_name' must not contain control characters"),
        ('[mail]\nfrom_name = "Events\\u2028team"\n', "'mail.from_name' must not contain control characters"),
        # No string setting anywhere may carry a control character.
        ('[database]\nurl = "sqlite:///a.db\\u0000"\n', "'database.url' must not contain control characters"),
        ('[paths]\ndata = "da\\nta"\n', "'paths.data' must not contain control characters"),
        ('[smtp]\nservers = ["a:25", "b:25\\r\\n"]\n', "'smtp.servers' must not contain control characters"),
        ('[smtp]\nservers = ["relay.example.org"]\n', "'smtp.servers' entries must be host:port or host:port:weight"),
        ('[smtp]\nservers = ["relay.example.org:25:x"]\n', "'smtp.servers' entries must be host:port"),
        ('[smtp]\nservers = ["relay.example.org:70000"]\n', "needs a port from 1 to 65535"),
        ('[smtp]\nservers = ["bad host:25"]\n', "has no valid host name"),
        ('[smtp]\nservers = ["999.1.1.1:25"]\n', "has no valid host name"),
        ('[smtp]\nservers = ["::1:25"]\n', "entries must be host:port"),
        ('[smtp]\nservers = ["[relay.example.org]:25"]\n', "has no valid host name"),
        # smtp.host follows the rule smtp.servers entries do: it used to pass unchecked.
        ('[smtp]\nhost = "bad host"\n', "'smtp.host' must be a host name or an IP address"),
        ('[smtp]\nhost = ""\n', "'smtp.host' must be a host name or an IP address"),
        ('[smtp]\nhost = "relay.example.org:25"\n', "'smtp.host' must be a host name or an IP address"),
        ('[smtp]\nhost = "-relay.example.org"\n', "'smtp.host' must be a host name or an IP address"),
        ('[smtp]\nhost = "999.1.1.1"\n', "'smtp.host' must be a host name or an IP address"),
        ('[smtp]\nusername = "u\\u007f"\n', "'smtp.username' must not contain control characters"),
        ('[links]\npublic_url = "campaign.example.org"\n', "'links.public_url' must be an http(s) URL"),
        ('[links]\npublic_url = "ftp://campaign.example.org"\n', "'links.public_url' must be an http(s) URL"),
        ('[links]\npublic_url = "javascript:alert(1)"\n', "'links.public_url' must be an http(s) URL"),
        ('[links]\npublic_url = "https://"\n', "'links.public_url' must be an http(s) URL with a host"),
        ('[links]\npublic_url = "https://x.org/\\" onclick=\\"a()"\n', "'links.public_url' must not contain"),
        ('[links]\npublic_url = "https://ex ample.org"\n', "'links.public_url' must not contain"),
        ('[links]\npublic_url = "https://x.org/<b>"\n', "'links.public_url' must not contain"),
        ('[links]\npublic_url = "https://x.org:99999"\n', "'links.public_url' has an invalid port"),
        ('[smtp]\nmode = "relais"\n', "'smtp.mode' must be one of capture, relay, not 'relais'"),
        ('[smtp]\nsecurity = "ssl"\n', "'smtp.security' must be one of starttls, tls, none, not 'ssl'"),
        ('[render]\ncalendar_method = "CANCEL"\n', "'render.calendar_method' must be one of PUBLISH, REQUEST"),
        ('[render]\ncalendar_method = "publsh"\n', "'render.calendar_method' must be one of PUBLISH, REQUEST"),
        ('[render]\ndefault_locale = "xx-QQ"\n', "'render.default_locale' must be a locale Babel knows"),
        ('[render]\ndefault_locale = "english"\n', "'render.default_locale' must be a locale Babel knows"),
    ],
)
def test_bad_values_in_the_file_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_settings(path, environ={})
    assert str(exc.value).startswith(f"{path}: "), str(exc.value)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)
    assert "\r" not in str(exc.value)


def test_good_values_are_accepted_and_put_in_canonical_form(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[mail]\ndomain = "Bücher.Example"\nfrom_address = "Invitations@Events.Example.org"\nreply_to = ""\n'
        'unsubscribe_mailto = ""\nfrom_name = "José Müller, 佐藤 & منى"\n'
        '[links]\npublic_url = "http://127.0.0.1:8080/campaign/"\n'
        '[render]\ncalendar_method = "request"\ndefault_locale = "es_co"\n'
        '[smtp]\nmode = "Relay"\nsecurity = "TLS"\n',
    )
    settings = load_settings(path, environ={})
    # Message-ID, List-Id and the calendar UID are ASCII headers: the domain is kept in its IDNA (A-label) form.
    assert settings.mail.domain == "xn--bcher-kva.example"
    # Normalised as contact addresses are (the rules' normalise_email): the domain lower-cased, the local part kept.
    assert settings.mail.from_address == "Invitations@events.example.org"
    assert (settings.mail.reply_to, settings.mail.unsubscribe_mailto) == ("", "")
    assert settings.links.public_url == "http://127.0.0.1:8080/campaign/"
    assert settings.render.calendar_method == "REQUEST"
    assert settings.render.default_locale == "es-CO"
    assert (settings.smtp.mode, settings.smtp.security) == ("relay", "tls")


def test_allowed_values_have_one_source(tmp_path: Path) -> None:
    from campaign import mail, render
    from campaign.config import CALENDAR_METHODS, SMTP_MODES, SMTP_SECURITIES
    from campaign.models import CalendarMethod, SmtpSecurity

    # Each value set is defined once, in campaign.models; the adapters use the same classes.
    assert mail.smtp.Security is SmtpSecurity
    assert render.calendar.CalendarMethod is CalendarMethod
    assert SMTP_SECURITIES == tuple(SmtpSecurity) == ("starttls", "tls", "none")
    # CANCEL is for cancellations, never the configured method of invitations.
    assert CALENDAR_METHODS == (CalendarMethod.PUBLISH, CalendarMethod.REQUEST)
    assert SMTP_MODES == ("capture", "relay")
    # Loaded settings hold the members themselves, in canonical form.
    settings = load_settings(write(tmp_path, '[render]\ncalendar_method = "request"\n[smtp]\nsecurity = "TLS"\n'), {})
    assert settings.smtp.security is SmtpSecurity.TLS
    assert settings.render.calendar_method is CalendarMethod.REQUEST


@pytest.mark.parametrize(
    "host",
    ["localhost", "relay.example.org", "Relay-1.Example.ORG", "mx", "127.0.0.1", "::1", "2001:db8::25", "a" * 63],
)
def test_smtp_host_takes_a_host_name_or_an_ip_address(tmp_path: Path, host: str) -> None:
    settings = load_settings(write(tmp_path, f'[smtp]\nhost = "{host}"\n'), environ={})
    assert settings.smtp.host == host


@pytest.mark.parametrize(
    ("entry", "relay"),
    [
        ("relay.example.org:587", ("relay.example.org", 587, 1)),
        ("localhost:25:0", ("localhost", 25, 0)),
        ("192.0.2.7:2525:3", ("192.0.2.7", 2525, 3)),
        # An IPv6 address is written in brackets, as in URLs: its colons would read as the port's.
        ("[::1]:2525", ("::1", 2525, 1)),
        ("[2001:db8::25]:25:2", ("2001:db8::25", 25, 2)),
    ],
)
def test_smtp_servers_take_the_same_hosts(tmp_path: Path, entry: str, relay: tuple[str, int, int]) -> None:
    from campaign.config import parse_relay

    settings = load_settings(write(tmp_path, f'[smtp]\nservers = ["{entry}"]\n'), environ={})
    parsed = parse_relay(settings.smtp.servers[0])
    assert (parsed.host, parsed.port, parsed.weight) == relay


def test_a_bad_smtp_host_stops_a_command_with_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from campaign.cli import cli

    path = write(tmp_path, '[database]\nurl = "sqlite:///c.db"\n')
    result = CliRunner(env={"CAMPAIGN_SMTP_HOST": "bad host"}).invoke(cli, ["--config", str(path), "lists"])
    assert result.exit_code == 1, result.output
    assert result.output.strip() == (
        "Error: environment CAMPAIGN_SMTP_HOST: 'smtp.host' must be a host name or an IP address "
        "(like smtp.example.org, 192.0.2.25 or ::1), not 'bad host'"
    )


@pytest.mark.parametrize("raw", ["en", "es_CO", "ES-co", "zh_hant_tw", "fil-PH", "sr-Latn", "pt-BR"])
def test_default_locale_is_normalised_as_contact_locales_are(tmp_path: Path, raw: str) -> None:
    from campaign.rules.contact_fields import parse_locale

    settings = load_settings(write(tmp_path, f'[render]\ndefault_locale = "{raw}"\n'), environ={})
    assert settings.render.default_locale == parse_locale(raw)


@pytest.mark.parametrize(
    "url",
    [
        "https://campaign.example.org",
        "https://campaign.example.org/path?q=1#f",
        "http://127.0.0.1:8080/",
        "https://bücher.example/",
        "campaign.example.org",
        "ftp://example.org/",
        "https://",
        "https:///path",
        'https://x.org/" onclick="a()',
        "https://x.org/'",
        "https://x.org/`",
        "https://ex ample.org/",
        "https://x.org/\\..",
        "https://x.org/<script>",
        "https://x.org/\u202egnp",
        "https://x.org/\u00a0",
        "https://paypal.example.com@evil.example.org/",
        "https://x.org:99999/",
        "https://x.org:port/",
    ],
)
def test_public_url_follows_the_same_rule_as_event_urls(tmp_path: Path, url: str) -> None:
    from campaign.exceptions import ValidationError
    from campaign.rules.urls import parse_http_url

    # The public URL lands where event URLs do (HTML attributes, calendar files): one rule for both.
    toml_url = url.replace("\\", "\\\\").replace('"', '\\"')
    try:
        load_settings(write(tmp_path, f'[links]\npublic_url = "{toml_url}"\n'), environ={})
        config_ok = True
    except ConfigError:
        config_ok = False
    try:
        parse_http_url(url, "registration_url")
        event_ok = True
    except ValidationError:
        event_ok = False
    assert config_ok == event_ok


# --- environment overrides ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"CAMPAIGN_DELIVERY_BATCH_SIZE": "-1"},
            "environment CAMPAIGN_DELIVERY_BATCH_SIZE: 'delivery.batch_size' must be at least 1, not -1",
        ),
        (
            {"CAMPAIGN_DATABASE_BUSY_TIMEOUT_MS": "soon"},
            "environment CAMPAIGN_DATABASE_BUSY_TIMEOUT_MS: 'database.busy_timeout_ms' must be an integer, got 'soon'",
        ),
        ({"CAMPAIGN_MAIL_DOMAIN": "ex ample.org"}, "environment CAMPAIGN_MAIL_DOMAIN: 'mail.domain' must be a domain"),
        (
            {"CAMPAIGN_MAIL_FROM_ADDRESS": "not an address"},
            "environment CAMPAIGN_MAIL_FROM_ADDRESS: 'mail.from_address' must be a plain email address",
        ),
        ({"CAMPAIGN_MAIL_FROM_NAME": "a\nb"}, "environment CAMPAIGN_MAIL_FROM_NAME: 'mail.from_name' must not"),
        ({"CAMPAIGN_SMTP_MODE": "relais"}, "environment CAMPAIGN_SMTP_MODE: 'smtp.mode' must be one of capture, relay"),
        ({"CAMPAIGN_LINKS_PUBLIC_URL": "x"}, "environment CAMPAIGN_LINKS_PUBLIC_URL: 'links.public_url' must be"),
        (
            {"CAMPAIGN_RENDER_DEFAULT_LOCALE": "xx"},
            "environment CAMPAIGN_RENDER_DEFAULT_LOCALE: 'render.default_locale'",
        ),
    ],
)
def test_a_bad_environment_value_names_the_variable_not_the_file(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    path = write(tmp_path, "[delivery]\nbatch_size = 10\n[mail]\ndomain = 'example.org'\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(path, environ=env)
    assert str(exc.value).startswith(message), str(exc.value)
    assert str(path) not in str(exc.value)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("CAMPAIGN_SMTP_NOPE", "environment CAMPAIGN_SMTP_NOPE: unknown setting 'smtp.nope' (known: concurrency, host"),
        ("CAMPAIGN_DATABASE_URLL", "environment CAMPAIGN_DATABASE_URLL: unknown setting 'database.urll'"),
        ("CAMPAIGN_MAIL_FROM", "unknown setting 'mail.from' (known: domain, from_address, from_name"),
        ("CAMPAIGN_smtp_mode", "environment CAMPAIGN_smtp_mode: variable names are upper case: CAMPAIGN_SMTP_MODE"),
        ("CAMPAIGN_SMTP", "environment CAMPAIGN_SMTP: unknown setting"),
        # A misspelt section is as silent a mistake as a misspelt key.
        ("CAMPAIGN_SMPT_HOST", "environment CAMPAIGN_SMPT_HOST: not a setting; settings are CAMPAIGN_<SECTION>_<KEY>"),
        ("CAMPAIGN_ANYTHING_ELSE", "environment CAMPAIGN_ANYTHING_ELSE: not a setting"),
        ("CAMPAIGN_REQUIRE_POSTGRES", "environment CAMPAIGN_REQUIRE_POSTGRES: not a setting"),
    ],
)
def test_an_unknown_variable_of_a_known_section_is_an_error(tmp_path: Path, name: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(write(tmp_path, ""), environ={name: "1"})
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[mail]\nfrom_name = "Events\u202eteam"\n',
            "'mail.from_name' must not contain invisible formatting characters (U+202E)",
        ),
        (
            '[mail]\nfrom_name = "Events\u200bteam"\n',
            "'mail.from_name' must not contain invisible formatting characters (U+200B)",
        ),
        ("[delivery]\nrate_per_second = nan\n", "'delivery.rate_per_second' must be a finite number, not nan"),
        ("[delivery]\nlifetime_hours = inf\n", "'delivery.lifetime_hours' must be a finite number, not inf"),
    ],
)
def test_invisible_characters_and_non_finite_numbers_are_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(write(tmp_path, text), environ={})
    assert message in str(exc.value)
    with pytest.raises(ConfigError, match=r"environment CAMPAIGN_DELIVERY_RATE_PER_HOUR: .* must be a finite number"):
        load_settings(write(tmp_path, ""), environ={"CAMPAIGN_DELIVERY_RATE_PER_HOUR": "NaN"})


def test_joiners_that_spelling_needs_are_kept_in_settings(tmp_path: Path) -> None:
    name = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # Persian needs the zero-width non-joiner
    settings = load_settings(write(tmp_path, f'[mail]\nfrom_name = "{name}"\n'), environ={})
    assert settings.mail.from_name == name


def test_variables_that_are_not_settings_are_left_alone(tmp_path: Path) -> None:
    env = {
        # The secrets (campaign.secrets), read where they are used, never settings.
        "CAMPAIGN_SMTP_PASSWORD": "s3cret",
        "CAMPAIGN_SECRET_KEY": "k" * 40,
        # The test suite's own variables: CAMPAIGN_TEST_* is reserved for it.
        "CAMPAIGN_TEST_REQUIRE_POSTGRES": "1",
        "CAMPAIGN_TEST_PG_DSN": "postgresql://postgres@127.0.0.1/postgres",
        "OTHER_SMTP_NOPE": "x",
    }
    assert load_settings(write(tmp_path, ""), environ=env) == load_settings(write(tmp_path, ""), environ={})


def test_a_bad_setting_stops_every_command_with_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from campaign.cli import cli

    path = write(tmp_path, '[database]\nurl = "sqlite:///c.db"\n[mail]\ndomain = "ex ample.org>\\r\\nX: y"\n')
    for args in (["init"], ["lists"], ["check", "x"]):
        result = CliRunner().invoke(cli, ["--config", str(path), *args])
        assert result.exit_code == 1, result.output
        assert result.output.strip().splitlines() == [result.output.strip()], result.output
        assert "'mail.domain'" in result.output
        assert "Traceback" not in result.output
    result = CliRunner(env={"CAMPAIGN_SMTP_NOPE": "1"}).invoke(cli, ["--config", str(write(tmp_path, "")), "init"])
    assert result.exit_code == 1
    assert "CAMPAIGN_SMTP_NOPE" in result.output
    assert not (tmp_path / "data").exists()


def test_every_config_key_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    defaults = Settings(root=ROOT)
    sections = [f.name for f in dataclasses.fields(Settings) if f.name not in ("root", "config_file")]
    missing = [
        f"{section}.{f.name}"
        for section in sections
        for f in dataclasses.fields(getattr(defaults, section))
        if f"`{section}.{f.name}`" not in readme
    ]
    assert missing == []


def test_default_waves_are_the_issues_and_parse() -> None:
    specs = Settings(root=ROOT).waves.specs
    assert [(s.name, s.kind.value, s.audience.value) for s in specs] == [
        ("last-chance", "last-chance", "not-registered"),
        ("reminder-1d", "reminder", "registered"),
        ("reminder-1h", "reminder", "registered"),
        ("follow-up", "follow-up", "all"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[waves]\ndefault = ["r reminder -1d everybody"]', "'waves.default' entry 'r reminder -1d everybody'"),
        ('[waves]\ndefault = ["r reminder"]', "'waves.default' entry 'r reminder' is not a wave"),
        ('[waves]\ndefault = ["r reminder soon all"]', "timing"),
        ('[waves]\ndefault = ["invitation invitation launch all"]', "the invitation's"),
        ('[waves]\ndefault = ["r reminder -1d all", "r reminder -1h all"]', "is used twice"),
        ('[waves]\ndefault = "r reminder -1d all"', "'waves.default' must be a list of strings"),
        ('[waves]\nwindow = "9 to 5"', "'waves.window'"),
    ],
)
def test_bad_waves_settings_name_the_key_and_the_entry(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(write(tmp_path, text), environ={})


def test_the_default_window_is_kept_in_canonical_form(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, '[waves]\nwindow = "MON-FRI 9:00-17:00"\ndefault = []'), environ={})
    assert settings.waves.window == "mon-fri 09:00-17:00"
    assert settings.waves.specs == []
