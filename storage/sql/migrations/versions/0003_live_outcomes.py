"""Live outcomes: a fee on every trade, each trade's realized outcome, each group's book and
sums, and the lease and checkpoint of the background workers.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("trades") as trades:
        trades.add_column(sa.Column("fee", sa.Float(), nullable=False, server_default="0"))
    op.create_table(
        "outcome_groups",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(400), nullable=False, unique=True),
        sa.Column("source", sa.String(128), nullable=True),
        sa.Column("strategy", sa.String(128), nullable=True),
        sa.Column("asset", sa.String(32), nullable=False),
        sa.Column("last_timestamp", sa.Float(), nullable=True),
        sa.Column("last_trade_id", sa.BigInteger(), nullable=True),
        sa.Column("lots", sa.JSON(), nullable=False),
        sa.Column("side", sa.Integer(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in ("exits", "wins", "losses")),
        sa.Column("win_total", sa.Float(), nullable=False),
        sa.Column("loss_total", sa.Float(), nullable=False),
        sa.Column("largest_win", sa.Float(), nullable=True),
        sa.Column("largest_loss", sa.Float(), nullable=True),
        sa.Column("fees", sa.Float(), nullable=False),
    )
    op.create_table(
        "trade_outcomes",
        sa.Column("trade_id", BIG_ID, sa.ForeignKey("trades.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("group_id", BIG_ID, sa.ForeignKey("outcome_groups.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("timestamp", sa.Float(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        *(sa.Column(name, sa.Float(), nullable=False) for name in (
            "opened", "remaining", "entry_pnl", "exit_quantity", "exit_pnl")),
    )
    op.create_index("ix_trade_outcomes_group_time", "trade_outcomes", ["group_id", "timestamp"])
    op.create_table(
        "worker_leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(128), nullable=True),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("watermark", sa.BigInteger(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    for table in ("worker_leases", "trade_outcomes", "outcome_groups"):
        op.drop_table(table)
    with op.batch_alter_table("trades") as trades:
        trades.drop_column("fee")
