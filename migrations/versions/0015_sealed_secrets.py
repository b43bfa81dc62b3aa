"""partner keys and channel AppSecret sealed at rest

Revision ID: 0015_sealed_secrets
Revises: 0014_coupon_issue
Create Date: 2026-11-28 16:30:00

The columns grow to 255 characters (a sealed 64-character key is about 190) and the values already
there are sealed with SECRETS_KEY (app/services/secrets_box.py). Downgrade opens them again.
"""
import sqlalchemy as sa
from alembic import op

revision = '0015_sealed_secrets'
down_revision = '0014_coupon_issue'
branch_labels = None
depends_on = None

COLUMNS = {
    'ev_partner': ('operator_secret', 'data_secret', 'data_secret_iv', 'sig_secret', 'our_operator_secret',
                   'our_data_secret', 'our_data_secret_iv', 'our_sig_secret'),
    'ev_channel': ('app_secret',),
}
NULLABLE = {'ev_partner': False, 'ev_channel': True}


def _rewrite(convert):
    conn = op.get_bind()
    for table, columns in COLUMNS.items():
        rows = conn.execute(sa.text(f"SELECT id, {', '.join(columns)} FROM {table}")).all()
        for row in rows:
            values = {c: convert(v) for c, v in zip(columns, row[1:])}
            conn.execute(sa.text(f"UPDATE {table} SET {', '.join(f'{c} = :{c}' for c in columns)} WHERE id = :id"),
                         {**values, 'id': row[0]})


def upgrade():
    from app.services import secrets_box

    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.alter_column(column, existing_type=sa.String(length=64), type_=sa.String(length=255),
                                      existing_nullable=NULLABLE[table])

    def seal(value):
        if value is None or value == '' or value.startswith(secrets_box.PREFIX):
            return value
        return secrets_box.seal(value)

    _rewrite(seal)


def downgrade():
    from app.services import secrets_box

    def unseal(value):
        if value and value.startswith(secrets_box.PREFIX):
            return secrets_box.unseal(value)
        return value

    _rewrite(unseal)
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.alter_column(column, existing_type=sa.String(length=255), type_=sa.String(length=64),
                                      existing_nullable=NULLABLE[table])
