"""invoices, fault reports, feedback

An order is on at most one live invoice: ``ev_invoice_order.released_at`` (stamped when the invoice
is rejected) and the partial unique index ``uq_ev_invoice_order_live`` on order_id where it is NULL.

Revision ID: 0011_invoices_feedback
Revises: 0010_payments
Create Date: 2026-11-28 13:00:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0011_invoices_feedback'
down_revision = '0010_payments'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("ev_invoice_order") as batch:
        batch.add_column(sa.Column("released_at", sa.DateTime(), nullable=True))
    # links of invoices rejected before this revision release their orders
    op.execute("UPDATE ev_invoice_order SET released_at = CURRENT_TIMESTAMP WHERE invoice_id IN "
               "(SELECT id FROM ev_invoice WHERE status = 'rejected')")
    op.create_index("uq_ev_invoice_order_live", "ev_invoice_order", ["order_id"], unique=True,
                    postgresql_where=sa.text("released_at IS NULL"),
                    sqlite_where=sa.text("released_at IS NULL"))


def downgrade():
    op.drop_index("uq_ev_invoice_order_live", table_name="ev_invoice_order")
    with op.batch_alter_table("ev_invoice_order") as batch:
        batch.drop_column("released_at")
