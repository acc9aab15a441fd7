"""The shipped templates of every wave kind after the invitation (reminder, last-chance, follow-up, update,
cancellation), rendered by the real :class:`WaveRenderer` for the sample event, in English and Spanish: each one
shows the recipient's local time, the right buttons for its kind, a short subject in the message's language,
passes the checks launch makes, and SpamAssassin finds nothing against it."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from campaign.models import Contact, WaveKind
from campaign.render.calendar import CalendarMethod
from campaign.render.filters import FILTERS
from campaign.render.identifiers import message_id_for
from campaign.render.links import SignedLinkPolicy
from campaign.render.personalise import RenderedMessage, WaveRenderer
from campaign.render.templates import TemplateSet
from campaign.services.rendering import MAX_SUBJECT_CHARS, _html_problems
from tests.test_mime import (
    _SCORE,
    KEY,
    MAILTO,
    REQUIRE_SPAMASSASSIN,
    SENDER,
    SPAMASSASSIN,
    STAMP,
    TEMPLATES,
    by_type,
    parse,
    sample_event,
)

KINDS: list[WaveKind] = [kind for kind in WaveKind if kind is not WaveKind.INVITATION]
EVENT = sample_event()
assert EVENT.join_url is not None
assert EVENT.registration_url is not None
JOIN: str = EVENT.join_url
REGISTER: str = EVENT.registration_url

MANILA = Contact(id=21, email="maria.santos@dole.example.org", name="Maria Santos", timezone="Asia/Manila", locale="en")
BOGOTA = Contact(id=22, email="carolina.gomez@andi.example.com", name="Carolina Gómez", timezone="America/Bogota",
                 locale="es-CO")  # fmt: skip
NO_ZONE = Contact(id=23, email="rosa.crawford@tuc.example.org", name="Rosa Crawford", locale="en")
CONTACTS = {"en Manila": MANILA, "es-CO Bogota": BOGOTA, "no zone": NO_ZONE}

# The session (Geneva, Friday 26 June 2020, 13:30-15:00 CEST) as each of them must read it; written out here
# rather than computed by the code under test.
LOCAL_LINES = {
    "en Manila": "Philippine Standard Time: Friday, June 26, 2020, 7:30 – 9:00 PM",
    "es-CO Bogota": "Hora estándar de Colombia: viernes, 26 de junio de 2020, 6:30 a 8:00 a. m.",
    "no zone": "Central European Summer Time: Friday, June 26, 2020, 1:30 – 3:00 PM (Coordinated Universal Time: "
    "Friday, June 26, 2020, 11:30 AM – 1:00 PM)",
}
SUBJECT_STARTS = {
    ("en", WaveKind.REMINDER): "Reminder: ",
    ("en", WaveKind.LAST_CHANCE): "Last chance to register: ",
    ("en", WaveKind.FOLLOW_UP): "Thank you for your interest: ",
    ("en", WaveKind.UPDATE): "Updated: ",
    ("en", WaveKind.CANCELLATION): "Cancelled: ",
    ("es", WaveKind.REMINDER): "Recordatorio: ",
    ("es", WaveKind.LAST_CHANCE): "Últimos días para inscribirse: ",
    ("es", WaveKind.FOLLOW_UP): "Gracias por su interés: ",
    ("es", WaveKind.UPDATE): "Actualización: ",
    ("es", WaveKind.CANCELLATION): "Cancelación: ",
}
# The shipped subjects are written for the sample event's 164-character title to fit what inboxes show.
SHIPPED_SUBJECT_CHARS = 70


def renderer(kind: WaveKind) -> WaveRenderer:
    """The renderer a wave of ``kind`` gets (a cancellation carries METHOD:CANCEL)."""
    return WaveRenderer(
        templates=TemplateSet([Path(TEMPLATES)], FILTERS),
        template_name=kind.value,
        event=EVENT,
        sender=SENDER,
        links=SignedLinkPolicy("https://campaign.example.org", KEY, track_clicks=False, track_opens=False),
        campaign={"id": 1, "name": "ILO webinar", "list_name": "demo"},
        wave={"name": kind.value, "kind": kind.value},
        calendar_method=CalendarMethod.CANCEL if kind is WaveKind.CANCELLATION else CalendarMethod.PUBLISH,
        unsubscribe_mailto=MAILTO,
        stamp=STAMP,
    )


RENDERERS: dict[WaveKind, WaveRenderer] = {kind: renderer(kind) for kind in KINDS}


def flat(text: str) -> str:
    """Text as a reader sees it: tags gone, entities decoded, every run of spaces (no-break ones too) one space."""
    text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    return " ".join(text.replace("\u00a0", " ").replace("\u202f", " ").replace("\u2009", " ").split())


def without_style(page: str) -> str:
    return re.sub(r"<style>.*?</style>", "", page, flags=re.S)


def rendered(kind: WaveKind, who: str) -> RenderedMessage:
    contact = CONTACTS[who]
    return RENDERERS[kind].render(contact, contact.id)


@pytest.mark.parametrize("who", CONTACTS)
@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_every_kind_shows_the_recipients_local_time(kind: WaveKind, who: str) -> None:
    message = rendered(kind, who)
    assert flat(LOCAL_LINES[who]) in flat(message.html)
    assert flat(LOCAL_LINES[who]) in flat(message.text)


@pytest.mark.parametrize("who", CONTACTS)
@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_subject_is_short_and_in_the_message_language(kind: WaveKind, who: str) -> None:
    message = rendered(kind, who)
    language = "es" if who.startswith("es") else "en"
    assert message.subject.startswith(SUBJECT_STARTS[language, kind])
    assert len(message.subject) <= MAX_SUBJECT_CHARS
    assert len(message.subject) <= SHIPPED_SUBJECT_CHARS, message.subject
    assert "!" not in message.subject
    assert "\n" not in message.subject


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_the_spanish_variant_serves_es_co_and_english_the_rest(kind: WaveKind) -> None:
    spanish = rendered(kind, "es-CO Bogota")
    assert dict(spanish.template_names) == {
        "subject": f"{kind}.es.subject",
        "html": f"{kind}.es.html",
        "text": f"{kind}.es.txt",
    }
    assert '<html lang="es-CO" dir="ltr">' in spanish.html
    assert "Estimado/a Carolina Gómez:" in spanish.text
    assert "Darse de baja: " in spanish.text
    for who in ("en Manila", "no zone"):
        english = rendered(kind, who)
        assert english.template_names["html"] == f"{kind}.html"
        assert "Dear " in english.text
        assert "Unsubscribe: " in english.text


def hrefs(page: str) -> list[str]:
    return [html.unescape(url) for url in re.findall(r"""<a\s[^>]*?href="([^"]*)\"""", page)]


@pytest.mark.parametrize("who", CONTACTS)
@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_each_kind_has_the_buttons_it_needs(kind: WaveKind, who: str) -> None:
    message = rendered(kind, who)
    links = hrefs(message.html)
    calendar = [url for url in links if "calendar.google.com" in url or "outlook.live.com" in url]
    if kind is WaveKind.REMINDER:  # to registered people: the join link, and their calendar
        assert JOIN in links
        assert JOIN in message.text
        assert REGISTER not in links
        assert len(calendar) == 2
    elif kind is WaveKind.LAST_CHANCE:  # to people not registered yet: register
        assert REGISTER in links
        assert REGISTER in message.text
        assert JOIN not in links
        assert JOIN not in message.text
        assert len(calendar) == 2
    elif kind is WaveKind.UPDATE:  # to everyone invited: register, or join for those already registered
        assert REGISTER in links
        assert JOIN in links
        assert len(calendar) == 2
    elif kind is WaveKind.FOLLOW_UP:  # the session is over: the session page, nothing to join or add
        assert REGISTER in links
        assert JOIN not in links
        assert not calendar
    else:  # cancelled: nothing to join, register for or add to a calendar
        assert kind is WaveKind.CANCELLATION
        assert JOIN not in message.html + message.text
        assert REGISTER not in message.html + message.text
        assert not calendar
        assert 'class="button"' not in message.html
    # Every message lets its reader leave the list, in the body as in the header.
    assert any(url.startswith("https://campaign.example.org/u/") for url in links)


@pytest.mark.parametrize("who", CONTACTS)
@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_each_kind_passes_the_launch_checks(kind: WaveKind, who: str) -> None:
    """The rules `campaign check` applies: links are https (or mailto), images have alt text; and the
    templates as written (line numbers for errors) render the same."""
    message = rendered(kind, who)
    assert list(_html_problems(message.html)) == []
    contact = CONTACTS[who]
    source = RENDERERS[kind].render(contact, contact.id, source=True)
    # Inlining moves the CSS into style attributes (and keeps only the @media rules): the words stay the same.
    assert flat(without_style(source.html)) == flat(without_style(message.html))
    assert source.text == message.text


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_the_preheader_stays_hidden_without_low_contrast(kind: WaveKind) -> None:
    """The hidden preheader of base.html (display: none, zero size) is kept; never text in the background's
    colour, which spam filters score."""
    page = rendered(kind, "en Manila").html
    preheader = re.search(r'<div class="preheader"[^>]*style="([^"]*)"[^>]*>(.*?)</div>', page, re.S)
    assert preheader is not None
    assert "display:none" in preheader[1].replace(" ", "")
    assert "#f2f4f7" not in preheader[1].lower()
    assert "#ffffff" not in preheader[1].lower()
    assert preheader[2].strip()


def test_the_reminder_does_not_say_when_it_is_sent() -> None:
    """One reminder template serves the day before and the hour before: it never says which."""
    for who in CONTACTS:
        message = rendered(WaveKind.REMINDER, who)
        for wording in ("tomorrow", "in 1 hour", "in one hour", "mañana", "en una hora", "en 1 hora"):
            assert wording not in message.text.lower()
            assert wording not in message.subject.lower()


def test_the_cancellation_carries_a_calendar_cancellation() -> None:
    message = parse(RENDERERS[WaveKind.CANCELLATION].build(MANILA, "m21@ilo.example.org", MANILA.id))
    calendar = by_type(message, "text/calendar")
    assert calendar.get_param("method") == "CANCEL"
    ics = calendar.get_payload(decode=True)
    assert isinstance(ics, bytes)
    assert b"STATUS:CANCELLED" in ics


@pytest.mark.skipif(
    SPAMASSASSIN is None and not REQUIRE_SPAMASSASSIN,
    reason="spamassassin is not installed (Debian: apt-get install spamassassin)",
)
@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_spamassassin_scores_each_english_kind_at_most_zero(kind: WaveKind, tmp_path: Path) -> None:
    """SpamAssassin's local rules (no network tests) find nothing against any shipped kind."""
    wave = RENDERERS[kind]
    message = wave.build(MANILA, message_id_for(f"c1.w2.m{MANILA.id}", wave.sender), MANILA.id, eight_bit=True)
    prefs = tmp_path / "user_prefs"  # its own preferences file, not one in the home directory
    prefs.write_text("")
    assert SPAMASSASSIN is not None, "CAMPAIGN_TEST_REQUIRE_SPAMASSASSIN=1 but spamassassin is not on PATH"
    result = subprocess.run(
        [SPAMASSASSIN, "-L", "-t", "-p", str(prefs)], input=message, capture_output=True, timeout=300, check=True
    )
    report = result.stdout.decode("utf-8", "replace")
    score = _SCORE.search(report)
    assert score is not None, report[-2000:]
    assert float(score[1]) <= 0, report[report.index("Content analysis details") :]


