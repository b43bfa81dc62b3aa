"""interconnect (T/CEC 102): pushes, partner stations, reconciliation

Revision ID: 0005_interconnect_client
Revises: 0004_interconnect_server
Create Date: 2026-11-28 10:00:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0005_interconnect_client'
down_revision = '0004_interconnect_server'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'ev_reconciliation_dispute',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('partner_id', sa.Integer(), nullable=False),
        sa.Column('direction', sa.String(length=8), nullable=False),
        sa.Column('check_order_seq', sa.String(length=32), nullable=False),
        sa.Column('start_charge_seq', sa.String(length=64), nullable=False),
        sa.Column('order_id', sa.Integer(), nullable=True),
        sa.Column('period_start', sa.DateTime(), nullable=True),
        sa.Column('period_end', sa.DateTime(), nullable=True),
        sa.Column('their_power', sa.Numeric(precision=14, scale=4), nullable=True),
        sa.Column('their_money', sa.Numeric(precision=14, scale=4), nullable=True),
        sa.Column('our_power', sa.Numeric(precision=14, scale=4), nullable=True),
        sa.Column('our_money', sa.Numeric(precision=14, scale=4), nullable=True),
        sa.Column('reason', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('operator_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['operator_id'], ['ev_operator.id']),
        sa.ForeignKeyConstraint(['order_id'], ['ev_charge_order.id']),
        sa.ForeignKeyConstraint(['partner_id'], ['ev_partner.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('partner_id', 'direction', 'check_order_seq', 'start_charge_seq',
                            name='uq_ev_recon_dispute_check_order'),
    )
    with op.batch_alter_table('ev_reconciliation_dispute', schema=None) as batch_op:
        batch_op.create_index('ix_ev_recon_dispute_partner_created', ['partner_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_ev_reconciliation_dispute_operator_id'), ['operator_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ev_reconciliation_dispute_order_id'), ['order_id'], unique=False)

    op.create_table(
        'ev_partner_station',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('partner_id', sa.Integer(), nullable=False),
        sa.Column('station_code', sa.String(length=32), nullable=False),
        sa.Column('station_operator_code', sa.String(length=16), nullable=True),
        sa.Column('equipment_owner_code', sa.String(length=16), nullable=True),
        sa.Column('name', sa.String(length=64), nullable=True),
        sa.Column('area_code', sa.String(length=16), nullable=True),
        sa.Column('address', sa.String(length=128), nullable=True),
        sa.Column('station_tel', sa.String(length=32), nullable=True),
        sa.Column('service_tel', sa.String(length=32), nullable=True),
        sa.Column('station_type', sa.Integer(), nullable=True),
        sa.Column('station_status', sa.Integer(), nullable=True),
        sa.Column('park_nums', sa.Integer(), nullable=True),
        sa.Column('lng', sa.Numeric(precision=10, scale=6), nullable=True),
        sa.Column('lat', sa.Numeric(precision=10, scale=6), nullable=True),
        sa.Column('construction', sa.Integer(), nullable=True),
        sa.Column('busine_hours', sa.String(length=128), nullable=True),
        sa.Column('electricity_fee', sa.String(length=256), nullable=True),
        sa.Column('service_fee', sa.String(length=128), nullable=True),
        sa.Column('park_fee', sa.String(length=128), nullable=True),
        sa.Column('equipment_count', sa.Integer(), nullable=False),
        sa.Column('connector_count', sa.Integer(), nullable=False),
        sa.Column('equipment', sa.JSON(), nullable=True),
        sa.Column('raw', sa.JSON(), nullable=True),
        sa.Column('fetched_at', sa.DateTime(), nullable=False),
        sa.Column('operator_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['operator_id'], ['ev_operator.id']),
        sa.ForeignKeyConstraint(['partner_id'], ['ev_partner.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('partner_id', 'station_code', name='uq_ev_partner_station_code'),
    )
    with op.batch_alter_table('ev_partner_station', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ev_partner_station_operator_id'), ['operator_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ev_partner_station_partner_id'), ['partner_id'], unique=False)

    with op.batch_alter_table('ev_charge_order', schema=None) as batch_op:
        batch_op.add_column(sa.Column('partner_confirm_result', sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table('ev_charge_order', schema=None) as batch_op:
        batch_op.drop_column('partner_confirm_result')
    op.drop_table('ev_partner_station')
    op.drop_table('ev_reconciliation_dispute')
