"""sign-in throttle counters, and a per-user session nonce that logout and password changes rotate

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 10:00:00

"""
import secrets

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMN keeps every row on SQLite and PostgreSQL; the default only fills existing rows.
    op.add_column('user', sa.Column('session_nonce', sa.String(length=64), server_default='', nullable=False))
    users = sa.table('user', sa.column('id', sa.Integer()), sa.column('session_nonce', sa.String()))
    connection = op.get_bind()
    # Every existing user gets a random nonce, so sessions signed before this upgrade end.
    for (user_id,) in connection.execute(sa.select(users.c.id)).all():
        connection.execute(users.update().where(users.c.id == user_id)
                           .values(session_nonce=secrets.token_urlsafe(24)))
    op.create_table('login_throttle',
    sa.Column('scope', sa.String(length=10), nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=False),
    sa.Column('window_start', sa.DateTime(), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('scope', 'subject', name=op.f('pk_login_throttle'))
    )
    op.create_index(op.f('ix_login_throttle_window_start'), 'login_throttle', ['window_start'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_login_throttle_window_start'), table_name='login_throttle')
    op.drop_table('login_throttle')
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_column('session_nonce')
