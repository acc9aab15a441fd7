"""Campaigns: creation, per-contact and per-zone previews, and the pre-launch check."""

from __future__ import annotations

import email
import email.policy
import re
import shutil
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from campaign.cli import cli
from campaign.config import Settings, load_settings
from campaign.exceptions import AlreadyExistsError, NotFoundError, ValidationError
from campaign.models import CampaignStatus, WaveKind
from campaign.services.campaigns import create_campaign, get_campaign, list_campaigns
from campaign.services.contact_import import import_contacts
from campaign.services.contacts import find_contacts
from campaign.services.events import add_event, read_event_file
from campaign.services.rendering import check_campaign, preview_contact, preview_zones, wave_renderer
from campaign.store import lists as list_store
from campaign.store.engine import Database
from campaign.store.tables import campaigns, contacts
from tests.conftest import DATA, cli_ok

ROOT = DATA.parent
KEY = b"k" * 32
EVENT = DATA / "events" / "ilo-migrant-workers-2020.toml"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    config = tmp_path / "config.toml"
    config.write_text(f'[paths]\ntemplates = "{ROOT / "templates" / "email"}"\n')
    return load_settings(config, environ={})


# The sample webinar on the last Friday of June next year, 13:30 Geneva time (the check refuses past events).
YEAR = datetime.now(UTC).year + 1
FRIDAY = next(date(YEAR, 6, d) for d in range(23, 30) if date(YEAR, 6, d).weekday() == 4)
SATURDAY = FRIDAY + timedelta(days=1)


def future_event(tmp_path: Path) -> Path:
    path = tmp_path / "event.toml"
    path.write_text(EVENT.read_text().replace("2020-06-26", FRIDAY.isoformat()))
    return path


@pytest.fixture
def ready(db: Database, tmp_path: Path) -> Database:
    shutil.copy(DATA / "contacts.csv", tmp_path / "contacts.csv")
    import_contacts(db, tmp_path / "contacts.csv", "webinar")
    add_event(db, read_event_file(future_event(tmp_path)))
    create_campaign(db, event_ref="ilo-migrant-workers-2020", list_name="webinar", name="ilo")
    return db


def test_create_makes_a_draft_with_an_invitation_wave(ready: Database) -> None:
    details = get_campaign(ready, "ilo")
    assert details.campaign.status is CampaignStatus.DRAFT
    assert details.campaign.list_name == "webinar"
    assert [(w.name, w.kind, w.template) for w in details.waves] == [("invitation", WaveKind.INVITATION, "invitation")]
    assert [c.name for c in list_campaigns(ready)] == ["ilo"]
    assert get_campaign(ready, str(details.campaign.id)).campaign == details.campaign


def test_create_refuses_unknown_event_list_and_taken_name(ready: Database) -> None:
    with pytest.raises(NotFoundError, match="no event"):
        create_campaign(ready, event_ref="nope", list_name="webinar")
    with pytest.raises(NotFoundError, match="no list"):
        create_campaign(ready, event_ref="ilo-migrant-workers-2020", list_name="nope")
    with pytest.raises(AlreadyExistsError):
        create_campaign(ready, event_ref="ilo-migrant-workers-2020", list_name="webinar", name="ilo")


def test_preview_writes_html_and_a_parseable_eml(ready: Database, settings: Settings) -> None:
    preview = preview_contact(ready, settings, KEY, "ilo", "maria.santos@dole.example.org")
    html = preview.html_path.read_text()
    assert "Philippine Standard Time" in html
    assert preview.html_path.parent == settings.data_dir / "previews" / "1-ilo"  # the campaign's id and name
    message = email.message_from_bytes(preview.eml_path.read_bytes(), policy=email.policy.default)
    assert message["To"].addresses[0].addr_spec == "maria.santos@dole.example.org"
    assert message["Message-ID"].endswith("@example.org>")
    body = message.get_body(("plain",))
    assert body is not None
    assert "Philippine Standard Time:" in body.get_content()


