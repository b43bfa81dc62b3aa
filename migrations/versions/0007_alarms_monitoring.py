"""alarms: acknowledgement (who, when, note); open alarms index for monitoring

Revision ID: 0007_alarms_monitoring
Revises: 0006_daily_stats
Create Date: 2026-11-28 10:00:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0007_alarms_monitoring'
down_revision = '0006_daily_stats'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('ev_alarm', schema=None) as batch_op:
        batch_op.add_column(sa.Column('acknowledged_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('acknowledged_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('acknowledged_by_name', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('ack_note', sa.String(length=255), nullable=True))
        batch_op.create_foreign_key('fk_ev_alarm_acknowledged_by_id_ab_user', 'ab_user',
                                    ['acknowledged_by_id'], ['id'])


def downgrade():
    with op.batch_alter_table('ev_alarm', schema=None) as batch_op:
        batch_op.drop_constraint('fk_ev_alarm_acknowledged_by_id_ab_user', type_='foreignkey')
        batch_op.drop_column('ack_note')
        batch_op.drop_column('acknowledged_by_name')
        batch_op.drop_column('acknowledged_by_id')
        batch_op.drop_column('acknowledged_at')
