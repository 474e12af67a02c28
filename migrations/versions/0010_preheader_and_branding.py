"""issue.preheader and the branding table: the inbox line after the subject, and the look
an editor sets at /editor/settings (it wins over NEWSLETTER_NAME and POSTAL_ADDRESS)

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("issue") as batch_op:
        batch_op.add_column(
            sa.Column("preheader", sa.String(200), nullable=False, server_default="")
        )
    op.create_table(
        "branding",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("pitch", sa.String(300), nullable=False),
        sa.Column("blurb", sa.String(2000), nullable=False),
        sa.Column("footer", sa.String(1000), nullable=False),
        sa.Column("postal_address", sa.String(300), nullable=False),
        sa.Column("welcome_text", sa.String(2000), nullable=False),
        sa.Column("accent", sa.String(7), nullable=False),
        sa.Column("logo_url", sa.String(500), nullable=False),
        sa.Column("logo_png", sa.LargeBinary(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade():
    op.drop_table("branding")
    # In place (SQLite >= 3.35), as 0003 does: a rebuilt issue table would cascade to deliveries.
    with op.batch_alter_table("issue", recreate="never") as batch_op:
        batch_op.drop_column("preheader")