def test_preview_zones_shows_every_zone_west_to_east(ready: Database, settings: Settings) -> None:
    lines = preview_zones(ready, settings, "ilo")
    zones = [z.zone for z in lines]
    assert zones[0] == "Pacific/Honolulu"
    assert zones[-1] is None  # the contact without a zone comes last
    kiritimati = next(z for z in lines if z.zone == "Pacific/Kiritimati")
    assert kiritimati.line.startswith(f"Line Islands Time: Saturday, June {SATURDAY.day}, {YEAR}, 1:30")
    kolkata = next(z for z in lines if z.zone == "Asia/Kolkata")
    assert kolkata.line.startswith("India Standard Time:")
    assert sum(z.contacts for z in lines) == 41
    assert "Coordinated Universal Time" in lines[-1].line


def test_check_passes_on_the_sample_campaign(ready: Database, settings: Settings) -> None:
    report = check_campaign(ready, settings, KEY, "ilo")
    assert report.errors == []
    assert report.contacts == 41
    assert 10_000 < report.largest_message < 100 * 1024


def cli_project(tmp_path: Path) -> tuple[Path, Callable[..., str]]:
    """A configuration with the shipped templates, initialised, with the sample contacts (list ``webinar``) and
    the sample webinar moved into next June; returns it and a runner of commands that must succeed."""
    config = tmp_path / "config.toml"
    config.write_text(f'[paths]\ntemplates = "{ROOT / "templates" / "email"}"\n')
    run = cli_ok(config)
    run("init")
    run("contacts", "import", str(DATA / "contacts.csv"), "--list", "webinar")
    run("events", "add", str(future_event(tmp_path)))
    return config, run


def own_templates(tmp_path: Path, **files: str) -> Path:
    directory = tmp_path / "own"
    directory.mkdir()
    for name, text in files.items():
        (directory / name.replace("_", ".")).write_text(text)
    return directory


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ('{% extends "base.html" %}{% block content %}\n\n{{ contact.job_title }}{% endblock %}',
         "invitation.html, line 3: undefined variable contact.job_title — 1 contact: michael.obrien"),
        ('{% extends "base.html" %}{% block content %}\n{% if %}{% endblock %}', "invitation.html, line 2"),
        ('{% extends "base.html" %}{% block content %}<a href="http://x.example.org">x</a>{% endblock %}',
         "link 'http://x.example.org' is not https"),
        ('{% extends "base.html" %}{% block content %}<img src="https://x.example.org/a.png">{% endblock %}',
         "image without alt text"),
        # 120,000 characters in pieces: the sandbox refuses a repetition of more than 100,000 at once.
        (
            '{% extends "base.html" %}{% block content %}{% for _ in range(1200) %}{{ "x" * 100 }}{% endfor %}'
            "{% endblock %}",
            "Gmail clips over 102 KB",
        ),
        ('{% extends "base.html" %}{% block content %}{{ link("javascript:alert(1)", "x") }}{% endblock %}',
         "is not an http(s) URL"),
    ],
)  # fmt: skip
def test_check_finds_template_problems(
    ready: Database, settings: Settings, tmp_path: Path, html: str, expected: str
) -> None:
    # michael.obrien has no job_title; every other sample contact has one.
    with ready.write() as conn:
        conn.execute(update(contacts).where(contacts.c.email_key == "michael.obrien@example.com").values(attributes={}))
    directory = own_templates(tmp_path, invitation_html=html)
    create_campaign(
        ready, event_ref="ilo-migrant-workers-2020", list_name="webinar", name="own", template_dir=directory
    )
    report = check_campaign(ready, settings, KEY, "own")
    assert not report.ok
    assert any(expected in error for error in report.errors), report.errors


