"""Stencils: a template rendered once per shape and filled per recipient must give exactly the normal render."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from jinja2 import FileSystemLoader

from campaign.models import Contact
from campaign.render.filters import FILTERS
from campaign.render.mime import encode_body
from campaign.render.stencil import StencilledTemplate, _marker, _Stencil, personal_references
from campaign.render.templates import TemplateSet, _environment
from tests.test_templates import DEFAULT_TEMPLATES, wave_renderer, write

ZONES = ["Asia/Manila", "America/St_Johns", "Pacific/Kiritimati", "Europe/Lisbon", None]
DATE = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
LOCALES = ["en", "es", "es-CO", "pt-PT", "fr-CH", "ar-EG", None]
HOSTILE = st.one_of(
    st.none(),
    st.just(""),
    st.sampled_from(['<b>Bold</b> & "Co"', "O'Brien", "{{ contact.email }}", "\ue0000\ue001", "Zoë 王 ☃"]),
    st.text(min_size=1, max_size=30),
)


def _contact(n: int, name: str | None, first: str | None, zone: str | None, locale: str | None) -> Contact:
    return Contact(
        id=n, email=f"p{n}@example.org", name=name, first_name=first, last_name=None, timezone=zone, locale=locale
    )


@settings(max_examples=150, deadline=None)
@given(
    people=st.lists(
        st.tuples(HOSTILE, HOSTILE, st.sampled_from(ZONES), st.sampled_from(LOCALES)), min_size=1, max_size=12
    )
)
def test_the_default_templates_render_the_same_through_stencils(people: list[tuple[str, str, str, str]]) -> None:
    renderer = wave_renderer([DEFAULT_TEMPLATES])
    for n, (name, first, zone, locale) in enumerate(people):
        contact = _contact(n, name, first, zone, locale)
        templates = renderer.templates_for(locale or "en")
        assert templates.stencilled_html.stencilled
        assert templates.stencilled_text.stencilled
        rendered = renderer.render(contact, n)
        ctx = renderer.context(contact, renderer.links.for_message(n))
        assert rendered.html == templates.html.render(ctx)
        assert rendered.text == templates.text.render(ctx)
    # Shared shapes were filled from a stencil, not rendered again: some recipients shared one.
    shapes = renderer.templates_for("en").stencilled_html._stencils
    assert len(shapes) <= len(people)


@settings(max_examples=300, deadline=None)
@example(chunks=["a\r", "\nb"], values=[""], eight_bit=True)  # a CR and a LF on both sides of an empty slot
@given(
    chunks=st.lists(
        st.text(st.sampled_from("ab é王\n\r<&"), max_size=12) | st.sampled_from(["x" * 990, "é" * 500]),
        min_size=1,
        max_size=6,
    ),
    values=st.lists(st.text(st.sampled_from("xyz ü\n\r"), max_size=8) | st.just("y" * 600), max_size=5),
    eight_bit=st.booleans(),
)
def test_a_stencil_filled_in_wire_form_encodes_as_its_text_does(
    chunks: list[str], values: list[str], eight_bit: bool
) -> None:
    """Whatever the chunks and values (line ends of every kind, long lines, UTF-8), the wire form made from
    chunks encoded once is what encoding the filled-in text would give, transfer encoding included (or there is
    none, and the text is encoded)."""
    slots = len(chunks) - 1
    texts = (values + ["v"] * slots)[: max(slots, 1)]
    stencil = _Stencil.cut("".join(chunk + (_marker(i) if i < slots else "") for i, chunk in enumerate(chunks)))
    wire = stencil.fill_wire(texts)
    text = stencil.fill(texts)
    if wire is None:
        assert any("\n" in t or "\r" in t for t in texts) or "\r" in "".join(chunks)
    else:
        assert encode_body(wire, eight_bit) == encode_body(text, eight_bit)


@pytest.mark.parametrize("eight_bit", [False, True], ids=["7bit-server", "8bitmime-server"])
def test_a_message_from_a_stencil_is_byte_for_byte_the_one_rendered_in_full(eight_bit: bool) -> None:
    renderer = wave_renderer([DEFAULT_TEMPLATES])
    contact = _contact(1, "Zoë <Ñúñez>", None, "Asia/Manila", "es")
    first = renderer.build(contact, "m1@example.org", 1, date=DATE, eight_bit=eight_bit)  # rendered in full
    assert renderer.templates_for("es").stencilled_html._stencils, "the first message made a stencil"
    again = renderer.build(contact, "m1@example.org", 1, date=DATE, eight_bit=eight_bit)  # from the stencil
    assert again == first


def test_recipients_of_one_shape_share_one_stencil() -> None:
    renderer = wave_renderer([DEFAULT_TEMPLATES])
    for n in range(50):
        renderer.render(_contact(n, f"Person <{n}>", None, "Asia/Manila", "en"), n)
    renderer.render(_contact(99, None, None, "Asia/Manila", "en"), 99)  # no name: no greeting, another shape
    stencils = renderer.templates_for("en").stencilled_html._stencils
    assert len(stencils) == 2
    html = renderer.render(_contact(7, "Ana & <Bo>", None, "Asia/Manila", "en"), 7).html
    assert "Dear Ana &amp; &lt;Bo&gt;," in html


def _references(tmp_path: Path, source: str, layout: str = "") -> list[tuple[str, str | None]] | None:
    directory = write(tmp_path, {"t.html": source, "layout.html": layout})
    env = _environment(FileSystemLoader([directory]), FILTERS)
    load = env.loader.get_source  # type: ignore[union-attr]
    return personal_references(env, source, lambda name: load(env, name)[0])


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("<p>{{ contact.first_name }}</p>", [("contact", "first_name")]),
        ("{{ contact['job title'] }}", [("contact", "job title")]),
        (
            "{% if contact.first_name and not links.join is defined %}{{ links.register }}{% endif %}",
            [("contact", "first_name"), ("links", "join"), ("links", "register")],
        ),
        ("{% if contact.name is none or pixel_url %}x{% endif %}", [("contact", "name"), ("pixel_url", None)]),
        ("{{ event.title }} {{ when.line }}", []),
    ],
)
def test_outputs_and_presence_tests_can_be_stencilled(tmp_path: Path, source: str, expected: list[object]) -> None:
    assert _references(tmp_path, source) == expected


@pytest.mark.parametrize(
    "source",
    [
        "{{ contact.first_name|upper }}",  # transformed
        "{{ contact.first_name|default('friend') }}",
        "{% if contact.country == 'PH' %}Mabuhay{% endif %}",  # compared
        "{% if contact.name|length > 20 %}x{% endif %}",
        "{% set n = contact.name %}{{ n }}",  # assigned
        "{{ contact.first_name ~ ' ' ~ contact.last_name }}",
        "{{ contact }}",
        "{% for k in contact %}{{ k }}{% endfor %}",
        "{{ link('https://example.org', 'x') }}",  # a per-message call
        "{{ contact.name if contact.name else 'friend' }}",
        "{% include 'layout.html' %}",  # not looked into
        "{% filter upper %}Welcome {{ contact.first_name }}{% endfilter %}",  # captured, then transformed
        "{% set who %}{{ contact.first_name }}{% endset %}{% if who|length > 3 %}long{% endif %}",
        "{% macro hi() %}Hi {{ contact.first_name }}{% endmacro %}{{ hi()|upper }}",
    ],
)
def test_any_other_use_of_a_personal_value_keeps_the_normal_path(tmp_path: Path, source: str) -> None:
    assert _references(tmp_path, source) is None


def test_a_layout_is_looked_into(tmp_path: Path) -> None:
    layout = "<body>{% block content %}{% endblock %}{{ contact.email|lower }}</body>"
    assert _references(tmp_path, "{% extends 'layout.html' %}{% block content %}x{% endblock %}", layout) is None


def test_a_stencil_that_would_differ_is_never_used(tmp_path: Path) -> None:
    # References claimed wrongly (the analysis would refuse this template): the first render finds out.
    directory = write(tmp_path, {"t.html": "<p>{{ contact.name|upper }}</p>"})
    env = _environment(FileSystemLoader([directory]), FILTERS)
    stencilled = StencilledTemplate(env.get_template("t.html"), [("contact", "name")], autoescape=True)
    assert stencilled.render({"contact": {"name": "ana"}}, "shape") == "<p>ANA</p>"
    assert not stencilled.stencilled
    assert stencilled.render({"contact": {"name": "bo"}}, "shape") == "<p>BO</p>"


def test_a_campaign_template_that_cannot_be_stencilled_still_renders(tmp_path: Path) -> None:
    own = write(
        tmp_path / "own",
        {
            "invitation.html": "<p>{% if contact.country == 'PH' %}Mabuhay{% else %}Hello{% endif %}"
            " {{ contact.first_name or 'friend' }}</p>",
        },
    )
    renderer = wave_renderer([own, DEFAULT_TEMPLATES])
    assert not renderer.templates_for("en").stencilled_html.stencilled
    ph = Contact(id=1, email="a@example.org", first_name="Ana", country="PH", timezone="Asia/Manila")
    us = Contact(id=2, email="b@example.org", country="US", timezone="Asia/Manila")
    assert "Mabuhay Ana" in renderer.render(ph, 1).html
    assert "Hello friend" in renderer.render(us, 2).html


def test_template_set_marks_its_bodies() -> None:
    templates = TemplateSet([DEFAULT_TEMPLATES], FILTERS).mail("invitation", "es")
    assert templates.stencilled_html.stencilled
    assert templates.stencilled_text.stencilled
