"""Outcome read paths: each group's open lots summed into columns (positions), and an index
that covers calibration's read of a group's entries.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = ("open_quantity", "cost_basis", "opened_at")


def upgrade() -> None:
    with op.batch_alter_table("outcome_groups") as groups:
        groups.add_column(sa.Column("open_quantity", sa.Float(), nullable=False, server_default="0"))
        groups.add_column(sa.Column("cost_basis", sa.Float(), nullable=False, server_default="0"))
        groups.add_column(sa.Column("opened_at", sa.Float(), nullable=True))
    op.create_index("ix_trade_outcomes_group_entries", "trade_outcomes",
                    ["group_id", "opened", "confidence", "entry_pnl", "remaining", "timestamp"])
    # Groups stored before: their sums from their lots, [origin, qty, price, time, fee] each.
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT id, lots FROM outcome_groups WHERE side != 0")).fetchall()
    for group_id, raw in rows:
        lots: list[Any] = json.loads(raw) if isinstance(raw, str) else raw  # SQLite: text
        connection.execute(sa.text("UPDATE outcome_groups SET open_quantity = :q, cost_basis = :c, "
                                   "opened_at = :t WHERE id = :id"),
                           {"q": sum(lot[1] for lot in lots), "c": sum(lot[1] * lot[2] for lot in lots),
                            "t": min((lot[3] for lot in lots), default=None), "id": group_id})


def downgrade() -> None:
    op.drop_index("ix_trade_outcomes_group_entries", "trade_outcomes")
    with op.batch_alter_table("outcome_groups") as groups:
        for name in COLUMNS:
            groups.drop_column(name)
