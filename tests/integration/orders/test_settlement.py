"""Pricing of stored orders and exactly-once settlement (real database, real Redis, real RQ worker).

Orders are made by the small factory below: demo operator MA1NJ0001, a connector of a station with the
尖峰平谷 template, a fresh member with a known balance, MeterSample rows, the pile's figures (0x3B).
Default session: Beijing 09:30-10:30, 20 kWh linear → flat 10 kWh + peak 10 kWh = 12.20 + 17.50 = 29.70.
"""
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.extensions import db, get_redis
from app.models import (
    ChargeOrder,
    Connector,
    Member,
    MeterSample,
    OrderEvent,
    Payment,
    PaymentGateway,
    PileBill,
    Station,
    WalletEntry,
)
from app.models.operator import Operator
from app.models.station import PriceTemplate

D = Decimal
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


# --- factory -------------------------------------------------------------------------------------------------


def bj(text):
    return datetime.strptime(text, "%Y-%m-%d %H:%M") - timedelta(hours=8)


def default_samples(day="2024-03-11"):
    start = bj(f"{day} 09:30")
    return [(start + timedelta(minutes=m), D(m) / 3) for m in range(0, 61, 15)]   # 20 kW: 0, 5, 10, 15, 20 kWh


def new_member(balance="100"):
    from app.services.wallet import post_entry

    op = db.session.scalar(select(Operator).where(Operator.code == "MA1NJ0001"))
    m = Member(operator_id=op.id, member_no=f"T{uuid.uuid4().hex[:12]}", nickname="test", status="active")
    db.session.add(m)
    db.session.flush()
    if D(balance):
        post_entry(m.id, D(balance), "recharge", idempotency_key=f"test:recharge:{m.member_no}")
    db.session.commit()
    return m.id


def tou_connector(occupancy=False):
    return db.session.scalars(
        select(Connector).join(Station, Connector.station_id == Station.id)
        .join(PriceTemplate, Station.price_template_id == PriceTemplate.id)
        .join(Operator, Station.operator_id == Operator.id)
        .where(Operator.code == "MA1NJ0001", PriceTemplate.code == "TPL101",
               Station.occupancy_enabled.is_(occupancy)).order_by(Connector.id)).first()


def make_order(member_id, samples=None, pile_amount="29.7000", pile_energy="20.0000", status="stopping",
               price=True, connector=None, bill=True):
    from app.services import order_numbers, pricing

    samples = samples if samples is not None else default_samples()
    conn = connector or tou_connector()
    start, end = samples[0][0], samples[-1][0]
    order = ChargeOrder(
        order_no=order_numbers.new_order_no(start), serial=order_numbers.new_serial(conn.pile.code, conn.gun_no, start),
        operator_id=conn.operator_id, station_id=conn.station_id, pile_id=conn.pile_id, connector_id=conn.id,
        member_id=member_id, start_method="app", status=status, started_at=start, ended_at=end,
        price_template_id=conn.station.price_template_id, tariff_snapshot=pricing.snapshot(conn.station.price_template),
        pile_amount=D(pile_amount) if pile_amount is not None else None,
        pile_energy=D(pile_energy) if pile_energy is not None else None)
    db.session.add(order)
    db.session.flush()
    db.session.add_all(MeterSample(order_id=order.id, at=at, energy=e.quantize(D("0.0001")), power=D("20"))
                       for at, e in samples)
    if bill and pile_amount is not None:
        db.session.add(PileBill(operator_id=order.operator_id, serial=order.serial, pile_code=conn.pile.code,
                                gun_no=conn.gun_no, raw_hex="00", order_id=order.id, status="matched",
                                started_at=start, ended_at=end, total_energy=order.pile_energy,
                                total_amount=order.pile_amount))
    if price:
        pricing.reprice_order(order)
    db.session.commit()
    return order.id


def fresh(model, row_id):
    db.session.expire_all()
    return db.session.get(model, row_id)


def entries(order_id):
    db.session.expire_all()
    return db.session.scalars(select(WalletEntry).where(WalletEntry.idempotency_key == f"settle:{order_id}")).all()


