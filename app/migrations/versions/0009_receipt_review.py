"""an admin's answer to a flagged receipt: when it was reviewed, and whether confirmed or refunded

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 10:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    # Plain nullable ADD COLUMN keeps every row on SQLite and PostgreSQL, without rebuilding the table.
    op.add_column('receipt', sa.Column('reviewed_at', sa.DateTime(), nullable=True))
    op.add_column('receipt', sa.Column('review_outcome', sa.String(length=10), nullable=True))


def downgrade():
    with op.batch_alter_table('receipt', schema=None) as batch_op:
        batch_op.drop_column('review_outcome')
        batch_op.drop_column('reviewed_at')
