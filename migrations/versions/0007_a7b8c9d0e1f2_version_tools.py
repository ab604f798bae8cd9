"""Prompt versions keep their tools, tool choice and response format (existing ones: none, auto, text).

Revision ID: a7b8c9d0e1f2
Revises: f6a7b8c9d0e1
Create Date: 2026-12-01 17:10:00

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "a7b8c9d0e1f2"
down_revision = "f6a7b8c9d0e1"
branch_labels = None
depends_on = None


def upgrade():
    # Server defaults fill the versions saved before: no tools, "auto", plain text.
    with op.batch_alter_table("prompt_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tools", sa.JSON(), server_default=sa.text("'[]'"), nullable=False))
        batch_op.add_column(sa.Column("tool_choice", sa.String(length=64), server_default="auto", nullable=False))
        batch_op.add_column(
            sa.Column("response_format", sa.JSON(), server_default=sa.text("""'{"type": "text"}'"""), nullable=False)
        )


def downgrade():
    with op.batch_alter_table("prompt_versions", schema=None) as batch_op:
        batch_op.drop_column("response_format")
        batch_op.drop_column("tool_choice")
        batch_op.drop_column("tools")
