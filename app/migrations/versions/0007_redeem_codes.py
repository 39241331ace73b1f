"""redeem codes: hashed, one wallet kind and amount each, redeemable once

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 10:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    # A new table only: CREATE TABLE and CREATE INDEX run the same on SQLite and PostgreSQL.
    op.create_table('redeem_code',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('wallet_kind', sa.String(length=10), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('expires_at', sa.DateTime(), nullable=True),
    sa.Column('redeemed_at', sa.DateTime(), nullable=True),
    sa.Column('redeemed_by', sa.Integer(), nullable=True),
    sa.Column('ledger_entry_id', sa.Integer(), nullable=True),
    sa.CheckConstraint('amount > 0', name=op.f('ck_redeem_code_amount_positive')),
    sa.ForeignKeyConstraint(['created_by'], ['user.id'], name=op.f('fk_redeem_code_created_by_user')),
    sa.ForeignKeyConstraint(['ledger_entry_id'], ['ledger_entry.id'],
                            name=op.f('fk_redeem_code_ledger_entry_id_ledger_entry')),
    sa.ForeignKeyConstraint(['redeemed_by'], ['user.id'], name=op.f('fk_redeem_code_redeemed_by_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_redeem_code')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_redeem_code_code_hash'))
    )
    with op.batch_alter_table('redeem_code', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_redeem_code_redeemed_at'), ['redeemed_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_redeem_code_redeemed_by'), ['redeemed_by'], unique=False)


def downgrade():
    with op.batch_alter_table('redeem_code', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_redeem_code_redeemed_by'))
        batch_op.drop_index(batch_op.f('ix_redeem_code_redeemed_at'))
    op.drop_table('redeem_code')
