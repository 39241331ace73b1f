"""model capabilities: vision and tools

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 18:10:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMN (no batch copy) works on SQLite and PostgreSQL, and keeps every row.
    op.add_column('model', sa.Column('supports_vision', sa.Boolean(), server_default=sa.true(), nullable=False))
    op.add_column('model', sa.Column('supports_tools', sa.Boolean(), server_default=sa.true(), nullable=False))


def downgrade():
    with op.batch_alter_table('model', schema=None) as batch_op:
        batch_op.drop_column('supports_tools')
        batch_op.drop_column('supports_vision')
