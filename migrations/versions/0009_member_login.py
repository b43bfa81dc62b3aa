"""member app login: the WeChat AppSecret of a mini program channel (write-only, app/services/wechat_login.py)

Revision ID: 0009_member_login
Revises: 0008_abnormal_queue_index
Create Date: 2026-11-28 13:00:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0009_member_login'
down_revision = '0008_abnormal_queue_index'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('ev_channel') as batch_op:
        batch_op.add_column(sa.Column('app_secret', sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table('ev_channel') as batch_op:
        batch_op.drop_column('app_secret')
