"""invoices, fault reports, feedback

Revision ID: 0011_invoices_feedback
Revises: 0010_payments
Create Date: 2026-11-28 13:00:00

"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision = '0011_invoices_feedback'
down_revision = '0010_payments'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
