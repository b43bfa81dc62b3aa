"""discounts at settlement

Revision ID: 0013_marketing_settlement
Revises: 0012_organizations_qr
Create Date: 2026-11-28 13:00:00

"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision = '0013_marketing_settlement'
down_revision = '0012_organizations_qr'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('ev_campaign_channel',
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['ev_campaign.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['channel_id'], ['ev_channel.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_id', 'channel_id')
    )
    with op.batch_alter_table('ev_campaign_channel', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ev_campaign_channel_channel_id'), ['channel_id'], unique=False)


def downgrade():
    with op.batch_alter_table('ev_campaign_channel', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ev_campaign_channel_channel_id'))

    op.drop_table('ev_campaign_channel')
