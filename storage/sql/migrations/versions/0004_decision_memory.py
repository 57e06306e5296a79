"""Decision memory: each distinct reasoning text once, and which text each trade gave.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "reasoning_texts",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("digest", sa.String(32), nullable=False, unique=True),
        sa.Column("text", sa.Text(), nullable=False),
    )
    op.create_table(
        "decision_texts",
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("trade_id", sa.BigInteger(), primary_key=True),
        sa.Column("text_id", BIG_ID, sa.ForeignKey("reasoning_texts.id", ondelete="CASCADE"),
                  nullable=False),
    )
    op.create_index("ix_decision_texts_text", "decision_texts", ["text_id", "kind", "trade_id"])


def downgrade() -> None:
    op.drop_table("decision_texts")
    op.drop_table("reasoning_texts")
