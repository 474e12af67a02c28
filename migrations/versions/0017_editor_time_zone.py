"""editor.time_zone: the zone an editor reads every time in (None: their browser's)

Revision ID: 0017
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("editor") as batch_op:
        batch_op.add_column(sa.Column("time_zone", sa.String(64), nullable=True))


def downgrade():
    # Not recreated: with foreign keys on, SQLite would drop the old editor table by deleting
    # its rows, and their API tokens with them (ON DELETE CASCADE).
    with op.batch_alter_table("editor", recreate="never") as batch_op:
        batch_op.drop_column("time_zone")
