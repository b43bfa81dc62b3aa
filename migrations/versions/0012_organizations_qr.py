"""organization accounts, QR codes

Revision ID: 0012_organizations_qr
Revises: 0011_invoices_feedback
Create Date: 2026-11-28 13:00:00

"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision = '0012_organizations_qr'
down_revision = '0011_invoices_feedback'
branch_labels = None
depends_on = None


def upgrade():
    # organization account (balance cache + ledger), agreed discount, payment mode
    with op.batch_alter_table('ev_organization', schema=None) as batch_op:
        batch_op.add_column(sa.Column('balance', sa.Numeric(precision=14, scale=4), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('electricity_rate', sa.Numeric(precision=5, scale=4), nullable=True))
        batch_op.add_column(sa.Column('service_rate', sa.Numeric(precision=5, scale=4), nullable=True))
        batch_op.add_column(sa.Column('pay_mode', sa.String(length=16), nullable=False,
                                      server_default='member'))
    with op.batch_alter_table('ev_organization', schema=None) as batch_op:
        batch_op.alter_column('balance', server_default=None)
        batch_op.alter_column('pay_mode', server_default=None)

    with op.batch_alter_table('ev_card', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pay_mode', sa.String(length=16), nullable=True))

    op.create_table('ev_organization_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('amount', sa.Numeric(precision=14, scale=4), nullable=False),
    sa.Column('balance_after', sa.Numeric(precision=14, scale=4), nullable=False),
    sa.Column('idempotency_key', sa.String(length=64), nullable=True),
    sa.Column('source', sa.String(length=64), nullable=True),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('card_id', sa.Integer(), nullable=True),
    sa.Column('member_id', sa.Integer(), nullable=True),
    sa.Column('remark', sa.String(length=255), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('operator_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['card_id'], ['ev_card.id'], ),
    sa.ForeignKeyConstraint(['created_by_id'], ['ab_user.id'], ),
    sa.ForeignKeyConstraint(['member_id'], ['ev_member.id'], ),
    sa.ForeignKeyConstraint(['operator_id'], ['ev_operator.id'], ),
    sa.ForeignKeyConstraint(['order_id'], ['ev_charge_order.id'], ),
    sa.ForeignKeyConstraint(['organization_id'], ['ev_organization.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key', name='uq_ev_organization_entry_idempotency_key')
    )
    with op.batch_alter_table('ev_organization_entry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ev_organization_entry_card_id'), ['card_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ev_organization_entry_member_id'), ['member_id'], unique=False)
        batch_op.create_index('ix_ev_organization_entry_operator_created', ['operator_id', 'created_at'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_ev_organization_entry_operator_id'), ['operator_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ev_organization_entry_order_id'), ['order_id'], unique=False)
        batch_op.create_index('ix_ev_organization_entry_org_id_id', ['organization_id', 'id'], unique=False)

    # QR codes: the channel's prefix; pile models that take the prefix over YKC 0xF0
    with op.batch_alter_table('ev_channel', schema=None) as batch_op:
        batch_op.add_column(sa.Column('qr_prefix', sa.String(length=200), nullable=True))
    with op.batch_alter_table('ev_pile_model', schema=None) as batch_op:
        batch_op.add_column(sa.Column('supports_qr_prefix', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    with op.batch_alter_table('ev_pile_model', schema=None) as batch_op:
        batch_op.alter_column('supports_qr_prefix', server_default=None)


def downgrade():
    with op.batch_alter_table('ev_pile_model', schema=None) as batch_op:
        batch_op.drop_column('supports_qr_prefix')
    with op.batch_alter_table('ev_channel', schema=None) as batch_op:
        batch_op.drop_column('qr_prefix')

    with op.batch_alter_table('ev_organization_entry', schema=None) as batch_op:
        batch_op.drop_index('ix_ev_organization_entry_org_id_id')
        batch_op.drop_index(batch_op.f('ix_ev_organization_entry_order_id'))
        batch_op.drop_index(batch_op.f('ix_ev_organization_entry_operator_id'))
        batch_op.drop_index('ix_ev_organization_entry_operator_created')
        batch_op.drop_index(batch_op.f('ix_ev_organization_entry_member_id'))
        batch_op.drop_index(batch_op.f('ix_ev_organization_entry_card_id'))
    op.drop_table('ev_organization_entry')

    with op.batch_alter_table('ev_card', schema=None) as batch_op:
        batch_op.drop_column('pay_mode')
    with op.batch_alter_table('ev_organization', schema=None) as batch_op:
        batch_op.drop_column('pay_mode')
        batch_op.drop_column('service_rate')
        batch_op.drop_column('electricity_rate')
        batch_op.drop_column('balance')
