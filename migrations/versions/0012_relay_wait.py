"""issue: a send waiting for a mail relay that cannot be reached (since when, why, next try)

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("issue", recreate="never") as batch_op:
        batch_op.add_column(
            sa.Column("relay_down_since", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("relay_error", sa.String(length=300), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("relay_retry_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table("issue", recreate="never") as batch_op:
        batch_op.drop_column("relay_retry_at")
        batch_op.drop_column("relay_error")
        batch_op.drop_column("relay_down_since")
