"""an index on receipt.created_at: the admin health board reads recent attempts by time alone

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 10:00:00

"""
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_receipt_created', 'receipt', ['created_at'], unique=False)


def downgrade():
    op.drop_index('ix_receipt_created', table_name='receipt')
