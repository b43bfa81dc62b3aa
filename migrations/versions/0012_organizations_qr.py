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
    pass


def downgrade():
    pass
