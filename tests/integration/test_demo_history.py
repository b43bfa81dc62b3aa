"""The demo history (``flask setup --demo --history-days N``, issue 12 §1): a real ``flask`` process on a
fresh database of its own (SQLite under its instance directory, or a fresh PostgreSQL database when
TEST_DATABASE_URL is set) and its own embedded Redis. Every figure comes from the platform's own code:
each order's money is the pricing service's result for its meter samples and periods, every order is
settled (the wallet debited by the settlement service), the daily statistics are recomputed, and the
times are the past's, not the moment the command ran."""
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
DAYS = 4


def _cli(instance, database_url, *args):
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "ADMIN_PASSWORD", "CPMS_CONFIG", "SECRET_KEY")}
    env.update(INSTANCE_DIR=str(instance), PYTHONUNBUFFERED="1", FLASK_APP="app:create_app",
               DATABASE_URL=database_url)
    rv = subprocess.run([sys.executable, "-m", "flask", *args], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=600)
    assert rv.returncode == 0, rv.stdout[-3000:] + rv.stderr[-3000:]
    return rv.stdout


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """(app bound to the history's database, the setup command's output, its instance directory)."""
    instance = tmp_path_factory.mktemp("history")
    base = os.environ.get("TEST_DATABASE_URL")
    dropped = None
    if base:
        name = f"cpms_h_{uuid.uuid4().hex[:10]}"
        admin = create_engine(make_url(base), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = make_url(base).set(database=name).render_as_string(hide_password=False)
        dropped = (base, name)
    else:
        url = f"sqlite:///{instance / 'history.db'}"
    out = _cli(instance, url, "setup", "--demo", "--history-days", str(DAYS))
    from app import create_app

    app = create_app("test", SQLALCHEMY_DATABASE_URI=url, INSTANCE_DIR=str(instance))
    yield app, out, instance, url
    from app.extensions import db

    with app.app_context():
        db.engine.dispose()
    if dropped:
        admin = create_engine(make_url(dropped[0]), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{dropped[1]}" WITH (FORCE)'))
        admin.dispose()


def test_every_history_order_is_priced_by_the_pricing_service_and_settled(history):
    from app.extensions import db
    from app.models import ChargeOrder, MeterSample, PileBill, WalletEntry
    from app.services import clock, pricing

    app, out, _, _ = history
    assert "Demo history: 4 days" in out, out
    with app.app_context():
        orders = db.session.scalars(select(ChargeOrder).order_by(ChargeOrder.id)).all()
        assert len(orders) >= 30
        now = clock.utcnow()
        first = clock.day_bounds_utc(clock.local_today(now) - timedelta(days=DAYS))[0]
        methods = set()
        for order in orders:
            methods.add(order.start_method)
            assert order.status == "settled", (order.order_no, order.status, order.abnormal_reason)
            assert first <= order.started_at < order.ended_at < order.settled_at < now
            # the figures are the pricing service's for the order's samples and the pile's bill
            breakdown, comparison, bill, problem = pricing.price_order(order)
            assert problem is None and comparison is not None and comparison.ok, comparison
            assert bill is not None and bill.order_id == order.id and bill.status == "matched"
            assert (order.energy, order.electricity_fee, order.service_fee, order.total_amount) == (
                breakdown.energy, breakdown.electricity_fee, breakdown.service_fee, breakdown.total_amount)
            assert [(p.level, p.energy, p.electricity_fee, p.service_fee) for p in order.periods] == [
                (p.level, p.energy, p.electricity_fee, p.service_fee) for p in breakdown.periods]
            assert order.total_amount == sum((p.electricity_fee + p.service_fee for p in order.periods), Decimal(0))
            assert order.total_amount > 0 and order.energy > 0
            assert db.session.scalar(select(func.count()).select_from(MeterSample)
                                     .where(MeterSample.order_id == order.id)) >= 2
            # the money moved through the settlement service: the member's debit is the payable amount
            debit = db.session.scalar(select(WalletEntry).where(WalletEntry.idempotency_key == f"settle:{order.id}"))
            if order.member_id is not None:
                assert debit is not None and debit.amount == -order.payable_amount
                assert order.paid_amount == order.payable_amount and order.pay_status == "paid"
            else:
                assert debit is None and order.pay_type == "partner"
            # the events carry the past's times (the platform clock replayed), not the command's
            events = {e.event: e.created_at for e in order.events}
            assert {"created", "started", "bill_received", "priced", "settled"} <= events.keys()
            assert events["settled"] - order.ended_at < timedelta(minutes=1)
        assert {"app", "card", "partner"} <= methods
        assert db.session.scalar(select(func.count()).select_from(PileBill)) == len(orders)
        assert all(Decimal(m) >= 0 for m in db.session.scalars(text("SELECT balance FROM ev_member")))


def test_history_has_occupancy_alarms_status_changes_and_statistics(history):
    from app.extensions import db
    from app.models import Alarm, ChargeOrder, ConnectorStatusLog, DailyStationStat, OccupancyOrder
    from app.services import clock

    app, out, _, _ = history
    with app.app_context():
        occupancy = db.session.scalars(select(OccupancyOrder)).all()
        assert occupancy and all(o.ended_at is not None and o.amount > 0 for o in occupancy)
        assert all(o.charge_order.ended_at == o.started_at for o in occupancy)
        assert db.session.scalar(select(func.count()).select_from(ConnectorStatusLog)) > 50
        alarms = db.session.scalars(select(Alarm)).all()
        assert alarms and all(a.ended_at is not None and a.ended_at > a.started_at for a in alarms)
        # the daily statistics were recomputed for the whole range and agree with the orders
        today = clock.local_today()
        stats = db.session.execute(select(func.min(DailyStationStat.day), func.sum(DailyStationStat.order_count),
                                          func.sum(DailyStationStat.total_amount),
                                          func.sum(DailyStationStat.energy))).one()
        orders = db.session.execute(select(func.count(), func.sum(ChargeOrder.total_amount),
                                           func.sum(ChargeOrder.energy))).one()
        assert stats[0] == today - timedelta(days=DAYS)
        assert (stats[1], Decimal(stats[2]), Decimal(stats[3])) == (orders[0], Decimal(orders[1]), Decimal(orders[2]))


def test_history_is_generated_once(history):
    from app.extensions import db
    from app.models import ChargeOrder

    app, _, instance, url = history
    with app.app_context():
        before = db.session.scalar(select(func.count()).select_from(ChargeOrder))
    out = _cli(instance, url, "setup", "--demo", "--history-days", str(DAYS))
    assert "orders exist already, none generated" in out
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ChargeOrder)) == before
