"""issue_correction: the log of corrections to a sent issue (who, when, the text replaced)

Revision ID: 0016
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "issue_correction",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by", sa.String(length=300), nullable=False),
        sa.Column("old_subject", sa.String(length=200), nullable=True),
        sa.Column("old_body_md", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["issue_id"], ["issue.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_issue_correction_issue_at", "issue_correction", ["issue_id", "at"], unique=False
    )


def downgrade():
    op.drop_index("ix_issue_correction_issue_at", table_name="issue_correction")
    op.drop_table("issue_correction")
