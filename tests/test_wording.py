"""How counts are worded (campaign.rules.wording)."""

from __future__ import annotations

import pytest

from campaign.rules.wording import counted


@pytest.mark.parametrize(
    ("n", "noun", "plural", "said"),
    [
        (0, "row", None, "0 rows"),
        (1, "row", None, "1 row"),
        (2, "contact", None, "2 contacts"),
        (1, "not a contact", "not contacts", "1 not a contact"),
        (3, "not a contact", "not contacts", "3 not contacts"),
    ],
)
def test_a_count_takes_the_noun_in_its_number(n: int, noun: str, plural: str | None, said: str) -> None:
    assert counted(n, noun, plural) == said
