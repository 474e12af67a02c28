"""tags: labels on people, and the tags an issue's send is limited to (its segment)

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "tag",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("key", sa.String(50), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "subscriber_tag",
        sa.Column(
            "subscriber_id",
            sa.Integer(),
            sa.ForeignKey("subscriber.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "tag_id", sa.Integer(), sa.ForeignKey("tag.id", ondelete="CASCADE"), primary_key=True
        ),
    )
    op.create_index("ix_subscriber_tag_tag", "subscriber_tag", ["tag_id", "subscriber_id"])
    op.create_table(
        "issue_tag",
        sa.Column(
            "issue_id",
            sa.Integer(),
            sa.ForeignKey("issue.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "tag_id", sa.Integer(), sa.ForeignKey("tag.id", ondelete="RESTRICT"), primary_key=True
        ),
    )
    op.create_index("ix_issue_tag_tag_id", "issue_tag", ["tag_id"])
    op.add_column("import_job", sa.Column("tags", sa.Text(), nullable=False, server_default=""))


def downgrade():
    with op.batch_alter_table("import_job") as batch:
        batch.drop_column("tags")
    op.drop_table("issue_tag")
    op.drop_index("ix_subscriber_tag_tag", table_name="subscriber_tag")
    op.drop_table("subscriber_tag")
    op.drop_table("tag")
