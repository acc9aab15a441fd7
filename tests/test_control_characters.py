"""One control-character rule (campaign.rules.characters), applied alike by settings, names, attributes and headers."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaign.config import load_settings
from campaign.exceptions import ConfigError
from campaign.render.mime import format_address, header_value
from campaign.rules.characters import ATTRIBUTE_CONTROL, CONTROL
from campaign.rules.contact_fields import clean_text
from campaign.sources.csv_contacts import ContactCsv, CsvRecord

# The rule, written out: C0 (NUL...US: tab, LF, CR...), DEL, C1 (U+0080-U+009F: NEL, CSI...), U+2028, U+2029.
CONTROLS = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)]
# What an attribute keeps of them: tab and line breaks (an attribute may be an address on several lines).
LAYOUT = ["\t", "\n", "\r"]
# Neighbours that are not controls.
NOT_CONTROLS = [" ", "~", "\u00a0", "\u00a1", "é", "\u2027", "\u202a", "\u200b"]


def test_the_rule_is_c0_del_c1_and_the_unicode_separators() -> None:
    assert [ch for ch in CONTROLS if not CONTROL.fullmatch(ch)] == []
    assert [ch for ch in NOT_CONTROLS if CONTROL.fullmatch(ch)] == []
    assert [ch for ch in CONTROLS if ch not in LAYOUT and not ATTRIBUTE_CONTROL.fullmatch(ch)] == []
    assert [ch for ch in LAYOUT + NOT_CONTROLS if ATTRIBUTE_CONTROL.fullmatch(ch)] == []


def test_names_lose_c1_controls_as_settings_refuse_them() -> None:
    # U+009B is a terminal CSI: "Bob\x9b31m" would colour a table and reach To:.
    assert clean_text("Bob\x9b31mX\x85Y") == "Bob 31mX Y"
    assert clean_text("\x80Ana\x9f") == "Ana"


@pytest.mark.parametrize("control", ["\x9b", "\x85", "\x80", "\u2028"])
def test_headers_lose_every_control(control: str) -> None:
    assert header_value(f"Hello{control}[31mworld") == "Hello [31mworld"
    assert "\x9b" not in format_address(f"a@example.org{control}", f"Bob{control}31m")


def test_attributes_lose_c1_controls_but_keep_tab_and_line_breaks(tmp_path: Path) -> None:
    path = tmp_path / "contacts.csv"
    path.write_text('email,Note\na@example.org,"a\x9b31mb\x85c\u2028d\x00e\tf\r\ng"\n', encoding="utf-8", newline="")
    with ContactCsv(path) as source:
        (row,) = list(source.rows())
    assert isinstance(row, CsvRecord)
    assert row.attributes == {"note": "a31mbcde\tf\r\ng"}


@pytest.mark.parametrize("control", CONTROLS)
def test_settings_refuse_every_control(tmp_path: Path, control: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f'[mail]\nfrom_name = "Events\\u{ord(control):04X}team"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"'mail.from_name' must not contain control characters"):
        load_settings(path, environ={})