def test_cli_preview_and_check(tmp_path: Path) -> None:
    config, run = cli_project(tmp_path)
    assert run("list") == "No campaigns yet: create one with `campaign create --event EVENT --list LIST`\n"
    assert "Created campaign ilo-migrant-workers-2020-webinar" in run(
        "create", "--event", "ilo-migrant-workers-2020", "--list", "webinar"
    )
    listed = run("list")
    assert "ilo-migrant-workers-2020-webinar" in listed
    # Not a raw timestamp: this machine's time, and UTC beside it unless that is this machine's zone.
    assert re.search(r"draft .* \d{4}-\d\d-\d\d \d\d:\d\d:\d\d (UTC|\S+ \(.*UTC\))\n", listed), listed
    assert "invitation" in run("show", "ilo-migrant-workers-2020-webinar")
    zones = run("preview", "ilo-migrant-workers-2020-webinar", "--zones")
    assert f"Nepal Time: Friday, June {FRIDAY.day}, {YEAR}, 5:15 – 6:45 PM" in zones
    written = run("preview", "ilo-migrant-workers-2020-webinar", "--contact", "sita.gurung@welfarefund.example.org")
    assert ".eml" in written
    assert "no errors" in run("check", "ilo-migrant-workers-2020-webinar")
    missing = CliRunner().invoke(cli, ["--config", str(config), "preview", "ilo-migrant-workers-2020-webinar"])
    assert missing.exit_code == 2
    assert "--contact EMAIL or --zones" in missing.output


def test_check_refuses_an_empty_audience(ready: Database, settings: Settings, tmp_path: Path) -> None:
    # An import makes a list with its first contact; an empty list is one whose members have all gone.
    with ready.write() as conn:
        list_store.get_or_create(conn, "nobody", datetime.now(UTC))
    create_campaign(ready, event_ref="ilo-migrant-workers-2020", list_name="nobody", name="empty")
    report = check_campaign(ready, settings, KEY, "empty")
    assert report.errors == ["list 'nobody' has no contacts"]
    assert report.contacts == 0


# --- template errors, subjects and references (issue 14) ------------------------------------------------------


def test_a_syntax_error_is_one_error_not_one_per_contact(ready: Database, settings: Settings, tmp_path: Path) -> None:
    html = '{% extends "base.html" %}{% block content %}\n{% if %}{% endblock %}'
    create_campaign(
        ready,
        event_ref="ilo-migrant-workers-2020",
        list_name="webinar",
        name="broken",
        template_dir=own_templates(tmp_path, invitation_html=html),
    )
    report = check_campaign(ready, settings, KEY, "broken")
    assert report.errors == [
        "wave invitation: invitation.html, line 2: Expected an expression, got 'end of statement block'"
    ]
    assert report.largest_message == 0


def test_cli_check_says_no_message_size_when_nothing_rendered(tmp_path: Path) -> None:
    config, run = cli_project(tmp_path)
    own = own_templates(tmp_path, invitation_html="<p>{{ contact.favourite_colour }}</p>")
    # The invitation only: the default waves' templates would render, and give a size.
    run("create", "--event", "ilo-migrant-workers-2020", "--list", "webinar", "--name", "own", "--template", str(own),
        "--waves", "none")  # fmt: skip
    result = CliRunner().invoke(cli, ["--config", str(config), "check", "own"])
    assert result.exit_code == 1
    assert "invitation.html, line 1: undefined variable contact.favourite_colour — 41 contacts" in result.output
    assert "largest message" not in result.output
    assert "own: 41 contacts checked; 1 error" in result.output


