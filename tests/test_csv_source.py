"""Reading contact CSV files: encodings, delimiters, headers, line numbers, spreadsheet safety."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from campaign.exceptions import ImportFileError
from campaign.sources.csv_contacts import (
    Column,
    ContactCsv,
    CsvProblem,
    CsvRecord,
    attribute_name,
    map_header,
    sniff_delimiter,
)
from campaign.sources.csv_writer import spreadsheet_safe

WriteCsv = Callable[..., Path]


def _rows(path: Path, encoding: str | None = None) -> list[CsvRecord | CsvProblem]:
    with ContactCsv(path, encoding=encoding) as source:
        return list(source.rows())


# --- sniff_delimiter -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("email,name,country", ","),
        ("E-mail;Name;Time zone;Country", ";"),
        ("email\tname\ttimezone", "\t"),
        ("email", ","),  # nothing to go by: comma
        ("email;name,country", ","),  # a tie goes to the comma
        ('"Name, full";email;zone', ";"),  # commas inside quotes do not count
        ('"a;b;c;d",email,name', ","),
    ],
)
def test_sniff_delimiter(header: str, expected: str) -> None:
    assert sniff_delimiter(header) == expected


# --- attribute_name / map_header -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Job Title", "job_title"),
        ("  Date of Birth (DOB) ", "date_of_birth_dob"),
        ("job_title", "job_title"),
        ("2024 Status", "col_2024_status"),
        ("Catégorie", "catégorie"),
        ("---", ""),
        ("", ""),
        ("=cmd|' /C calc'!A0", "cmd_c_calc_a0"),
    ],
)
def test_attribute_name(header: str, expected: str) -> None:
    assert attribute_name(header) == expected
    assert attribute_name(header) == "" or attribute_name(header).isidentifier()


def test_map_header_maps_aliases_case_insensitively_and_keeps_custom_columns() -> None:
    columns = map_header(
        ["\ufeffE-mail", "Full Name", "TIME ZONE", "Organization", "country_code", "Language", "Job Title", "  "],
        Path("x.csv"),
    )
    assert columns == [
        Column("E-mail", "email", "e_mail"),
        Column("Full Name", "name", "full_name"),
        Column("TIME ZONE", "timezone", "time_zone"),
        Column("Organization", "organisation", "organization"),
        Column("country_code", "country", "country_code"),
        Column("Language", "locale", "language"),
        Column("Job Title", None, "job_title"),
        Column("", None, ""),
    ]


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("Email Address", "email"),
        ("EMAIL", "email"),
        ("e_mail", "email"),
        ("Correo", "email"),
        ("Time zone", "timezone"),
        ("TZ", "timezone"),
        ("Given Name", "first_name"),
        ("Surname", "last_name"),
        ("Company", "organisation"),
        ("ISO2", "country"),
        ("locale", "locale"),
    ],
)
def test_map_header_aliases(header: str, field: str) -> None:
    cells = [header] if field == "email" else ["email", header]
    assert map_header(cells, Path("x.csv"))[-1].field == field


def test_map_header_requires_an_email_column_and_lists_what_it_found() -> None:
    with pytest.raises(ImportFileError, match=r"no email column.*'Name'.*'Phone'"):
        map_header(["Name", "Phone"], Path("x.csv"))


@pytest.mark.parametrize(
    "cells",
    [["Email", "E-mail"], ["email", "Name", "Full Name"], ["email", "Job Title", "job_title"]],
)
def test_map_header_refuses_two_columns_with_one_meaning(cells: list[str]) -> None:
    with pytest.raises(ImportFileError, match="both mean"):
        map_header(cells, Path("x.csv"))


# --- spreadsheet_safe ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ['=HYPERLINK("http://x","y")', "+1 555", "-2+3", "@SUM(A1:A2)", "\t=1", "\r=1", "=", "@", "'=already"]
)  # a value already quoted gets one more quote: the import takes exactly one away
def test_spreadsheet_safe_neutralises_formula_triggers(value: str) -> None:
    assert spreadsheet_safe(value) == "'" + value


@pytest.mark.parametrize("value", ["", "Maria Santos", "1-2", "a=b", "'quoted", "O'Brien", "José", " =1"])
def test_spreadsheet_safe_leaves_other_values_alone(value: str) -> None:
    assert spreadsheet_safe(value) == value


# --- ContactCsv ----------------------------------------------------------------------------------------------


def test_attributes_lose_bidi_overrides_but_keep_line_breaks_and_joiners(write_csv: WriteCsv) -> None:
    """A custom attribute reaches templates as a name does: "file\u202egnp.exe" would read "fileexe.png"."""
    path = write_csv(
        'email,Attachment,Address,Emoji\na@example.org,file\u202egnp.exe,"1 Rue X\nGeneva",\U0001f469\u200d\U0001f4bb\n'
    )
    (row,) = _rows(path)
    assert isinstance(row, CsvRecord)
    assert row.attributes == {
        "attachment": "filegnp.exe",
        "address": "1 Rue X\nGeneva",
        "emoji": "\U0001f469\u200d\U0001f4bb",
    }


def test_rows_carry_line_numbers_fields_attributes_and_raw_cells(write_csv: WriteCsv) -> None:
    path = write_csv(
        "\n"  # blank lines before the header are skipped
        "email,name,Job Title\n"
        "a@example.org,  Ann  ,  Boss  \n"
        "\n"
        ",,\n"  # a row of empty cells is blank too
        "b@example.org,,\n"
        'c@example.org,"Multi\nLine",x\n'
        "d@example.org,Dee,y\n"
    )
    rows = _rows(path)
    assert all(isinstance(row, CsvRecord) for row in rows)
    assert [row.line for row in rows] == [3, 6, 7, 9]
    first = rows[0]
    assert isinstance(first, CsvRecord)
    # Field cells are passed on as written (the rules trim them); attributes are trimmed here.
    assert first.fields == {"email": "a@example.org", "name": "  Ann  "}
    assert first.attributes == {"job_title": "Boss"}
    assert first.cells == ["a@example.org", "  Ann  ", "  Boss  "]
    second = rows[1]
    assert isinstance(second, CsvRecord)
    assert second.fields == {"email": "b@example.org"}  # empty cells are absent, not empty strings
    assert second.attributes == {}


def test_source_reports_header_delimiter_and_encoding(write_csv: WriteCsv) -> None:
    path = write_csv("\ufeffE-mail;Name;Job Title\r\na@example.org;Ann;Boss\r\n")
    with ContactCsv(path) as source:
        assert source.encoding == "utf-8-sig"
        assert source.delimiter == ";"
        assert source.header_names == ["E-mail", "Name", "Job Title"]
        rows = list(source.rows())
        assert source.bytes_read == source.size == path.stat().st_size
    assert len(rows) == 1
    assert isinstance(rows[0], CsvRecord)
    assert rows[0].fields == {"email": "a@example.org", "name": "Ann"}
    assert rows[0].attributes == {"job_title": "Boss"}


def test_explicit_delimiter_wins_over_sniffing(write_csv: WriteCsv) -> None:
    path = write_csv("email;name,x\na@example.org;Ann,Smith\n")
    assert sniff_delimiter("email;name,x") == ","
    with ContactCsv(path, delimiter=";") as source:
        assert source.header_names == ["email", "name,x"]
        (record,) = source.rows()
    assert isinstance(record, CsvRecord)
    assert record.fields == {"email": "a@example.org"}
    assert record.attributes == {"name_x": "Ann,Smith"}


def test_rows_with_too_many_fields_are_problems_but_trailing_empty_cells_are_not(write_csv: WriteCsv) -> None:
    path = write_csv("email,name\na@example.org,Ann,extra\nb@example.org,Bob,,  \n")
    problem, record = _rows(path)
    assert isinstance(problem, CsvProblem)
    assert (problem.line, problem.reason) == (2, "3 fields but the header has 2")
    assert problem.cells == ["a@example.org", "Ann", "extra"]
    assert isinstance(record, CsvRecord)
    assert (record.line, record.fields["name"]) == (3, "Bob")


def test_rows_with_too_few_fields_are_fine(write_csv: WriteCsv) -> None:
    (record,) = _rows(write_csv("email,name,country\na@example.org\n"))
    assert isinstance(record, CsvRecord)
    assert record.fields == {"email": "a@example.org"}


def test_crlf_and_quoted_newlines_keep_line_numbers(write_csv: WriteCsv) -> None:
    path = write_csv('email,name\r\na@example.org,"A\r\nB\r\nC"\r\nb@example.org,Bee\r\n')
    first, second = _rows(path)
    assert isinstance(first, CsvRecord)
    assert isinstance(second, CsvRecord)
    assert (first.line, first.fields["name"]) == (2, "A\r\nB\r\nC")
    assert (second.line, second.fields["name"]) == (5, "Bee")


def test_latin1_file_is_read_with_the_encoding_given(write_csv: WriteCsv) -> None:
    path = write_csv("email,name\nl@example.org,Lukas Müller\n", encoding="cp1252")
    (record,) = _rows(path, encoding="cp1252")
    assert isinstance(record, CsvRecord)
    assert record.fields["name"] == "Lukas Müller"


def test_invalid_utf8_is_refused_naming_the_line(write_csv: WriteCsv) -> None:
    path = write_csv("email,name\na@example.org,Ann\nb@example.org,Bj\xf6rn\n", encoding="latin-1")
    with pytest.raises(ImportFileError, match=r"line 3 is not valid UTF-8.*--encoding cp1252"):
        ContactCsv(path)


def test_utf8_cut_in_the_middle_of_a_character_is_refused(write_csv: WriteCsv) -> None:
    path = write_csv(b"email,name\na@example.org,Jos" + "é".encode()[:1])
    with pytest.raises(ImportFileError, match="line 2 ends in the middle of a UTF-8 character"):
        ContactCsv(path)


@pytest.mark.parametrize("carried", [1, 2, 3])
def test_invalid_utf8_just_after_a_scan_chunk_boundary_names_the_right_line(write_csv: WriteCsv, carried: int) -> None:
    """The scan reads 1 MiB at a time; a character split across two chunks must not shift the line reported.

    Line 2 ends the first chunk with the first bytes of a 4-byte character, the second chunk starts with its
    remaining bytes, then an invalid byte, then the end of line 2.
    """
    char = "😀".encode()
    chunk = 1 << 20
    header = b"email,name\n"
    start = b"a@example.org,"
    line2 = start + b"x" * (chunk - len(header) - len(start) - carried) + char
    content = header + line2 + b"\xff\nb@example.org,Bee\n"
    assert len(header + line2) - len(char) + carried == chunk
    path = write_csv(content)
    with pytest.raises(ImportFileError, match=r"line 2 is not valid UTF-8"):
        ContactCsv(path)


@pytest.mark.parametrize("bom", [b"\xff\xfe", b"\xfe\xff"])
def test_utf16_is_refused(write_csv: WriteCsv, bom: bytes) -> None:
    codec = "utf-16-le" if bom == b"\xff\xfe" else "utf-16-be"
    path = write_csv(bom + "email,name\na@example.org,Ann\n".encode(codec))
    with pytest.raises(ImportFileError, match="UTF-16"):
        ContactCsv(path)


@pytest.mark.parametrize("content", [b"", b"\n\n  \n", b"\xef\xbb\xbf", b"\xef\xbb\xbf\r\n"])
def test_empty_files_are_refused(write_csv: WriteCsv, content: bytes) -> None:
    with pytest.raises(ImportFileError, match="the file is empty"):
        ContactCsv(write_csv(content))


def test_header_only_yields_no_rows(write_csv: WriteCsv) -> None:
    assert _rows(write_csv("email,name\n")) == []
    assert _rows(write_csv("email,name")) == []


def test_missing_file_and_unknown_encoding_are_import_errors(tmp_path: Path, write_csv: WriteCsv) -> None:
    with pytest.raises(ImportFileError, match="cannot open"):
        ContactCsv(tmp_path / "missing.csv")
    with pytest.raises(ImportFileError, match="unknown encoding 'klingon'"):
        ContactCsv(write_csv("email\n"), encoding="klingon")


def test_source_closes_its_file(write_csv: WriteCsv) -> None:
    source = ContactCsv(write_csv("email\na@example.org\n"))
    with source:
        pass
    with pytest.raises(ValueError, match="closed file"):
        next(source.rows())
