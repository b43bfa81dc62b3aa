"""charge orders: a partial index for the abnormal-order queue (异常订单, the dashboard's to-do count)

Revision ID: 0008_abnormal_queue_index
Revises: 0007_alarms_monitoring
Create Date: 2026-11-28 11:20:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0008_abnormal_queue_index'
down_revision = '0007_alarms_monitoring'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_ev_charge_order_abnormal_queue', 'ev_charge_order', ['operator_id'], unique=False,
                    postgresql_where=sa.text("status = 'abnormal' OR needs_review IS true"),
                    sqlite_where=sa.text("status = 'abnormal' OR needs_review IS 1"))


def downgrade():
    op.drop_index('ix_ev_charge_order_abnormal_queue', table_name='ev_charge_order')
