"""Output files appear whole or not at all, never over a file by surprise, never outside their directory."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from campaign.exceptions import OutputFileError
from campaign.services.files import atomic_text_file, inside


def write(target: Path, text: str, *, overwrite: bool = False, then: Exception | None = None) -> None:
    """Write ``text`` to ``target`` through atomic_text_file; raise ``then`` before the block ends, if given."""
    with atomic_text_file(target, overwrite=overwrite) as fh:
        fh.write(text)
        if then is not None:
            raise then


def test_a_file_appears_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    with atomic_text_file(target) as fh:
        fh.write("a,b\r\n")
        assert not target.exists()  # still under its temporary name
    assert target.read_bytes() == b"a,b\r\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_a_failure_midway_leaves_no_file_and_the_old_one_untouched(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("the user's own\n")
    with pytest.raises(RuntimeError):
        write(target, "half", overwrite=True, then=RuntimeError("the database went away"))
    assert target.read_text() == "the user's own\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]
    fresh = tmp_path / "fresh.csv"
    with pytest.raises(RuntimeError):
        write(fresh, "half", then=RuntimeError("boom"))
    assert not fresh.exists()


def test_an_existing_file_is_replaced_only_when_asked(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    with pytest.raises(OutputFileError, match=r"already exists \(use --force to overwrite it\)"):
        write(target, "new\n")
    assert target.read_text() == "old\n"
    write(target, "new\n", overwrite=True)
    assert target.read_text() == "new\n"


def test_a_file_made_by_someone_else_meanwhile_is_not_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"

    def race() -> None:
        with atomic_text_file(target) as fh:
            fh.write("mine\n")
            target.write_text("theirs\n")  # another process, between the first check and the end

    with pytest.raises(OutputFileError, match="already exists"):
        race()
    assert target.read_text() == "theirs\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "out.csv"
    with pytest.raises(OutputFileError, match=f"directory {tmp_path / 'no' / 'such'} does not exist"):
        write(target, "x")
    assert not (tmp_path / "no").exists()


def test_inside_refuses_what_resolves_elsewhere(tmp_path: Path) -> None:
    base = tmp_path / "previews"
    base.mkdir()
    assert inside(base, base / "a" / "b.html", "render.preview_dir") == (base / "a" / "b.html").resolve()
    for escaping in (base / ".." / "x", Path("/etc/passwd"), base / "a" / ".." / ".." / "y"):
        with pytest.raises(OutputFileError, match=r"outside render\.preview_dir"):
            inside(base, escaping, "render.preview_dir")


def test_a_long_unicode_name_that_fits_is_written(tmp_path: Path) -> None:
    """83 CJK characters are 249 bytes: the name fits, and so must the temporary one (cut by bytes)."""
    target = tmp_path / ("名" * 83 + ".csv")
    with atomic_text_file(target) as fh:
        fh.write("email\n")
    assert target.read_text() == "email\n"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_personal_data_is_private_and_a_replaced_file_keeps_its_permissions(tmp_path: Path) -> None:
    new = tmp_path / "new.csv"
    with atomic_text_file(new) as fh:
        fh.write("a\n")
    assert stat.S_IMODE(new.stat().st_mode) == 0o600
    shared = tmp_path / "shared.csv"
    shared.write_text("old\n")
    shared.chmod(0o640)
    with atomic_text_file(shared, overwrite=True) as fh:
        fh.write("b\n")
    assert shared.read_text() == "b\n"
    assert stat.S_IMODE(shared.stat().st_mode) == 0o640