def balance(member_id):
    db.session.expire_all()
    return db.session.get(Member, member_id).balance


def run_threads(app, fn, args):
    results, errors = [], []
    barrier = threading.Barrier(len(args))

    def target(a):
        with app.app_context():
            try:
                barrier.wait(timeout=30)
                results.append(fn(a))
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=target, args=(a,)) for a in args]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return results


# --- pricing of stored orders ------------------------------------------------------------------------------


def test_agreeing_bill_finishes_the_order(app):
    with app.app_context():
        oid = make_order(new_member(), pile_amount="29.7300")        # 0.03 off: within 0.05
        order = fresh(ChargeOrder, oid)
        assert order.status == "finished" and not order.needs_review
        assert [(p.level, p.energy, p.electricity_fee, p.service_fee) for p in order.periods] == [
            ("flat", D("10.0000"), D("6.2000"), D("6.0000")), ("peak", D("10.0000"), D("10.5000"), D("7.0000"))]
        assert (order.energy, order.electricity_fee, order.service_fee, order.total_amount) == (
            D("20.0000"), D("16.7000"), D("13.0000"), D("29.7000"))


def test_disagreeing_bill_is_flagged_abnormal(app):
    with app.app_context():
        oid = make_order(new_member(), pile_amount="31.0000")
        order = fresh(ChargeOrder, oid)
        assert order.status == "abnormal" and order.needs_review
        assert "Amount differs" in order.abnormal_reason
        assert order.total_amount == D("29.7000")                   # the platform figure stands
        ev = db.session.scalars(select(OrderEvent).where(OrderEvent.order_id == oid)).all()
        assert [e.event for e in ev] == ["marked_abnormal"] and ev[0].to_status == "abnormal"


def test_bill_energy_far_above_the_live_readings_is_flagged(app):
    with app.app_context():
        oid = make_order(new_member(), pile_amount="60.0000", pile_energy="40.0000")
        order = fresh(ChargeOrder, oid)
        assert order.status == "abnormal" and "exceeds its last realtime reading" in order.abnormal_reason


def test_only_the_bill_prices_by_level(app):
    with app.app_context():
        mid = new_member()
        oid = make_order(mid, samples=default_samples(), price=False)
        db.session.execute(MeterSample.__table__.delete().where(MeterSample.order_id == oid))
        bill = db.session.scalar(select(PileBill).where(PileBill.order_id == oid))
        bill.parsed = {"sharp_energy": "0", "peak_energy": "10.0000", "flat_energy": "10.0000", "valley_energy": "0"}
        db.session.commit()
        from app.services.pricing import reprice_order

        result = reprice_order(fresh(ChargeOrder, oid))
        db.session.commit()
        assert result.ok and result.breakdown.source == "pile_levels"
        assert fresh(ChargeOrder, oid).total_amount == D("29.7000")


# --- settlement --------------------------------------------------------------------------------------------


def test_settlement_books_exactly_one_debit(app):
    from app.services.settlement import settle_order

    with app.app_context():
        mid = new_member("100")
        oid = make_order(mid)
        result = settle_order(oid)
        assert not result.already and result.payable_amount == D("29.7000") and result.pay_status == "paid"
        order = fresh(ChargeOrder, oid)
        assert (order.status, order.pay_status, order.pay_type) == ("settled", "paid", "wallet")
        assert order.paid_amount == order.payable_amount == D("29.7000") and order.settled_at and order.paid_at
        [entry] = entries(oid)
        assert (entry.amount, entry.kind, entry.order_id) == (D("-29.7000"), "consume", oid)
        assert balance(mid) == D("70.3000") == entry.balance_after
        # stopping → finished (pricing) and finished → settled: one event per move
        assert [(e.event, e.from_status, e.to_status) for e in order.events] == [
            ("priced", "stopping", "finished"), ("settled", "finished", "settled")]

        again = settle_order(oid)                                   # sequential re-run: no-op
        assert again.already and again.wallet_entry_id == entry.id
        assert len(entries(oid)) == 1 and balance(mid) == D("70.3000")


