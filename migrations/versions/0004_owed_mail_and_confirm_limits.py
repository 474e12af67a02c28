"""Owed mail the reconciler rebuilds, confirmation limits per mailbox and domain, import leases

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "confirm_limit",
        sa.Column("key", sa.String(length=70), nullable=False),
        sa.Column("period", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("confirm_limit") as batch_op:
        batch_op.create_index(batch_op.f("ix_confirm_limit_last_at"), ["last_at"], unique=False)
    # Columns added in place, tables never recreated: a recreated subscriber table would lose
    # the search and count triggers it carries.
    with op.batch_alter_table("subscriber", recreate="never") as batch_op:
        batch_op.add_column(sa.Column("confirm_due_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("welcome_due_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("confirm_name", sa.String(length=100), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_subscriber_confirm_due_at"), ["confirm_due_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_subscriber_welcome_due_at"), ["welcome_due_at"], unique=False
        )
    with op.batch_alter_table("import_job", recreate="never") as batch_op:
        batch_op.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    # SQLite >= 3.35 drops a column in place; an indexed one only once its index is gone.
    with op.batch_alter_table("import_job", recreate="never") as batch_op:
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("attempt")
    with op.batch_alter_table("subscriber", recreate="never") as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscriber_welcome_due_at"))
        batch_op.drop_index(batch_op.f("ix_subscriber_confirm_due_at"))
        batch_op.drop_column("confirm_name")
        batch_op.drop_column("welcome_due_at")
        batch_op.drop_column("confirm_due_at")
    with op.batch_alter_table("confirm_limit") as batch_op:
        batch_op.drop_index(batch_op.f("ix_confirm_limit_last_at"))
    op.drop_table("confirm_limit")
