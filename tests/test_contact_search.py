"""Searching a list's contacts by the start of an address or a name (:func:`campaign.store.contacts.list_page`):
the walk of the list and the look-up through the search indexes (migration 0016) give the same pages, the
contacts an oracle in Python finds, on SQLite and PostgreSQL; the look-up reads the indexes."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from campaign.services.contact_import import import_contacts
from campaign.store import contacts as contact_store
from campaign.store.engine import Database
from campaign.store.tables import contacts, list_members, lists

NAMES = ["Zed Alpha", "zed beta", "Zoë Gamma", "Ana 100%", "Bo_Under", "Back\\slash", "Émile Zola", None]


def _contacts(tmp_path: Path, db: Database) -> int:
    rows = ["email,name"]
    for n in range(300):
        name = NAMES[n % len(NAMES)]
        rows.append(f"{'ZED' if n % 7 == 0 else 'p'}{n:03d}@example.org,{'' if name is None else name}")
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (tmp_path / "other.csv").write_text("email,name\nzed-other@example.org,Zed Other\n", encoding="utf-8")
    import_contacts(db, tmp_path / "list.csv", "searched")
    import_contacts(db, tmp_path / "other.csv", "other")
    with db.read() as conn:
        return int(conn.execute(select(lists.c.id).where(lists.c.name == "searched")).scalar_one())


def _oracle(db: Database, list_id: int, prefix: str) -> list[int]:
    """The list's contacts whose address key or lowercase name starts with the prefix, by id, in Python."""
    needle = prefix.lower()
    stmt = (
        select(contacts.c.id, contacts.c.email_key, contacts.c.name)
        .join(list_members, list_members.c.contact_id == contacts.c.id)
        .where(list_members.c.list_id == list_id)
    )
    with db.read() as conn:
        rows = conn.execute(stmt).all()

    # SQLite's lower() folds ASCII letters only: the oracle folds as the database does.
    def fold(text: str) -> str:
        return text.lower() if db.backend == "postgresql" else text.translate(_ASCII_LOWER)

    return sorted(i for i, key, name in rows if key.startswith(needle) or (name and fold(name).startswith(needle)))


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _pages(db: Database, list_id: int, prefix: str, size: int) -> list[int]:
    """Every page of the search, following the keyset."""
    seen: list[int] = []
    after = None
    while True:
        with db.read() as conn:
            page = contact_store.list_page(conn, list_id, prefix=prefix, after=after, limit=size)
        seen += [c.id for c in page]
        if len(page) < size:
            return seen
        after = page[-1].id


@pytest.mark.parametrize("few", [0, 10_000], ids=["walk", "indexes"])
def test_both_ways_of_searching_find_what_the_oracle_finds(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, few: int
) -> None:
    list_id = _contacts(tmp_path, db)
    # few=0: every prefix counts as common, the list is walked; 10,000: every prefix is looked up in the indexes.
    monkeypatch.setattr(contact_store, "FEW_MATCHES", few)
    for prefix in ("zed", "ZED", "zed0", "p00", "p2", "zo", "ana 100%", "ana 1%", "bo_", "bo%", "back\\", "x", "zzz"):
        expected = _oracle(db, list_id, prefix)
        assert _pages(db, list_id, prefix, 7) == expected, prefix
    assert _oracle(db, list_id, "zed")  # the searches above found something
    assert _oracle(db, list_id, "bo_")
    assert not _oracle(db, list_id, "bo%")


def test_a_rare_prefix_is_looked_up_through_the_search_indexes(db: Database, tmp_path: Path) -> None:
    _contacts(tmp_path, db)
    needle = "zed0"
    with db.read() as conn:
        # SQLite reads a range of the unique index on email_key (its automatic index, unnamed in the schema).
        email_index = "ix_contacts_email_search" if db.backend == "postgresql" else "(email_key>? AND email_key<?)"
        for column, index in ((contacts.c.email_key, email_index), (contacts.c.name, "ix_contacts_name_search")):
            expression = column if column is contacts.c.email_key else func.lower(column)
            stmt = select(contacts.c.id).where(contact_store._starting(conn, expression, needle))
            compiled = stmt.compile(conn, compile_kwargs={"literal_binds": True})
            if db.backend == "postgresql":
                conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a small table: the plan the index allows
                plan = " ".join(str(row[0]) for row in conn.exec_driver_sql(f"EXPLAIN {compiled}"))
            else:
                plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))
            assert index in plan, plan
