"""``contacts export`` then ``contacts import`` gives back the same contacts: cells a spreadsheet would run as
formulas are exported with a ``'`` before them, and the import takes exactly that ``'`` away again."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from click.testing import CliRunner

from campaign.cli import cli
from campaign.models import Contact
from campaign.services.contact_import import import_contacts
from campaign.services.contacts import export_contacts, find_contacts
from campaign.sources.csv_writer import from_spreadsheet_safe, spreadsheet_safe
from campaign.store.engine import Database
from tests.conftest import cli_ok

# Values a spreadsheet would run, values that already look escaped, and ordinary ones with quotes.
TRICKY = [
    "=1+1",
    "'=1+1",
    "''=1+1",
    "+Plus Org",
    "-Minus",
    "-",
    "@handle",
    '=HYPERLINK("http://evil.example","click")',
    "'hello",
    "O'Brien",
    "'",
    "a=b",
    "1-2",
    "José",
]


@pytest.mark.parametrize("value", [*TRICKY, "\t=1", "\r=1", "'\t=1", ""])
def test_from_spreadsheet_safe_inverts_spreadsheet_safe(value: str) -> None:
    assert from_spreadsheet_safe(spreadsheet_safe(value)) == value


@pytest.mark.parametrize("value", ["=1+1", "'=1+1", "''@x", "+1", "-"])
def test_what_a_spreadsheet_would_run_is_still_neutralised(value: str) -> None:
    assert spreadsheet_safe(value).startswith("'")


def tricky_csv(path: Path) -> Path:
    """Contacts whose name, organisation and a custom attribute are each tricky value, and addresses that start
    with a formula character (valid addresses: ``-`` and ``=`` may start a local part); written as the export
    writes them (a ``'`` in a cell before a formula character is the escape, see the README)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["email", "name", "organisation", "Nickname"])
    rows = [[f"person{i}@example.org", value, value, value] for i, value in enumerate(TRICKY)]
    rows += [["-dash@example.org", "Dash", "", ""], ["=equals@example.org", "Equals", "", ""]]
    writer.writerows([spreadsheet_safe(cell) for cell in row] for row in rows)
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def everyone(db: Database) -> dict[str, tuple[str | None, str | None, dict[str, str]]]:
    def key(c: Contact) -> tuple[str | None, str | None, dict[str, str]]:
        return (c.name, c.organisation, dict(c.attributes))

    return {c.email: key(c) for c in find_contacts(db)}


def test_export_then_import_gives_the_same_contacts(db: Database, tmp_path: Path) -> None:
    report = import_contacts(db, tricky_csv(tmp_path / "tricky.csv"), "tricky")
    assert report.rejected == 0, report.rejections
    before = everyone(db)
    for i, value in enumerate(TRICKY):
        assert before[f"person{i}@example.org"] == (value, value, {"nickname": value})
    assert {"-dash@example.org", "=equals@example.org"} <= set(before)

    exported = tmp_path / "exported.csv"
    with exported.open("w", encoding="utf-8", newline="") as fh:
        export_contacts(db, fh, list_name="tricky")
    for row in csv.reader(exported.read_text(encoding="utf-8").splitlines()):
        assert all(cell[:1] not in ("=", "+", "-", "@") for cell in row), row

    again = import_contacts(db, exported, "tricky")
    assert (again.unchanged, again.updated, again.rejected) == (len(before), 0, 0)
    assert everyone(db) == before


def test_cli_round_trip(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("")
    run = cli_ok(config)
    run("init")
    run("contacts", "import", str(tricky_csv(tmp_path / "tricky.csv")), "--list", "tricky")
    first = run("contacts", "export", "--list", "tricky")
    (tmp_path / "exported.csv").write_text(first, encoding="utf-8")
    assert "unchanged" in run("contacts", "import", str(tmp_path / "exported.csv"), "--list", "tricky")
    assert CliRunner().invoke(cli, ["--config", str(config), "contacts", "export", "--list", "tricky"]).output == first
    shown = run("contacts", "show", "person1@example.org")
    assert "'=1+1" in shown
    assert "''=1+1" not in shown


def test_a_quote_before_a_formula_character_is_read_as_the_escape(db: Database, tmp_path: Path) -> None:
    """As a spreadsheet shows it: ``'=1+1`` typed into a cell is the text ``=1+1``."""
    path = tmp_path / "quoted.csv"
    path.write_text("email,name,Note\na@example.org,'=1+1,'-5\nb@example.org,'Quoted,O'Brien\n", encoding="utf-8")
    import_contacts(db, path, "quoted")
    assert everyone(db) == {
        "a@example.org": ("=1+1", None, {"note": "-5"}),
        "b@example.org": ("'Quoted", None, {"note": "O'Brien"}),
    }


def test_an_address_that_starts_with_a_quote_is_kept(db: Database, tmp_path: Path) -> None:
    """No address starts with "@", so ``'@example.org`` is the address whose local part is a quote (found by
    Hypothesis), never an escape; it exports as ``''@example.org`` and imports back unchanged."""
    path = tmp_path / "quote.csv"
    path.write_text("email\n'@example.org\n", encoding="utf-8")
    report = import_contacts(db, path, "q")
    assert report.rejected == 0
    assert set(everyone(db)) == {"'@example.org"}
    out = io.StringIO()
    export_contacts(db, out, list_name="q")
    assert "''@example.org" in out.getvalue()
    again = tmp_path / "again.csv"
    again.write_text(out.getvalue(), encoding="utf-8")
    import_contacts(db, again, "q2")
    assert set(everyone(db)) == {"'@example.org"}
