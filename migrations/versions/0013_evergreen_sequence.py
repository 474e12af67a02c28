"""subscriber: the evergreen sequence (in it, pace, position, next due); its copies' index

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("subscriber", recreate="never") as batch_op:
        batch_op.add_column(
            sa.Column("evergreen", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("evergreen_pace", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("evergreen_position", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("evergreen_due_at", sa.DateTime(timezone=True), nullable=True)
        )
    op.create_index("ix_subscriber_evergreen_due_at", "subscriber", ["evergreen_due_at"])
    op.create_index(
        "ix_delivery_evergreen",
        "delivery",
        ["status", "issue_id"],
        postgresql_where=sa.text("batch < 0"),
        sqlite_where=sa.text("batch < 0"),
    )


def downgrade():
    op.drop_index("ix_delivery_evergreen", table_name="delivery")
    op.drop_index("ix_subscriber_evergreen_due_at", table_name="subscriber")
    with op.batch_alter_table("subscriber", recreate="never") as batch_op:
        batch_op.drop_column("evergreen_due_at")
        batch_op.drop_column("evergreen_position")
        batch_op.drop_column("evergreen_pace")
        batch_op.drop_column("evergreen")
