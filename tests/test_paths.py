"""Names that become paths: one safe, readable component, and previews that stay in their directory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from campaign.config import Settings, load_settings
from campaign.exceptions import OutputFileError
from campaign.rules.paths import MAX_COMPONENT_BYTES, file_name, numbered_slug, slug
from campaign.services.campaigns import create_campaign
from campaign.services.contact_import import import_contacts
from campaign.services.events import add_event, read_event_file
from campaign.services.rendering import preview_contact
from campaign.store.engine import Database
from tests.conftest import DATA

KEY = b"k" * 32
HOSTILE = [
    "..",
    ".",
    "../../../../tmp/x",
    "/etc/passwd",
    "a/../../b",
    "x\0y",
    "\0",
    "-",
    "C:\\Windows\\system32",
    "~/x",
    " ",
    "",
    ".hidden",
    "a" * 300,
    "é" * 300,
    "日本語の会議" * 60,
    "Bob\u202egnp.exe",
    "tab\there\nnewline",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_slug_is_one_safe_component(name: str) -> None:
    made = slug(name)
    assert not {"/", "\\", "\0"} & set(made)
    assert made not in (".", "..")
    assert not made.startswith((".", "-", "~"))
    assert len(made.encode()) <= MAX_COMPONENT_BYTES
    assert made.isprintable()  # no controls, no bidi overrides


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("demo-invitation", "demo-invitation"),
        ("Webinar: June 2020 (EN)", "Webinar-June-2020-EN"),
        ("Réunion d'été 2020", "Réunion-d-été-2020"),
        ("Re\u0301union", "Réunion"),  # decomposed accents are composed, not dropped
        ("会议 2020", "会议-2020"),
        ("हिन्दी वेबिनार", "हिन्दी-वेबिनार"),  # combining vowel signs stay
        ("../../../../tmp/x", "tmp-x"),
        ("/etc/passwd", "etc-passwd"),
        ("maria.santos@dole.example.org", "maria.santos@dole.example.org"),
    ],
)
def test_a_slug_stays_readable(name: str, expected: str) -> None:
    assert slug(name) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Webinar: June 2020 (EN)", "webinar-june-2020-en"),
        ("Réunion d'été 2020", "reunion-d-ete-2020"),
        ("maria.santos+x@dole.example.org", "maria-santos-x-dole-example-org"),
        ("会议 2020", "2020"),
        ("../../../../tmp/x", "tmp-x"),
        ("--", ""),
    ],
)
def test_a_url_safe_slug_is_ascii_lower_case_letters_digits_and_single_hyphens(name: str, expected: str) -> None:
    # The form event slugs take, for URLs like /events/<slug>.ics: the same function, one parameter apart.
    assert slug(name, url_safe=True) == expected


@pytest.mark.parametrize("name", HOSTILE)
def test_a_url_safe_slug_is_its_own_slug_and_fits(name: str) -> None:
    made = slug(name, max_bytes=100, url_safe=True)
    assert slug(made, max_bytes=100, url_safe=True) == made
    assert set(made) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
    assert not made.startswith("-")
    assert not made.endswith("-")
    assert "--" not in made
    assert len(made) <= 100


def test_a_long_name_is_cut_on_a_character_boundary() -> None:
    assert slug("é" * 300) == "é" * (MAX_COMPONENT_BYTES // 2)
    assert slug("日" * 300, max_bytes=10) == "日" * 3


@pytest.mark.parametrize(
    ("name", "expected"),
    [("demo-invitation", "7-demo-invitation"), ("../..", "7"), ("", "7"), ("a" * 300, "7-" + "a" * 253)],
)
def test_a_numbered_slug_is_unique_by_its_number_and_fits(name: str, expected: str) -> None:
    assert numbered_slug(7, name) == expected
    assert len(numbered_slug(123456, name).encode()) <= MAX_COMPONENT_BYTES


def test_a_file_name_keeps_its_suffix_within_the_limit() -> None:
    assert file_name("people", ".rejects.csv") == "people.rejects.csv"
    long = file_name("x" * 300, ".rejects.csv")
    assert long.endswith(".rejects.csv")
    assert len(long.encode()) == MAX_COMPONENT_BYTES
    assert file_name("ü" * 200, ".html").encode().decode() == "ü" * 125 + ".html"


# --- previews ------------------------------------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    config = tmp_path / "config.toml"
    config.write_text(f'[paths]\ntemplates = "{DATA.parent / "templates" / "email"}"\n')
    return load_settings(config, environ={})


@pytest.fixture
def ready(db: Database, tmp_path: Path) -> Database:
    shutil.copy(DATA / "contacts.csv", tmp_path / "contacts.csv")
    import_contacts(db, tmp_path / "contacts.csv", "webinar")
    add_event(db, read_event_file(DATA / "events" / "ilo-migrant-workers-2020.toml"))
    return db


def _everything_under(directory: Path) -> set[Path]:
    return set(directory.rglob("*"))


@pytest.mark.parametrize(
    "name",
    ["../../../../tmp/x", "../../escaped", "/tmp/absolute-preview", "é" * 200, "Réunion d'été 会议", "..", "x\0y"],
)
def test_a_preview_stays_inside_the_preview_directory(
    ready: Database, settings: Settings, tmp_path: Path, name: str
) -> None:
    details = create_campaign(ready, event_ref="ilo-migrant-workers-2020", list_name="webinar", name=name)
    before = _everything_under(tmp_path)
    # By the name as stored (creating may clean it: a NUL does not survive).
    preview = preview_contact(ready, settings, KEY, details.campaign.name, "maria.santos@dole.example.org")
    preview_dir = settings.resolve(settings.render.preview_dir).resolve()
    for written in (preview.html_path, preview.eml_path):
        assert written.resolve().parent.parent == preview_dir
        assert written.exists()
        assert len(written.parent.name.encode()) <= MAX_COMPONENT_BYTES
    # The campaign id keeps two names that slug alike apart.
    assert preview.html_path.parent.name == numbered_slug(details.campaign.id, details.campaign.name)
    assert preview.html_path.parent.name.startswith(f"{details.campaign.id}")
    assert preview.html_path.name == "maria.santos@dole.example.org.html"
    # Nothing was written anywhere else (but the directories leading to the preview directory).
    new = _everything_under(tmp_path) - before
    assert {p for p in new if preview_dir not in (p, *p.parents) and p not in preview_dir.parents} == set()
    assert not Path("/tmp/absolute-preview").exists()


def test_two_names_with_the_same_slug_get_their_own_directories(ready: Database, settings: Settings) -> None:
    for name in ("June webinar", "June/webinar"):
        create_campaign(ready, event_ref="ilo-migrant-workers-2020", list_name="webinar", name=name)
    first = preview_contact(ready, settings, KEY, "June webinar", "maria.santos@dole.example.org")
    second = preview_contact(ready, settings, KEY, "June/webinar", "maria.santos@dole.example.org")
    assert first.html_path.parent != second.html_path.parent


def test_a_preview_that_would_land_outside_its_directory_is_refused(
    ready: Database, settings: Settings, tmp_path: Path
) -> None:
    """Defence in depth: a symbolic link planted where the campaign's directory goes is not followed out."""
    details = create_campaign(ready, event_ref="ilo-migrant-workers-2020", list_name="webinar", name="linked")
    preview_dir = settings.resolve(settings.render.preview_dir)
    preview_dir.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (preview_dir / f"{details.campaign.id}-linked").symlink_to(elsewhere)
    with pytest.raises(OutputFileError, match=r"outside render\.preview_dir"):
        preview_contact(ready, settings, KEY, "linked", "maria.santos@dole.example.org")
    assert list(elsewhere.iterdir()) == []


def test_addresses_that_slug_alike_get_their_own_preview_files(
    ready: Database, settings: Settings, tmp_path: Path
) -> None:
    people = tmp_path / "odd.csv"
    people.write_text("email,name\na!b@example.org,Bang\na#b@example.org,Hash\na-b@example.org,Dash\n")
    import_contacts(ready, people, "webinar")
    create_campaign(ready, event_ref="ilo-migrant-workers-2020", list_name="webinar", name="ilo")
    previews = [preview_contact(ready, settings, KEY, "ilo", e) for e in ("a!b@example.org", "a#b@example.org")]
    plain = preview_contact(ready, settings, KEY, "ilo", "a-b@example.org")
    names = {p.html_path.name for p in (*previews, plain)}
    assert len(names) == 3
    assert plain.html_path.name == "a-b@example.org.html"  # a safe address is its own file name
    assert all("~" in p.html_path.name for p in previews)
