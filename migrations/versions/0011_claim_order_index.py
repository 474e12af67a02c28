"""A batch's claim reads its queued rows in id order straight from an index

The claim takes the first CLAIM_CHUNK queued rows of a batch by id. With the index on
(issue_id, batch, status) alone, PostgreSQL had to choose between sorting the batch's rows and
walking the primary key in order until enough of them turned up, and it chose by estimates
that a freshly snapshotted table does not have yet (walking the key reads every earlier batch
first). With id as the index's last column one plan serves both: the batch's rows, already in
order, stopping at the chunk. The new index replaces the old one, whose columns it starts with.

Revision ID: 0011
Revises: 0007
"""

from alembic import op

revision = "0011"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(
        "ix_delivery_claim_order", "delivery", ["issue_id", "batch", "status", "id"], unique=False
    )
    op.drop_index("ix_delivery_issue_batch_status", table_name="delivery")


def downgrade():
    op.create_index(
        "ix_delivery_issue_batch_status", "delivery", ["issue_id", "batch", "status"], unique=False
    )
    op.drop_index("ix_delivery_claim_order", table_name="delivery")
