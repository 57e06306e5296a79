"""Indexes for GET /api/trades?strategy=… and ?source=…, newest first.

Without them such a query walks the whole time index and filters row by row.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_trades_strategy_time", "trades", ["strategy", "timestamp", "id"])
    op.create_index("ix_trades_source_time", "trades", ["source", "timestamp", "id"])


def downgrade() -> None:
    op.drop_index("ix_trades_source_time", table_name="trades")
    op.drop_index("ix_trades_strategy_time", table_name="trades")
