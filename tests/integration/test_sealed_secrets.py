"""Partner T/CEC keys and a channel's WeChat AppSecret are sealed at rest (app.models.base.Sealed):
the column holds ``fernet:<token>``, the code sees the plain key, a key stored before sealing reads as it
was, and migration 0015 seals the keys an existing database holds."""
from __future__ import annotations

import os
import uuid
from datetime import datetime

from flask import Flask
from sqlalchemy import create_engine, select, text

from app.extensions import db
from app.models import Channel, Operator, Partner
from app.security.scope import platform_scope
from app.services import secrets_box
from tests.integration.test_migrations import empty_database, flask

KEYS = {"operator_secret": "TheirOpSecret123", "data_secret": "TheirDataKey1234", "data_secret_iv": "TheirDataIv12345",
        "sig_secret": "TheirSigSecret12", "our_operator_secret": "OurOpSecret12345",
        "our_data_secret": "OurDataKey123456", "our_data_secret_iv": "OurDataIv1234567",
        "our_sig_secret": "OurSigSecret1234"}


def _raw(table, row_id, columns):
    row = db.session.execute(text(f"SELECT {', '.join(columns)} FROM {table} WHERE id = :id"), {"id": row_id}).one()
    return dict(zip(columns, row, strict=True))


def test_partner_keys_and_app_secret_are_sealed_in_the_database_and_plain_in_the_code(app):
    with app.app_context(), platform_scope("test-sealed"):
        operator = db.session.scalar(select(Operator).order_by(Operator.id))
        tag = uuid.uuid4().hex[:6].upper()
        partner = Partner(operator=operator, name=f"密钥测试{tag}", partner_operator_code=f"S{tag}00"[:9],
                          our_operator_code=operator.code, base_url="http://127.0.0.1:9/evcs/v1.0/", **KEYS)
        channel = Channel(operator=operator, code=f"SEAL{tag}", name="密钥渠道", channel_type="mini_program",
                          identifier=f"wxseal{tag.lower()}", app_secret="0123456789abcdef0123456789abcdef")
        db.session.add_all([partner, channel])
        db.session.commit()
        partner_id, channel_id = partner.id, channel.id
        stored = _raw("ev_partner", partner_id, list(KEYS))
        for column, plain in KEYS.items():
            assert stored[column].startswith("fernet:") and plain not in stored[column], column
            assert secrets_box.unseal(stored[column]) == plain
        assert _raw("ev_channel", channel_id, ["app_secret"])["app_secret"].startswith("fernet:")
        db.session.expire_all()
        partner = db.session.get(Partner, partner_id)
        assert {c: getattr(partner, c) for c in KEYS} == KEYS
        assert db.session.get(Channel, channel_id).app_secret == "0123456789abcdef0123456789abcdef"
        # a key written before sealing existed reads as it is
        db.session.execute(text("UPDATE ev_partner SET sig_secret = 'PlainOldSecret12' WHERE id = :id"),
                           {"id": partner_id})
        db.session.commit()
        db.session.expire_all()
        assert db.session.get(Partner, partner_id).sig_secret == "PlainOldSecret12"
        partner = db.session.get(Partner, partner_id)
        partner.enabled = False                       # keep it out of the pushes of other tests
        db.session.commit()


def test_migration_0015_seals_the_keys_already_there(tmp_path):
    url, info = empty_database(tmp_path)
    env = dict(os.environ, DATABASE_URL=url, INSTANCE_DIR=str(tmp_path), FLASK_APP="app:create_app")
    engine = create_engine(url)
    try:
        up = flask(["db", "upgrade", "0014_coupon_issue"], env)
        assert up.returncode == 0, up.stderr[-3000:]
        now = datetime(2026, 11, 28, 8, 0)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO ev_operator (id, code, name, enabled, created_at, updated_at) "
                              "VALUES (1, 'MA1SEAL01', '密钥运营商', :t, :now, :now)"), {"t": True, "now": now})
            conn.execute(text(
                "INSERT INTO ev_partner (id, operator_id, name, partner_type, partner_operator_code, "
                "our_operator_code, "
                f"{', '.join(KEYS)}, push_enabled, field_spelling, money_field, base_path, status_as_array, enabled, "
                "created_at, updated_at) VALUES (1, 1, '老伙伴', 'platform', 'MA1OLD001', 'MA1SEAL01', "
                f"{', '.join(':' + k for k in KEYS)}, :t, 'sevice', 'ElecMoney', '/evcs/v1.0/', :f, :t, :now, :now)"),
                {**KEYS, "t": True, "f": False, "now": now})
            conn.execute(text(
                "INSERT INTO ev_channel (id, operator_id, code, name, channel_type, rate, app_secret, enabled, "
                "created_at, updated_at) VALUES (1, 1, 'OLDAPP', '老小程序', 'mini_program', 0, "
                "'fedcba9876543210fedcba9876543210', :t, :now, :now)"), {"t": True, "now": now})
        up = flask(["db", "upgrade"], env)
        assert up.returncode == 0, up.stderr[-3000:]
        with engine.connect() as conn:
            partner = dict(conn.execute(text(f"SELECT {', '.join(KEYS)} FROM ev_partner WHERE id = 1"))
                           .mappings().one())
            app_secret = conn.execute(text("SELECT app_secret FROM ev_channel WHERE id = 1")).scalar_one()
        # the migration's key: SECRETS_KEY, else SECRET_KEY (else the one that instance generated)
        key_app = Flask("sealed-check")
        key_app.config["SECRETS_KEY"] = os.environ.get("SECRETS_KEY")
        key_app.config["SECRET_KEY"] = os.environ.get("SECRET_KEY") or (tmp_path / "secret_key").read_text().strip()
        with key_app.app_context():
            assert all(v.startswith("fernet:") for v in partner.values())
            assert {c: secrets_box.unseal(v) for c, v in partner.items()} == KEYS
            assert secrets_box.unseal(app_secret) == "fedcba9876543210fedcba9876543210"
        down = flask(["db", "downgrade", "0014_coupon_issue"], env)
        assert down.returncode == 0, down.stderr[-3000:]
        with engine.connect() as conn:
            assert dict(conn.execute(text(f"SELECT {', '.join(KEYS)} FROM ev_partner WHERE id = 1"))
                        .mappings().one()) == KEYS
    finally:
        engine.dispose()
        if info:
            base, name = info
            admin = create_engine(base, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
