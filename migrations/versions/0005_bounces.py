"""bounce: each bounce or complaint about a copy, what it did, and whether it was undone

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "bounce",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "subscriber_id",
            sa.Integer(),
            sa.ForeignKey("subscriber.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column(
            "issue_id", sa.Integer(), sa.ForeignKey("issue.id", ondelete="SET NULL"), nullable=True
        ),
        sa.Column(
            "delivery_id",
            sa.Integer(),
            sa.ForeignKey("delivery.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("status_code", sa.String(12), nullable=False),
        sa.Column("diagnostic", sa.String(500), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("undone_by", sa.String(254), nullable=False),
    )
    op.create_index("ix_bounce_at", "bounce", ["at"])
    op.create_index("ix_bounce_delivery_id", "bounce", ["delivery_id"])
    op.create_index("ix_bounce_subscriber_at", "bounce", ["subscriber_id", "at"])
    op.create_index("ix_bounce_issue_kind", "bounce", ["issue_id", "kind"])


def downgrade():
    op.drop_table("bounce")
