"""daily per-station statistics for reports and the dashboard

Revision ID: 0006_daily_stats
Revises: 0005_interconnect_client
Create Date: 2026-11-28 10:00:00

"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision = '0006_daily_stats'
down_revision = '0005_interconnect_client'
branch_labels = None
depends_on = None


NEW_STATION_COLUMNS = [
    ("energy_sharp", "energy"), ("energy_peak", "energy"), ("energy_flat", "energy"), ("energy_valley", "energy"),
    ("failed_count", "int"), ("abnormal_count", "int"), ("available_seconds", "bigint"),
]


def _type(kind):
    return {"energy": sa.Numeric(14, 4), "int": sa.Integer(), "bigint": sa.BigInteger()}[kind]


def upgrade():
    with op.batch_alter_table('ev_daily_station_stat', schema=None) as batch_op:
        for name, kind in NEW_STATION_COLUMNS:
            batch_op.add_column(sa.Column(name, _type(kind), nullable=False, server_default="0"))
        batch_op.create_index('ix_ev_daily_station_stat_day', ['day'], unique=False)
    with op.batch_alter_table('ev_daily_station_stat', schema=None) as batch_op:
        for name, _kind in NEW_STATION_COLUMNS:
            batch_op.alter_column(name, server_default=None)

    op.create_table(
        'ev_daily_channel_stat',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('station_id', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('channel_id', sa.Integer(), nullable=False),
        sa.Column('order_count', sa.Integer(), nullable=False),
        sa.Column('energy', sa.Numeric(14, 4), nullable=False),
        sa.Column('energy_sharp', sa.Numeric(14, 4), nullable=False),
        sa.Column('energy_peak', sa.Numeric(14, 4), nullable=False),
        sa.Column('energy_flat', sa.Numeric(14, 4), nullable=False),
        sa.Column('energy_valley', sa.Numeric(14, 4), nullable=False),
        sa.Column('electricity_fee', sa.Numeric(14, 4), nullable=False),
        sa.Column('service_fee', sa.Numeric(14, 4), nullable=False),
        sa.Column('total_amount', sa.Numeric(14, 4), nullable=False),
        sa.Column('discount_amount', sa.Numeric(14, 4), nullable=False),
        sa.Column('paid_amount', sa.Numeric(14, 4), nullable=False),
        sa.Column('duration_seconds', sa.BigInteger(), nullable=False),
        sa.Column('operator_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['channel_id'], ['ev_channel.id']),
        sa.ForeignKeyConstraint(['operator_id'], ['ev_operator.id']),
        sa.ForeignKeyConstraint(['station_id'], ['ev_station.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('station_id', 'day', 'channel_id', name='uq_ev_daily_channel_stat_station_day_channel'),
    )
    with op.batch_alter_table('ev_daily_channel_stat', schema=None) as batch_op:
        batch_op.create_index('ix_ev_daily_channel_stat_channel_day', ['channel_id', 'day'], unique=False)
        batch_op.create_index('ix_ev_daily_channel_stat_operator_day', ['operator_id', 'day'], unique=False)
        batch_op.create_index(batch_op.f('ix_ev_daily_channel_stat_operator_id'), ['operator_id'], unique=False)


def downgrade():
    with op.batch_alter_table('ev_daily_channel_stat', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ev_daily_channel_stat_operator_id'))
        batch_op.drop_index('ix_ev_daily_channel_stat_operator_day')
        batch_op.drop_index('ix_ev_daily_channel_stat_channel_day')
    op.drop_table('ev_daily_channel_stat')
    with op.batch_alter_table('ev_daily_station_stat', schema=None) as batch_op:
        batch_op.drop_index('ix_ev_daily_station_stat_day')
        for name, _kind in reversed(NEW_STATION_COLUMNS):
            batch_op.drop_column(name)
