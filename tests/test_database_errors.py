"""A database URL that cannot work is one line naming the URL and what to fix; only `campaign init` creates files."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from campaign.cli import cli
from campaign.exceptions import StorageError
from campaign.services.database import init_database, upgrade_database
from campaign.store.engine import Database


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text('[paths]\ndata = "data"\n')
    return path


def run(config: Path, url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args], env={"CAMPAIGN_DATABASE_URL": url})


def one_line_error(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not a traceback
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: database.url: ")
    return lines[0]


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "w" / "people.csv"
    path.parent.mkdir()
    path.write_text("email,name\nann@example.org,Ann\n")
    return path


@pytest.mark.parametrize("command", [["lists"], ["init"], ["db", "status"], ["db", "upgrade"]])
def test_a_database_under_a_file_is_one_line(config: Path, csv_file: Path, command: list[str]) -> None:
    url = f"sqlite:///{csv_file}/x.db"
    line = one_line_error(run(config, url, *command))
    assert url in line
    assert "not a directory" in line
    assert csv_file.read_text() == "email,name\nann@example.org,Ann\n"


@pytest.mark.parametrize("command", [["lists"], ["init"], ["db", "status"], ["contacts", "list"]])
def test_a_file_that_is_not_a_database_is_one_line_and_left_alone(
    config: Path, csv_file: Path, command: list[str]
) -> None:
    url = f"sqlite:///{csv_file}"
    line = one_line_error(run(config, url, *command))
    assert line == f"Error: database.url: {url} is not a SQLite database"
    assert csv_file.read_text() == "email,name\nann@example.org,Ann\n"
    assert sorted(p.name for p in csv_file.parent.iterdir()) == ["people.csv"]  # no -wal or -shm beside it


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("bogus://x", "unknown database kind 'bogus' (use sqlite:/// or postgresql+psycopg://)"),
        ("mysql+nodriver://x/y", "unknown database kind 'mysql+nodriver' (use sqlite:/// or postgresql+psycopg://)"),
        ("not a url", "'not a url' is not a database URL (use sqlite:/// or postgresql+psycopg://)"),
    ],
)
def test_an_unknown_kind_of_database_is_one_line(config: Path, url: str, expected: str) -> None:
    assert one_line_error(run(config, url, "lists")) == f"Error: database.url: {expected}"


def test_a_missing_driver_is_one_line(config: Path) -> None:
    # SQLAlchemy knows MySQL, but campaign does not install its driver.
    line = one_line_error(run(config, "mysql://u:secret@localhost/x", "lists"))
    assert line == (
        "Error: database.url: mysql://u:***@localhost/x needs the Python module 'MySQLdb', which is not installed "
        "(use sqlite:/// or postgresql+psycopg://)"
    )


def test_an_unreachable_postgresql_server_is_one_line(config: Path) -> None:
    url = "postgresql+psycopg://nobody:secret@127.0.0.1:1/none?connect_timeout=2"
    line = one_line_error(run(config, url, "lists"))
    assert "cannot connect to postgresql+psycopg://nobody:***@127.0.0.1:1/none" in line
    assert "secret" not in line


# --- only init creates files -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [["lists"], ["db", "status"], ["db", "upgrade"], ["contacts", "list"], ["events", "list"], ["list"]],
)
def test_a_command_against_a_missing_database_creates_nothing(config: Path, tmp_path: Path, command: list[str]) -> None:
    before = set(tmp_path.rglob("*"))
    url = f"sqlite:///{tmp_path / 'new' / 'dir' / 'missing.db'}"
    line = one_line_error(run(config, url, *command))
    assert "campaign init" in line
    assert url in line
    assert set(tmp_path.rglob("*")) == before


def test_init_creates_the_database_and_its_directory(config: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'dir' / 'campaign.db'}"
    assert run(config, url, "init").exit_code == 0
    assert (tmp_path / "new" / "dir" / "campaign.db").is_file()
    assert run(config, url, "lists").exit_code == 0


def test_the_handle_opens_but_never_creates_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "x.db"
    db = Database(f"sqlite:///{path}")
    try:
        with pytest.raises(StorageError, match="run `campaign init`"), db.read():
            pass
        with pytest.raises(StorageError, match="run `campaign init`"):
            upgrade_database(db)
        assert not (tmp_path / "deep").exists()
        init_database(db)
        assert path.is_file()
        upgrade_database(db)  # now it exists: safe to run again
    finally:
        db.dispose()


def test_init_under_a_file_names_the_url(csv_file: Path) -> None:
    db = Database(f"sqlite:///{csv_file}/sub/x.db")
    with pytest.raises(
        StorageError,
        match=r"^database\.url: cannot create sqlite:///.*people\.csv/sub/x\.db: .*people\.csv is not a directory$",
    ):
        init_database(db)