def test_the_shipped_subjects_are_short_with_the_title_first(ready: Database, settings: Settings) -> None:
    report = check_campaign(ready, settings, KEY, "ilo")
    assert [w for w in report.warnings if "subject" in w] == []
    details = get_campaign(ready, "ilo")
    # The title's first words, whole, then the day in the contact's zone and the message's language.
    for email_address, expected in [
        ("maria.santos@dole.example.org",
         f"Invitation: The many faces of women and men migrant workers… — Jun {FRIDAY.day}"),
        ("carolina.gomez@fedempleadores.example.com",
         f"Invitación: The many faces of women and men migrant workers… — {FRIDAY.day} de jun"),
        ("sita.gurung@welfarefund.example.org",
         f"Invitation: The many faces of women and men migrant workers… — Jun {FRIDAY.day}"),
        ("rotia.teburea@lineislands.example.org",
         f"Invitation: The many faces of women and men migrant workers… — {SATURDAY.day} Jun"),
    ]:  # fmt: skip
        subject = preview_contact(ready, settings, KEY, "ilo", email_address).subject
        assert subject == expected
        assert len(subject) <= 72
    assert details.event.title.startswith("The many faces")


def test_check_warns_about_a_long_subject_without_blocking(ready: Database, settings: Settings, tmp_path: Path) -> None:
    create_campaign(
        ready,
        event_ref="ilo-migrant-workers-2020",
        list_name="webinar",
        name="long",
        template_dir=own_templates(tmp_path, invitation_subject="{{ event.title }} ({{ when.when }})"),
    )
    report = check_campaign(ready, settings, KEY, "long")
    assert report.ok, report.errors
    [warning] = [w for w in report.warnings if "subject" in w]
    assert warning.startswith("wave invitation: subject of ")
    assert "characters, above the 78 that inboxes show" in warning
    assert "41 contacts" in warning


def test_check_says_who_gets_the_message_in_another_language_than_theirs(ready: Database, settings: Settings) -> None:
    # A recipient-side review: 7 of 12 languages got English throughout, and nothing told staff so.
    report = check_campaign(ready, settings, KEY, "ilo")
    assert report.ok, report.errors
    [warning] = [w for w in report.warnings if "their language" in w]
    # The sample list: 41 contacts, of whom English and Spanish speakers have templates; the others get English.
    assert warning.startswith("18 contacts get invitation in en, their language having no template of its own: ")
    assert "pt-PT 3, " in warning
    assert "ja-JP 2" in warning
    assert "es-CO" not in warning  # Spanish has its templates
    assert "en-GB" not in warning
    assert warning.endswith("(a variant such as invitation.pt.html writes to them in theirs)")


def test_cli_check_prints_a_long_subject_as_a_warning_and_passes(tmp_path: Path) -> None:
    _config, run = cli_project(tmp_path)
    own = own_templates(tmp_path, invitation_subject="{{ event.title }}")
    run("create", "--event", "ilo-migrant-workers-2020", "--list", "webinar", "--name", "own", "--template", str(own))
    output = run("check", "own")
    assert "warning: wave invitation: subject of 162 characters, above the 78 that inboxes show" in output
    assert "no errors, 2 warnings" in output  # and the languages without a template (the sample list's)
    launched = run("launch", "own")  # a warning does not stop a launch, and launch says it too
    assert "warning: wave invitation: subject of 162 characters" in launched
    assert "Launched own" in launched


@pytest.mark.parametrize("name", ["1", "12345", "007"])
def test_an_all_digit_name_is_refused(ready: Database, name: str) -> None:
    with pytest.raises(ValidationError, match=f"campaign name '{name}' is all digits"):
        create_campaign(ready, event_ref="ilo-migrant-workers-2020", list_name="webinar", name=name)


def test_an_all_digit_name_from_before_the_rule_is_found_when_no_id_matches(ready: Database) -> None:
    """A database upgraded from before all-digit names were refused may hold a campaign named "12345"."""
    made = create_campaign(ready, event_ref="ilo-migrant-workers-2020", list_name="webinar", name="legacy")
    with ready.write() as conn:
        conn.execute(update(campaigns).where(campaigns.c.id == made.campaign.id).values(name="12345"))
    assert get_campaign(ready, "12345").campaign.id == made.campaign.id
    assert get_campaign(ready, str(made.campaign.id)).campaign.name == "12345"  # an id still wins