def test_only_finished_orders_settle(app):
    from app.services.settlement import NotSettleable, settle_order
    from app.tasks.settlement import settle_order_job

    with app.app_context():
        mid = new_member("100")
        oid = make_order(mid, pile_amount="35.0000")               # abnormal
        with pytest.raises(NotSettleable, match="only finished"):
            settle_order(oid)
        assert settle_order_job(oid)["skipped"]
        assert entries(oid) == [] and balance(mid) == D("100.0000")


def test_concurrent_runs_of_one_order_book_one_debit(app):
    from app.services.settlement import settle_order

    with app.app_context():
        mid = new_member("100")
        oid = make_order(mid)
    results = run_threads(app, lambda _: settle_order(oid), range(4))
    with app.app_context():
        assert sorted(r.already for r in results) == [False, True, True, True]
        assert len(entries(oid)) == 1 and balance(mid) == D("70.3000")
        assert len([e for e in fresh(ChargeOrder, oid).events if e.event == "settled"]) == 1


def test_insufficient_balance_goes_into_arrears(app):
    from app.services.settlement import settle_order

    with app.app_context():
        mid = new_member("10")
        oid = make_order(mid)
        result = settle_order(oid)
        assert result.pay_status == "paid" and result.paid_amount == D("29.7000")
        assert balance(mid) == D("-19.7000")
        [ev] = [e for e in fresh(ChargeOrder, oid).events if e.event == "settled"]
        assert ev.detail["arrears"] == "19.7000"


def test_partner_order_settles_without_wallet(app):
    from app.services.settlement import settle_order

    with app.app_context():
        oid = make_order(None)
        result = settle_order(oid)
        assert (result.pay_type, result.pay_status, result.paid_amount) == ("partner", "paid", D("29.7000"))
        assert entries(oid) == []


def test_prepaid_order_records_the_refund_of_the_unused_amount(app):
    from app.services.settlement import settle_order

    with app.app_context():
        mid = new_member("5")
        oid = make_order(mid)
        order = fresh(ChargeOrder, oid)
        order.prepaid_amount = D("50.0000")
        gw = db.session.scalar(select(PaymentGateway).where(PaymentGateway.code == "wechat"))
        pay = Payment(payment_no=f"P{uuid.uuid4().hex[:20]}", gateway_id=gw.id, member_id=mid, purpose="order",
                      order_id=oid, operator_id=order.operator_id, amount=D("50.0000"), status="succeeded")
        db.session.add(pay)
        db.session.commit()
        result = settle_order(oid)
        assert (result.pay_status, result.pay_type, result.paid_amount, result.refunded_amount) == (
            "partial_refund", "wechat", D("29.7000"), D("20.3000"))
        pay = fresh(Payment, pay.id)
        assert (pay.status, pay.refunded_amount) == ("refunding", D("20.3000"))
        assert entries(oid) == [] and balance(mid) == D("5.0000")          # no wallet movement
        refund = [e for e in fresh(ChargeOrder, oid).events if e.event == "refund"]
        assert refund[0].detail["state"] == "due" and refund[0].detail["amount"] == "20.3000"


def test_many_concurrent_settlements_of_one_member_keep_the_balance_exact(app):
    """50 orders of one member settled by 50 threads at once (PostgreSQL: row locks); SQLite runs the
    same with 8 threads (its write lock + the idempotency guard)."""
    from app.services.settlement import settle_order
    from app.services.wallet import ledger_balance

    with app.app_context():
        n = 50 if db.engine.dialect.name == "postgresql" else 8
        mid = new_member("2000")
        ids = [make_order(mid) for _ in range(n)]
    results = run_threads(app, settle_order, ids)
    with app.app_context():
        assert len(results) == n and not any(r.already for r in results)
        expected = D("2000.0000") - n * D("29.7000")
        assert balance(mid) == expected == ledger_balance(mid)
        count = db.session.scalar(select(func.count()).select_from(WalletEntry).where(
            WalletEntry.member_id == mid, WalletEntry.kind == "consume"))
        assert count == n
        after = sorted(db.session.scalars(select(WalletEntry.balance_after).where(
            WalletEntry.member_id == mid, WalletEntry.kind == "consume")))
        assert after == sorted(D("2000.0000") - k * D("29.7000") for k in range(1, n + 1))   # a serial chain


