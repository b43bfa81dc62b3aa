"""coupon issuing

Revision ID: 0014_coupon_issue
Revises: 0013_marketing_settlement
Create Date: 2026-11-28 13:00:00

"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision = '0014_coupon_issue'
down_revision = '0013_marketing_settlement'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
