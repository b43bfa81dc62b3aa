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
    pass


def downgrade():
    pass
