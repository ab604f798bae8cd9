"""Old slugs of renamed prompts, so their addresses redirect to the new ones.

Revision ID: d4e5f6a7b8c9
Revises: 5b1e7c2d9a40
Create Date: 2026-12-01 16:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd4e5f6a7b8c9'
down_revision = '5b1e7c2d9a40'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('prompt_slug_history',
    sa.Column('old_slug', sa.String(length=80), nullable=False),
    sa.Column('prompt_id', sa.Integer(), nullable=False),
    sa.Column('renamed_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['prompt_id'], ['prompts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('old_slug')
    )
    op.create_index(op.f('ix_prompt_slug_history_prompt_id'), 'prompt_slug_history', ['prompt_id'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_prompt_slug_history_prompt_id'), table_name='prompt_slug_history')
    op.drop_table('prompt_slug_history')
