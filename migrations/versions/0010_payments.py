"""payments, refunds, payment gateway credentials

Revision ID: 0010_payments
Revises: 0009_member_login
Create Date: 2026-11-28 13:00:00

"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision = '0010_payments'
down_revision = '0009_member_login'
branch_labels = None
depends_on = None

GATEWAY_COLUMNS = (
    ("mchid", lambda: sa.String(length=32)),
    ("appid", lambda: sa.String(length=32)),
    ("merchant_serial_no", lambda: sa.String(length=64)),
    ("api_v3_key_enc", lambda: sa.Text()),
    ("private_key_enc", lambda: sa.Text()),
    ("platform_public_key_enc", lambda: sa.Text()),
    ("platform_public_key_id", lambda: sa.String(length=64)),
    ("api_base_url", lambda: sa.String(length=255)),
)


def upgrade():
    with op.batch_alter_table('ev_payment_gateway', schema=None) as batch_op:
        for name, type_ in GATEWAY_COLUMNS:
            batch_op.add_column(sa.Column(name, type_(), nullable=True))

    op.create_table(
        'ev_refund',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('refund_no', sa.String(length=32), nullable=False),
        sa.Column('payment_id', sa.Integer(), nullable=False),
        sa.Column('member_id', sa.Integer(), nullable=True),
        sa.Column('order_id', sa.Integer(), nullable=True),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('amount', sa.Numeric(precision=14, scale=4), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.String(length=255), nullable=True),
        sa.Column('gateway_refund_id', sa.String(length=64), nullable=True),
        sa.Column('requested_by_id', sa.Integer(), nullable=True),
        sa.Column('wallet_entry_id', sa.Integer(), nullable=True),
        sa.Column('retry_of_id', sa.Integer(), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.String(length=255), nullable=True),
        sa.Column('succeeded_at', sa.DateTime(), nullable=True),
        sa.Column('notify_payload', sa.JSON(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.Column('operator_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['member_id'], ['ev_member.id'], ),
        sa.ForeignKeyConstraint(['operator_id'], ['ev_operator.id'], ),
        sa.ForeignKeyConstraint(['order_id'], ['ev_charge_order.id'], ),
        sa.ForeignKeyConstraint(['payment_id'], ['ev_payment.id'], ),
        sa.ForeignKeyConstraint(['requested_by_id'], ['ab_user.id'], ),
        sa.ForeignKeyConstraint(['retry_of_id'], ['ev_refund.id'], ),
        sa.ForeignKeyConstraint(['wallet_entry_id'], ['ev_wallet_entry.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('refund_no', name='uq_ev_refund_refund_no'),
    )
    with op.batch_alter_table('ev_refund', schema=None) as batch_op:
        batch_op.create_index('ix_ev_refund_member_created', ['member_id', 'created_at'], unique=False)
        batch_op.create_index('ix_ev_refund_operator_created', ['operator_id', 'created_at'], unique=False)
        batch_op.create_index('ix_ev_refund_status', ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_ev_refund_operator_id'), ['operator_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ev_refund_order_id'), ['order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ev_refund_payment_id'), ['payment_id'], unique=False)


def downgrade():
    with op.batch_alter_table('ev_refund', schema=None) as batch_op:
        for name in ('ix_ev_refund_payment_id', 'ix_ev_refund_order_id', 'ix_ev_refund_operator_id',
                     'ix_ev_refund_status', 'ix_ev_refund_operator_created', 'ix_ev_refund_member_created'):
            batch_op.drop_index(name)
    op.drop_table('ev_refund')
    with op.batch_alter_table('ev_payment_gateway', schema=None) as batch_op:
        for name, _type in reversed(GATEWAY_COLUMNS):
            batch_op.drop_column(name)
