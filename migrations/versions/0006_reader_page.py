"""The reader's own page: pauses, and address changes waiting for the new address to confirm

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    # Columns added in place, the table never recreated: it carries the search and count
    # triggers. New event kinds need no DDL (a VARCHAR enum without a CHECK).
    with op.batch_alter_table("subscriber", recreate="never") as batch_op:
        batch_op.add_column(sa.Column("paused_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("new_email", sa.String(length=254), nullable=True))
        batch_op.add_column(
            sa.Column("new_email_due_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("old_email", sa.String(length=254), nullable=True))
        batch_op.add_column(
            sa.Column("old_email_due_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            batch_op.f("ix_subscriber_new_email_due_at"), ["new_email_due_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_subscriber_old_email_due_at"), ["old_email_due_at"], unique=False
        )


def downgrade():
    # SQLite >= 3.35 drops a column in place; an indexed one only once its index is gone.
    with op.batch_alter_table("subscriber", recreate="never") as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscriber_old_email_due_at"))
        batch_op.drop_index(batch_op.f("ix_subscriber_new_email_due_at"))
        batch_op.drop_column("old_email_due_at")
        batch_op.drop_column("old_email")
        batch_op.drop_column("new_email_due_at")
        batch_op.drop_column("new_email")
        batch_op.drop_column("paused_until")
