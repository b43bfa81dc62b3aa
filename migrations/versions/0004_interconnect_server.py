"""interconnect (T/CEC 102): partner dialects, served-side records

Revision ID: 0004_interconnect_server
Revises: 0003_order_pile_clock
Create Date: 2026-11-28 10:00:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0004_interconnect_server'
down_revision = '0003_order_pile_clock'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('ev_partner', schema=None) as batch_op:
        batch_op.add_column(sa.Column('field_spelling', sa.String(length=16), nullable=False,
                                      server_default='sevice'))
        batch_op.add_column(sa.Column('money_field', sa.String(length=16), nullable=False,
                                      server_default='ElecMoney'))
        batch_op.add_column(sa.Column('base_path', sa.String(length=64), nullable=False,
                                      server_default='/evcs/v1.0/'))
        batch_op.add_column(sa.Column('status_as_array', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    with op.batch_alter_table('ev_charge_order', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_ev_charge_order_partner_seq', ['partner_id', 'partner_order_no'])


def downgrade():
    with op.batch_alter_table('ev_charge_order', schema=None) as batch_op:
        batch_op.drop_constraint('uq_ev_charge_order_partner_seq', type_='unique')
    with op.batch_alter_table('ev_partner', schema=None) as batch_op:
        batch_op.drop_column('status_as_array')
        batch_op.drop_column('base_path')
        batch_op.drop_column('money_field')
        batch_op.drop_column('field_spelling')
