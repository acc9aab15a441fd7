"""message_activity: what each message's recipient did, kept up to date by the database from its tracking events

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 06:10:00

One narrow row per message that has a tracking event: when a person first opened it (an open or a click: a click
implies the open), when a person first clicked it, and whether a machine opened it, a machine clicked it, a
person clicked its registration link (the wave's link named ``register``, stored in ``links`` when the wave is
rendered, before any click) or it was unsubscribed from. Reports read it instead of grouping every tracking event
by message (:mod:`campaign.store.reports`, which says what that saves; :mod:`campaign.store.tracking` what the
triggers cost a write).

Triggers on ``tracking_events`` keep it exact whoever writes the events (the recorder, the unsubscribe page, an
import, a test): an insert adds to its message's row (earliest instant, flags or-ed); an update (a burst found
later re-flags clicks as a machine's) or a delete (the purge of old events, a message deleted) works the row of
each message touched out again from its remaining events. SQLite has row triggers only; PostgreSQL gets statement
triggers with transition tables (one statement a batch, not one a row). Filled here from the events there are.

No foreign key: a deleted message's events go with it (their cascade), and with them its row, by the triggers.
Note: rebuilding ``tracking_events`` on SQLite (``batch_alter_table``) drops its triggers: create them again.
"""

# ruff: noqa: S608 (SQL put together from constants of this file, no input)
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from campaign.store.tables import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_COLUMNS = (
    "message_id, human_opened_at, human_clicked_at, machine_opened, machine_clicked, register_clicked, unsubscribed"
)


def _aggregates(t: str, boolean: str, any_of: str) -> str:
    """The columns of a message's row from its events ``t`` (grouped by message): ``boolean`` turns a condition
    into the column's type (``{}`` the condition), ``any_of`` is the aggregate that is true when one row's is."""
    human = f"NOT {t}.is_machine"
    register = (
        f"EXISTS (SELECT 1 FROM messages m JOIN links l ON l.wave_id = m.wave_id AND l.link_index = {t}.link_index"
        f" WHERE m.id = {t}.message_id AND l.name = 'register')"
    )
    flags = [
        f"{t}.is_machine AND {t}.kind = 'open'",
        f"{t}.is_machine AND {t}.kind = 'click'",
        f"{human} AND {t}.kind = 'click' AND {register}",
        f"{t}.kind = 'unsubscribe'",
    ]
    return ", ".join(
        [
            f"{t}.message_id",
            f"min(CASE WHEN {human} AND {t}.kind IN ('open', 'click') THEN {t}.occurred_at END)",
            f"min(CASE WHEN {human} AND {t}.kind = 'click' THEN {t}.occurred_at END)",
            *(f"{any_of}({boolean.format(flag)})" for flag in flags),
        ]
    )


# SQLite: booleans are 0/1, max() is "any"; PostgreSQL: bool_or.
_SQLITE = _aggregates("t", "coalesce({}, 0)", "max")
_SQLITE_NEW = _aggregates("NEW", "coalesce({}, 0)", "max")
_POSTGRES = _aggregates("t", "coalesce({}, false)", "bool_or")

_SQLITE_RECOMPUTE = """
    DELETE FROM message_activity WHERE message_id = {row}.message_id;
    INSERT INTO message_activity ({columns})
        SELECT {aggregates} FROM tracking_events t WHERE t.message_id = {row}.message_id GROUP BY t.message_id;
"""

_SQLITE_TRIGGERS = [
    # One row added: its instants and flags merged into its message's row (min() of SQLite is NULL when one is).
    f"""
    CREATE TRIGGER tr_tracking_events_activity_insert AFTER INSERT ON tracking_events
    BEGIN
        INSERT INTO message_activity ({_COLUMNS})
            SELECT {_SQLITE_NEW} WHERE true
        ON CONFLICT (message_id) DO UPDATE SET
            human_opened_at = coalesce(min(human_opened_at, excluded.human_opened_at), human_opened_at,
                                       excluded.human_opened_at),
            human_clicked_at = coalesce(min(human_clicked_at, excluded.human_clicked_at), human_clicked_at,
                                        excluded.human_clicked_at),
            machine_opened = max(machine_opened, excluded.machine_opened),
            machine_clicked = max(machine_clicked, excluded.machine_clicked),
            register_clicked = max(register_clicked, excluded.register_clicked),
            unsubscribed = max(unsubscribed, excluded.unsubscribed);
    END
    """,
    f"""
    CREATE TRIGGER tr_tracking_events_activity_update
    AFTER UPDATE OF message_id, kind, link_index, is_machine, occurred_at ON tracking_events
    BEGIN
        {_SQLITE_RECOMPUTE.format(row="OLD", columns=_COLUMNS, aggregates=_SQLITE)}
        {_SQLITE_RECOMPUTE.format(row="NEW", columns=_COLUMNS, aggregates=_SQLITE)}
    END
    """,
    f"""
    CREATE TRIGGER tr_tracking_events_activity_delete AFTER DELETE ON tracking_events
    BEGIN
        {_SQLITE_RECOMPUTE.format(row="OLD", columns=_COLUMNS, aggregates=_SQLITE)}
    END
    """,
]