# --- RQ -------------------------------------------------------------------------------------------------------

WORKER = (
    "from app.extensions import get_redis\n"
    "from app.tasks.worker import AppContextWorker, get_app\n"
    "app = get_app()\n"
    "with app.app_context():\n"
    "    conn = get_redis()\n"
    "AppContextWorker(['settlement'], connection=conn).work(burst=True)\n"
)


def start_worker(app, **extra_env):
    env = dict(os.environ, CPMS_CONFIG="test", REDIS_URL=app.config["REDIS_URL"],
               INSTANCE_DIR=app.config["INSTANCE_DIR"], DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
               **extra_env)
    return subprocess.Popen([sys.executable, "-c", WORKER], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)


def test_enqueue_collapses_duplicates(app):
    from rq import Queue

    from app.services.settlement import enqueue_settlement

    with app.app_context():
        redis = get_redis()
        job = enqueue_settlement(987654321)
        again = enqueue_settlement(987654321)
        assert job.id == again.id == "settle-987654321"
        assert job.retries_left == 3 and job.retry_intervals == [5, 30, 120]
        q = Queue("settlement", connection=redis)
        assert q.job_ids.count("settle-987654321") == 1
        q.remove(job.id)
        job.delete()


def test_worker_killed_mid_job_then_retried_settles_once(app):
    from rq import Queue
    from rq.job import Job
    from rq.registry import StartedJobRegistry

    from app.services.settlement import PAUSE_ENV, enqueue_settlement

    with app.app_context():
        redis = get_redis()
        mid = new_member("100")
        oid = make_order(mid)
        pause = f"test:settle-pause:{uuid.uuid4().hex}"
        redis.set(pause, "1", ex=300)
        job = enqueue_settlement(oid)
        worker = start_worker(app, **{PAUSE_ENV: pause})
        deadline = time.monotonic() + 90
        while not redis.exists(f"{pause}:reached"):
            assert worker.poll() is None, worker.stdout.read().decode(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "the worker never reached the pause point"
            time.sleep(0.05)
        # the job is inside its transaction: debit booked, not committed. Kill the worker, then its work horse
        # (RQ forks the horse into its own session, so the worker's process group does not include it).
        horse = int(redis.get(f"{pause}:reached"))
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(30)
        try:
            os.kill(horse, signal.SIGKILL)
        except ProcessLookupError:       # it already died with its worker (PR_SET_PDEATHSIG, app/tasks/worker.py)
            pass
        for _ in range(200):
            try:
                os.kill(horse, 0)
            except ProcessLookupError:
                break
            try:
                os.waitpid(horse, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.05)
        else:
            raise AssertionError("the work horse survived SIGKILL")
        redis.delete(pause)
        assert fresh(ChargeOrder, oid).status == "finished"
        assert entries(oid) == [] and balance(mid) == D("100.0000")

        # RQ finds the abandoned job (what a worker's registry cleanup does once the job's heartbeat expired)
        # and retries it under its Retry policy: scheduled in 5 s; requeue it now instead of waiting.
        q = Queue("settlement", connection=redis)
        StartedJobRegistry(queue=q).cleanup(time.time() + 3600)
        job = Job.fetch(job.id, connection=redis)
        assert job.get_status() == "scheduled" and job.retries_left == 2
        q.scheduled_job_registry.requeue(job)
        worker = start_worker(app)
        out = worker.communicate(timeout=120)[0].decode(errors="replace")
        assert worker.returncode == 0, out[-3000:]

        job = Job.fetch(job.id, connection=redis)
        assert job.get_status() == "finished", out[-3000:]
        assert job.return_value()["status"] == "settled"
        order = fresh(ChargeOrder, oid)
        assert order.status == "settled"
        assert len(entries(oid)) == 1 and balance(mid) == D("70.3000")
        assert len([e for e in order.events if e.event == "settled"]) == 1
