"""editor.session_generation: log out and password changes end every session of an editor

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("editor") as batch_op:
        batch_op.add_column(
            sa.Column("session_generation", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade():
    # Not recreated: with foreign keys on, SQLite would drop the old editor table by deleting
    # its rows, and their API tokens with them (ON DELETE CASCADE). SQLite >= 3.35 drops a
    # column in place.
    with op.batch_alter_table("editor", recreate="never") as batch_op:
        batch_op.drop_column("session_generation")
