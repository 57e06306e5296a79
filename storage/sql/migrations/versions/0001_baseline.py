"""Baseline: the schema the hub created before it had migrations.

A database made by that hub (tables, no alembic_version) is stamped with this revision and
upgraded from here. The types are spelled out rather than imported from storage.sql.models, so this
file keeps describing the old schema whatever the models become.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _id() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("id", BIG_ID, primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "trades",
        _id(),
        sa.Column("event_id", sa.String(128), nullable=False, unique=True),
        sa.Column("timestamp", sa.DateTime(), nullable=False),
        sa.Column("asset", sa.String(32), nullable=False),
        sa.Column("action", sa.String(4), nullable=False),
        sa.Column("price", sa.Float(), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("reasoning", sa.Text(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("source", sa.String(128), nullable=True),
        sa.Column("strategy", sa.String(128), nullable=True),
    )
    op.create_index("ix_trades_time", "trades", ["timestamp", "id"])
    op.create_index("ix_trades_asset_time", "trades", ["asset", "timestamp", "id"])

    op.create_table(
        "backtests",
        _id(),
        sa.Column("event_id", sa.String(128), nullable=False, unique=True),
        sa.Column("strategy", sa.String(128), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("start", sa.DateTime(), nullable=False),
        sa.Column("end", sa.DateTime(), nullable=False),
        sa.Column("initial_capital", sa.Float(), nullable=False),
        sa.Column("final_value", sa.Float(), nullable=True),
        sa.Column("benchmark", sa.String(128), nullable=False),
        *(sa.Column(name, sa.Float(), nullable=True) for name in (
            "total_return", "cagr", "sharpe", "sortino", "max_drawdown", "win_rate")),
        sa.Column("trades", sa.Integer(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("runner", sa.JSON(), nullable=False),
        sa.Column("open_positions", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_backtests_created", "backtests", ["created_at"])
    op.create_index("ix_backtests_sharpe", "backtests", ["sharpe"])
    op.create_index("ix_backtests_strategy", "backtests", ["strategy"])

    op.create_table(
        "backtest_trades",
        _id(),
        sa.Column("backtest_id", BIG_ID, sa.ForeignKey("backtests.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("event_id", sa.String(160), nullable=False, unique=True),
        sa.Column("timestamp", sa.DateTime(), nullable=False),
        sa.Column("asset", sa.String(32), nullable=False),
        sa.Column("action", sa.String(4), nullable=False),
        sa.Column("price", sa.Float(), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("fee", sa.Float(), nullable=False),
        sa.Column("pnl", sa.Float(), nullable=True),
        sa.Column("reasoning", sa.Text(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
    )
    op.create_index("ix_backtest_trades_backtest_id", "backtest_trades", ["backtest_id"])
    op.create_index("ix_backtest_trades_asset", "backtest_trades", ["asset", "backtest_id"])

    op.create_table(
        "backtest_data",
        sa.Column("backtest_id", BIG_ID, sa.ForeignKey("backtests.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("curve", sa.LargeBinary(), nullable=False),
        sa.Column("trade_log", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    for table in ("backtest_data", "backtest_trades", "backtests", "trades"):
        op.drop_table(table)
