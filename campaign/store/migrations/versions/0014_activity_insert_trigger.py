"""message_activity: a cheaper insert trigger on SQLite (the same row, no aggregate, the link looked up for a
person's click only)

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 07:00:00

Migration 0013's SQLite insert trigger made its message's row from the new event with an aggregate query (the
``min``/``max`` of one row, as the recompute of an update or delete does) and looked up whether the link clicked
is the registration link for every event, opens included. This one makes the same values without an aggregate,
and looks the link up only for a person's click (the only event whose flag it sets); the merge into an existing
row (``ON CONFLICT``) is unchanged. Measured (driver ``executemany`` of 5,000 new events a batch on a database of
a million messages, this machine class): the trigger's cost an open 1.9 → 1.0 µs, a click 2.2 → 1.7 µs (4.3 →
3.45 and 4.4 → 3.9 µs an event written, 2.2 to 2.45 without any trigger). PostgreSQL's statement trigger is
unchanged (one statement a batch).
"""

from __future__ import annotations

import importlib

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_COLUMNS = (
    "message_id, human_opened_at, human_clicked_at, machine_opened, machine_clicked, register_clicked, unsubscribed"
)
_HUMAN_CLICK = "NOT NEW.is_machine AND NEW.kind = 'click'"
_REGISTER = (
    "EXISTS (SELECT 1 FROM messages m JOIN links l ON l.wave_id = m.wave_id AND l.link_index = NEW.link_index"
    " WHERE m.id = NEW.message_id AND l.name = 'register')"
)
# The values of migration 0013's aggregates over the one new row (booleans 0/1, as there).
_SQLITE_INSERT = f"""
    CREATE TRIGGER tr_tracking_events_activity_insert AFTER INSERT ON tracking_events
    BEGIN
        INSERT INTO message_activity ({_COLUMNS})
            SELECT NEW.message_id,
                   CASE WHEN NOT NEW.is_machine AND NEW.kind IN ('open', 'click') THEN NEW.occurred_at END,
                   CASE WHEN {_HUMAN_CLICK} THEN NEW.occurred_at END,
                   coalesce(NEW.is_machine AND NEW.kind = 'open', 0),
                   coalesce(NEW.is_machine AND NEW.kind = 'click', 0),
                   CASE WHEN {_HUMAN_CLICK} THEN {_REGISTER} ELSE 0 END,
                   coalesce(NEW.kind = 'unsubscribe', 0)
            WHERE true
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
    """


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("DROP TRIGGER IF EXISTS tr_tracking_events_activity_insert")
    op.execute(_SQLITE_INSERT)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    previous = importlib.import_module("campaign.store.migrations.versions.0013_message_activity")
    op.execute("DROP TRIGGER IF EXISTS tr_tracking_events_activity_insert")
    op.execute(previous._SQLITE_TRIGGERS[0])