_POSTGRES_RECOMPUTE = f"""
    DELETE FROM message_activity WHERE message_id IN (SELECT message_id FROM touched);
    INSERT INTO message_activity ({_COLUMNS})
        SELECT {_POSTGRES} FROM tracking_events t WHERE t.message_id IN (SELECT message_id FROM touched)
        GROUP BY t.message_id;
"""

# A statement's rows added: their instants and flags merged into their messages' rows (least() skips NULLs).
_POSTGRES_INSERT = f"""
    CREATE FUNCTION message_activity_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO message_activity ({_COLUMNS})
            SELECT {_POSTGRES} FROM added t GROUP BY t.message_id
        ON CONFLICT (message_id) DO UPDATE SET
            human_opened_at = least(message_activity.human_opened_at, excluded.human_opened_at),
            human_clicked_at = least(message_activity.human_clicked_at, excluded.human_clicked_at),
            machine_opened = message_activity.machine_opened OR excluded.machine_opened,
            machine_clicked = message_activity.machine_clicked OR excluded.machine_clicked,
            register_clicked = message_activity.register_clicked OR excluded.register_clicked,
            unsubscribed = message_activity.unsubscribed OR excluded.unsubscribed;
        RETURN NULL;
    END $$
"""


def _postgres_recompute(name: str, rows: str) -> str:
    """A statement trigger's function that works out again the rows of the messages in the transition tables
    ``rows`` (``removed``, ``added`` or both)."""
    touched = " UNION ".join(f"SELECT message_id FROM {r}" for r in rows.split())
    body = _POSTGRES_RECOMPUTE.replace("touched", f"({touched}) touched")
    return f"""
    CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        {body}
        RETURN NULL;
    END $$
    """


_POSTGRES_TRIGGERS = [
    _POSTGRES_INSERT,
    _postgres_recompute("message_activity_update", "removed added"),
    _postgres_recompute("message_activity_delete", "removed"),
    """
    CREATE TRIGGER tr_tracking_events_activity_insert AFTER INSERT ON tracking_events
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION message_activity_insert()
    """,
    """
    CREATE TRIGGER tr_tracking_events_activity_update AFTER UPDATE ON tracking_events
    REFERENCING OLD TABLE AS removed NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION message_activity_update()
    """,
    """
    CREATE TRIGGER tr_tracking_events_activity_delete AFTER DELETE ON tracking_events
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION message_activity_delete()
    """,
]


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "message_activity",
        sa.Column("message_id", big_id, nullable=False),
        sa.Column("human_opened_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("human_clicked_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("machine_opened", sa.Boolean(), nullable=False),
        sa.Column("machine_clicked", sa.Boolean(), nullable=False),
        sa.Column("register_clicked", sa.Boolean(), nullable=False),
        sa.Column("unsubscribed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("message_id", name="pk_message_activity"),
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    aggregates = _SQLITE if sqlite else _POSTGRES
    op.execute(
        f"INSERT INTO message_activity ({_COLUMNS}) SELECT {aggregates} FROM tracking_events t GROUP BY t.message_id"
    )
    for statement in _SQLITE_TRIGGERS if sqlite else _POSTGRES_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    for action in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS tr_tracking_events_activity_{action} ON tracking_events"
                   if op.get_bind().dialect.name == "postgresql"
                   else f"DROP TRIGGER IF EXISTS tr_tracking_events_activity_{action}")  # fmt: skip
        if op.get_bind().dialect.name == "postgresql":
            op.execute(f"DROP FUNCTION IF EXISTS message_activity_{action}()")
    op.drop_table("message_activity")
