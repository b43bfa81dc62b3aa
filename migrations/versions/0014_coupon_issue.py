"""coupon issuing

Revision ID: 0014_coupon_issue
Revises: 0013_marketing_settlement
Create Date: 2026-11-28 13:00:00

"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision = '0014_coupon_issue'
down_revision = '0013_marketing_settlement'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('ev_coupon_template', schema=None) as batch_op:
        batch_op.add_column(sa.Column('per_member_limit', sa.Integer(), nullable=True))
    with op.batch_alter_table('ev_coupon_campaign', schema=None) as batch_op:
        batch_op.add_column(sa.Column('registered_from', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('registered_to', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('min_orders', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('order_count', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('order_min_amount', sa.Numeric(precision=14, scale=4), nullable=True))
        batch_op.add_column(sa.Column('last_issued_at', sa.DateTime(), nullable=True))
    with op.batch_alter_table('ev_coupon', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=16), server_default='manual', nullable=False))
        batch_op.add_column(sa.Column('source_order_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_ev_coupon_source_order_id'), ['source_order_id'], unique=False)
        batch_op.create_foreign_key('fk_ev_coupon_source_order_id', 'ev_charge_order', ['source_order_id'], ['id'])


def downgrade():
    with op.batch_alter_table('ev_coupon', schema=None) as batch_op:
        batch_op.drop_constraint('fk_ev_coupon_source_order_id', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_ev_coupon_source_order_id'))
        batch_op.drop_column('source_order_id')
        batch_op.drop_column('source')
    with op.batch_alter_table('ev_coupon_campaign', schema=None) as batch_op:
        batch_op.drop_column('last_issued_at')
        batch_op.drop_column('order_min_amount')
        batch_op.drop_column('order_count')
        batch_op.drop_column('min_orders')
        batch_op.drop_column('registered_to')
        batch_op.drop_column('registered_from')
    with op.batch_alter_table('ev_coupon_template', schema=None) as batch_op:
        batch_op.drop_column('per_member_limit')
