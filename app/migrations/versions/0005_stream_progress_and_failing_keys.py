"""what a live stream has delivered, and which keys a channel's failures came from

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 15:40:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMN keeps every row on SQLite and PostgreSQL.
    op.add_column('hold', sa.Column('delivered', sa.BigInteger(), nullable=True))
    op.add_column('channel_health', sa.Column('failure_key_id', sa.Integer(), nullable=True))
    op.add_column('channel_health', sa.Column('failures_from_many_keys', sa.Boolean(), server_default=sa.false(),
                                              nullable=False))


def downgrade():
    with op.batch_alter_table('channel_health', schema=None) as batch_op:
        batch_op.drop_column('failures_from_many_keys')
        batch_op.drop_column('failure_key_id')
    with op.batch_alter_table('hold', schema=None) as batch_op:
        batch_op.drop_column('delivered')
