"""charge orders: the pile's own start/end time (0x3B) beside the platform's

Revision ID: 0003_order_pile_clock
Revises: 0002_order_list_indexes
Create Date: 2026-11-28 07:00:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0003_order_pile_clock'
down_revision = '0002_order_list_indexes'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('ev_charge_order', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pile_started_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('pile_ended_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('ev_charge_order', schema=None) as batch_op:
        batch_op.drop_column('pile_ended_at')
        batch_op.drop_column('pile_started_at')
