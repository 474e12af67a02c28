"""One index for an issue's deliveries by status and batch, in id order

A claim takes the first CLAIM_CHUNK queued rows of a batch by id. There were two indexes to
reach them, (issue_id, batch, status) and (issue_id, status), and on a table filled a moment
ago (no statistics yet) PostgreSQL's estimates could not tell them apart: it took the smaller
one and read every queued row of the issue for each chunk; with statistics it could also walk
the primary key in order, through every earlier batch. One index on (issue_id, status, batch,
id) serves every read of an issue's rows by status (progress, the batches with work, the
claims, the re-check) and gives a batch's queued rows already in claim order, so every plan
finds the same path whatever the estimates.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

NEW = ("ix_delivery_issue_status_batch", ["issue_id", "status", "batch", "id"])
OLD = (
    ("ix_delivery_issue_batch_status", ["issue_id", "batch", "status"]),
    ("ix_delivery_issue_status", ["issue_id", "status"]),
)


def upgrade():
    op.create_index(NEW[0], "delivery", NEW[1], unique=False)
    for name, _columns in OLD:
        op.drop_index(name, table_name="delivery")


def downgrade():
    for name, columns in OLD:
        op.create_index(name, "delivery", columns, unique=False)
    op.drop_index(NEW[0], table_name="delivery")
