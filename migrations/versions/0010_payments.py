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


def upgrade():
    pass


def downgrade():
    pass
