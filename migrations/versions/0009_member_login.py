"""member app login (owned by the member-auth work)

Revision ID: 0009_member_login
Revises: 0008_abnormal_queue_index
Create Date: 2026-11-28 13:00:00

"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision = '0009_member_login'
down_revision = '0008_abnormal_queue_index'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
