"""key limits counted in the database, the price a receipt applied, model creation times

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 15:20:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMN keeps every row on SQLite and PostgreSQL.
    op.add_column('model', sa.Column('created_at', sa.DateTime(), server_default=sa.func.current_timestamp(),
                                     nullable=False))
    op.add_column('receipt', sa.Column('price_model', sa.String(length=100), nullable=True))
    with op.batch_alter_table('api_key', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reserved', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('rpm_window', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('rpm_count', sa.Integer(), server_default='0', nullable=False))
        batch_op.create_check_constraint('reserved_not_negative', 'reserved >= 0')
    with op.batch_alter_table('hold', schema=None) as batch_op:
        batch_op.drop_column('upstream_started')


def downgrade():
    with op.batch_alter_table('hold', schema=None) as batch_op:
        batch_op.add_column(sa.Column('upstream_started', sa.Boolean(), server_default=sa.true(), nullable=False))
    with op.batch_alter_table('api_key', schema=None) as batch_op:
        batch_op.drop_constraint('ck_api_key_reserved_not_negative', type_='check')
        batch_op.drop_column('rpm_count')
        batch_op.drop_column('rpm_window')
        batch_op.drop_column('reserved')
    op.drop_column('receipt', 'price_model')
    with op.batch_alter_table('model', schema=None) as batch_op:
        batch_op.drop_column('created_at')