def test_spanish_says_a_la_una_and_a_las_seis() -> None:
    """Spanish agrees the article with the hour: "a la 1:30 p. m." but "a las 6:30 a. m."."""
    geneva = Contact(id=24, email="andres.munoz@mintrabajo.example.org", name="Andrés Muñoz", locale="es-CO")
    one = RENDERERS[WaveKind.REMINDER].render(geneva, geneva.id)
    six = rendered(WaveKind.REMINDER, "es-CO Bogota")
    assert "a la 1:30 p. m." in flat(one.html)
    assert "a la 1:30 p. m." in flat(one.text)
    assert "a las 6:30 a. m." in flat(six.html)
    assert "a las 6:30 a. m." in flat(six.text)


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_the_organisers_time_is_added_only_where_it_reads_differently(kind: WaveKind) -> None:
    # A recipient's review: Paris, Berlin and Madrid got "(Central European Summer Time: ...)" under the very same
    # line, the session being in Geneva; Manila needs it.
    paris = Contact(id=24, email="anne@example.fr", name="Anne", timezone="Europe/Paris", locale="en")
    for who, added in ((paris, False), (MANILA, True)):
        message = RENDERERS[kind].render(who, who.id)
        assert ("(Central European Summer Time:" in flat(message.text)) is added, who.timezone
        assert ('class="organiser-time"' in message.html) is added, who.timezone


def test_a_message_in_a_language_written_right_to_left_is_laid_out_right_to_left(tmp_path: Path) -> None:
    # A recipient-side review: an Arabic template's message was laid out left to right (no dir).
    directory = tmp_path / "templates"
    shutil.copytree(TEMPLATES, directory)
    for ext in ("html", "txt", "subject"):
        shutil.copy(directory / f"invitation.{ext}", directory / f"invitation.ar.{ext}")
    arabic = replace(MANILA, locale="ar-EG")
    wave = replace(renderer(WaveKind.REMINDER), templates=TemplateSet([directory], FILTERS), template_name="invitation")
    assert '<html lang="ar-EG" dir="rtl">' in wave.render(arabic, arabic.id).html
    assert '<html lang="en" dir="ltr">' in wave.render(MANILA, MANILA.id).html
    # Without an Arabic template, the message is written in English: left to right.
    assert '<html lang="en" dir="ltr">' in rendered(WaveKind.REMINDER, "en Manila").html
