"""Demo marketing on a new install (issue 13 §7): ``flask setup --demo --history-days 2`` in a real ``flask``
process on a fresh database (SQLite under its instance directory, or a fresh PostgreSQL database with
TEST_DATABASE_URL) loads operator A's campaign (electricity 9 折, service 8 折) and the coupons before the
history is replayed, so the replayed orders of A's stations are discounted from the first one, and every demo
member holds coupons issued through app.services.coupons."""
import os
import subprocess
import sys
import uuid
from decimal import Decimal as D
from pathlib import Path

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]


def test_a_new_demo_install_discounts_orders_from_the_first_charge_and_members_hold_coupons(tmp_path):
    base = os.environ.get("TEST_DATABASE_URL")
    dropped = None
    if base:
        name = f"cpms_m_{uuid.uuid4().hex[:10]}"
        admin = create_engine(make_url(base), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = make_url(base).set(database=name).render_as_string(hide_password=False)
        dropped = (base, name)
    else:
        url = f"sqlite:///{tmp_path / 'demo.db'}"
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "ADMIN_PASSWORD", "CPMS_CONFIG", "SECRET_KEY", "DEMO_MARKETING")}
    env.update(INSTANCE_DIR=str(tmp_path), PYTHONUNBUFFERED="1", FLASK_APP="app:create_app", DATABASE_URL=url)
    app = None
    try:
        rv = subprocess.run([sys.executable, "-m", "flask", "setup", "--demo", "--history-days", "2"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=600)
        assert rv.returncode == 0, rv.stdout[-3000:] + rv.stderr[-3000:]
        from app import create_app
        from app.extensions import db
        from app.models import Campaign, ChargeOrder, Coupon, CouponCampaign, Member
        from app.models.operator import Operator

        app = create_app("test", SQLALCHEMY_DATABASE_URI=url, INSTANCE_DIR=str(tmp_path))
        with app.app_context():
            op_a, op_b = db.session.scalars(select(Operator).order_by(Operator.id)).all()[:2]
            [camp] = db.session.scalars(select(Campaign).where(Campaign.operator_id == op_a.id)).all()
            assert (camp.electricity_rate, camp.service_rate, camp.all_stations, camp.enabled) == (
                D("0.9000"), D("0.8000"), True, True)
            assert not db.session.scalars(select(Campaign).where(Campaign.operator_id == op_b.id)).all()
            orders = db.session.scalars(select(ChargeOrder).where(ChargeOrder.status == "settled")
                                        .order_by(ChargeOrder.started_at)).all()
            a_orders = [o for o in orders if o.operator_id == op_a.id]
            assert a_orders and camp.start_at < a_orders[0].started_at
            for o in a_orders:      # every one, the first included: the campaign's 10 % / 20 % at least
                assert o.campaign_id == camp.id, o.order_no
                assert o.discount_electricity >= (o.electricity_fee * D("0.1")).quantize(D("0.0001")) - D("0.0004")
                assert o.discount_service >= (o.service_fee * D("0.2")).quantize(D("0.0001")) - D("0.0004")
                assert o.payable_amount == o.total_amount - o.discount_total and o.discount_total > 0
            assert all(o.campaign_id is None for o in orders if o.operator_id == op_b.id)
            staff = {c.operator_id: c for c in db.session.scalars(
                select(CouponCampaign).where(CouponCampaign.trigger == "manual"))}
            assert staff[op_a.id].last_issued_at is not None and staff[op_b.id].last_issued_at is not None
            for m in db.session.scalars(select(Member).where(Member.member_no.in_([f"{100 + n}" for n in range(12)]))):
                n = db.session.scalar(select(func.count(Coupon.id)).where(
                    Coupon.member_id == m.id, Coupon.campaign_id == staff[m.operator_id].id))
                assert n == (3 if m.operator_id == op_a.id else 1), m.member_no
            codes = db.session.scalars(select(Coupon.code)).all()
            assert len(codes) == len(set(codes)) >= 24
    finally:
        if app is not None:
            from app.extensions import db

            with app.app_context():
                db.engine.dispose()
        if dropped:
            admin = create_engine(make_url(dropped[0]), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{dropped[1]}" WITH (FORCE)'))
            admin.dispose()