def test_campaign_references_are_ids_when_all_digits_else_names(ready: Database) -> None:
    ilo = get_campaign(ready, "ilo").campaign
    assert get_campaign(ready, str(ilo.id)).campaign == ilo
    assert get_campaign(ready, f" {ilo.id}").campaign == ilo  # as a name is cleaned: spaces around do not count
    create_campaign(ready, event_ref="ilo-migrant-workers-2020", list_name="webinar", name="2020 webinar")
    assert get_campaign(ready, "2020 webinar").campaign.name == "2020 webinar"
    for ref in ("²", "١", "99999"):  # digits that int() refuses or reads; an id that does not exist
        with pytest.raises(NotFoundError, match="no campaign"):
            get_campaign(ready, ref)


def test_cli_create_refuses_an_all_digit_name(tmp_path: Path) -> None:
    config, run = cli_project(tmp_path)
    result = CliRunner().invoke(
        cli,
        ["--config", str(config), "create", "--event", "ilo-migrant-workers-2020", "--list", "webinar", "--name", "1"],
    )
    assert result.exit_code == 1
    assert result.output.count("\n") == 1
    assert "campaign name '1' is all digits" in result.output
    assert "ilo-migrant-workers-2020-webinar" not in run("list")


def test_preview_of_someone_outside_the_list_says_so(ready: Database, settings: Settings, tmp_path: Path) -> None:
    outsider = tmp_path / "outsider.csv"
    outsider.write_text("email,name\nout.sider@example.org,Out Sider\n")
    import_contacts(ready, outsider, "others")
    with pytest.raises(
        NotFoundError, match=re.escape("out.sider@example.org is not on list 'webinar' of campaign 'ilo'")
    ):
        preview_contact(ready, settings, KEY, "ilo", "out.sider@example.org")
    assert not (settings.data_dir / "previews").exists()  # nothing was written


def test_cli_preview_of_someone_outside_the_list(tmp_path: Path) -> None:
    config, run = cli_project(tmp_path)
    outsider = tmp_path / "outsider.csv"
    outsider.write_text("email,name\nout.sider@example.org,Out Sider\n")
    run("contacts", "import", str(outsider), "--list", "others")
    run("create", "--event", "ilo-migrant-workers-2020", "--list", "webinar", "--name", "ilo")
    result = CliRunner().invoke(cli, ["--config", str(config), "preview", "ilo", "--contact", "Out.Sider@example.org"])
    assert result.exit_code == 1
    assert result.output == "Error: Out.Sider@example.org is not on list 'webinar' of campaign 'ilo'\n"


def test_a_follow_up_carries_no_calendar_the_other_kinds_do(ready: Database, settings: Settings) -> None:
    # A recipient-side review: the follow-up, sent after the session, attached a confirmed invite.ics, which a
    # calendar takes as the (past) session to add again.
    details = get_campaign(ready, "ilo")
    contact = next(iter(find_contacts(ready, list_name=details.campaign.list_name, limit=1)))
    invitation = details.waves[0]
    waves = [invitation] + [
        replace(invitation, name=kind.value, kind=kind, template=kind.value)
        for kind in (WaveKind.REMINDER, WaveKind.FOLLOW_UP)
    ]
    parts = {}
    for wave in waves:
        renderer = wave_renderer(settings, KEY, details, wave, "test")
        raw = renderer.build(contact, f"<{wave.name}@example.org>")
        message = email.message_from_bytes(raw, policy=email.policy.default)
        parts[wave.kind] = {part.get_content_type() for part in message.walk()}
    assert WaveKind.FOLLOW_UP in parts
    for kind, types in parts.items():
        carries = {"text/calendar", "application/ics"} <= types
        assert carries is (kind is not WaveKind.FOLLOW_UP), (kind, types)
