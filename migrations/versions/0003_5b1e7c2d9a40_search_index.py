"""A trigram index for searching the text of prompt versions (PostgreSQL only).

Revision ID: 5b1e7c2d9a40
Revises: bbbd33032213
Create Date: 2026-11-26 02:10:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5b1e7c2d9a40'
down_revision = 'bbbd33032213'
branch_labels = None
depends_on = None

INDEX = 'ix_prompt_versions_system_prompt_trgm'


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name != 'postgresql':
        return  # SQLite (development) searches by scanning
    # pg_trgm ships with PostgreSQL (contrib) and is a trusted extension: the database's owner may create it.
    op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')
    op.create_index(
        INDEX,
        'prompt_versions',
        ['system_prompt'],
        unique=False,
        postgresql_using='gin',
        postgresql_ops={'system_prompt': 'gin_trgm_ops'},
    )


def downgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.drop_index(INDEX, table_name='prompt_versions', postgresql_using='gin')
