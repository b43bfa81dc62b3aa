"""The money invariants every fault-injection test checks after its fault (issue 8).

- every charging session a pile ran (its transaction serials) has exactly one order;
- each order settles at most once (one ``settled`` event, one ``settle:<id>`` ledger line) and a
  settled order is settled exactly once;
- every wallet equals the sum of its ledger (``Member.balance == sum(WalletEntry.amount)``);
- no unrelated order is touched (a snapshot taken before the fault is unchanged after it).
"""
from __future__ import annotations

from collections import Counter
from decimal import Decimal

from sqlalchemy import func, select

from app.extensions import db
from app.models import ChargeOrder, Member, OrderEvent, WalletEntry

ENDED = ("settled", "failed")
_SNAPSHOT_COLUMNS = ("status", "pay_status", "energy", "total_amount", "payable_amount", "paid_amount",
                     "refunded_amount", "started_at", "ended_at", "settled_at", "abnormal_reason")


def snapshot_orders(app, exclude_ids=()) -> dict:
    """Figures of every settled or failed order now, to prove later that a fault touched none of them.
    Orders other tests left running or awaiting their bill or settlement may still move on their own (their
    start timeout, the stuck-charging check, a queued settlement a worker picks up) and are no one's
    history yet."""
    with app.app_context():
        rows = db.session.execute(select(ChargeOrder)).scalars().all()
        snap = {o.id: tuple(getattr(o, c) for c in _SNAPSHOT_COLUMNS) for o in rows
                if o.id not in set(exclude_ids) and o.status in ENDED}
        db.session.rollback()
        return snap


def assert_untouched(app, snapshot: dict) -> None:
    now = snapshot_orders(app)
    changed = [oid for oid, figures in snapshot.items() if now.get(oid) != figures]
    assert not changed, f"unrelated orders were touched: {changed}"


def assert_wallets_match_ledger(app) -> None:
    with app.app_context():
        sums = dict(db.session.execute(
            select(WalletEntry.member_id, func.coalesce(func.sum(WalletEntry.amount), 0))
            .group_by(WalletEntry.member_id)).all())
        wrong = []
        for member_id, balance in db.session.execute(select(Member.id, Member.balance)).all():
            ledger = Decimal(str(sums.get(member_id, 0)))
            if Decimal(str(balance)) != ledger:
                wrong.append((member_id, balance, ledger))
        db.session.rollback()
    assert not wrong, f"wallet != sum(ledger) for (member, balance, ledger): {wrong}"


def assert_settled_once(app, order_ids=None) -> None:
    """No order has two settlements; with ``order_ids``, each of those is settled exactly once."""
    with app.app_context():
        events = Counter(db.session.execute(
            select(OrderEvent.order_id).where(OrderEvent.event == "settled")).scalars().all())
        keys = Counter(db.session.execute(
            select(WalletEntry.idempotency_key).where(WalletEntry.idempotency_key.like("settle:%"))).scalars().all())
        twice = {oid: n for oid, n in events.items() if n > 1}
        assert not twice, f"orders settled more than once: {twice}"
        assert all(n == 1 for n in keys.values()), f"settlement ledger lines duplicated: {keys}"
        if order_ids is not None:
            for oid in order_ids:
                order = db.session.get(ChargeOrder, oid)
                assert order is not None and order.status == "settled", \
                    f"order {oid} is {getattr(order, 'status', None)}, not settled"
                assert events[oid] == 1, f"order {oid} has {events[oid]} settled events"
        db.session.rollback()


def orders_for_serials(app, serials) -> dict:
    """serial -> order id, asserting each serial has exactly one order."""
    serials = list(serials)
    with app.app_context():
        rows = db.session.execute(
            select(ChargeOrder.serial, ChargeOrder.id).where(ChargeOrder.serial.in_(serials))).all()
        db.session.rollback()
    counts = Counter(s for s, _ in rows)
    missing = [s for s in serials if counts[s] == 0]
    assert not missing, f"sessions the pile ran without an order: {missing}"
    assert all(n == 1 for n in counts.values()), f"sessions with more than one order: {counts}"
    return {s: oid for s, oid in rows}


def assert_money_invariants(app, *, serials=(), settled_serials=None, untouched=None) -> dict:
    """All invariants at once; returns serial -> order id. ``settled_serials``: sessions whose orders
    must be settled (default: all of ``serials``)."""
    by_serial = orders_for_serials(app, serials) if serials else {}
    must_settle = [by_serial[s] for s in (serials if settled_serials is None else settled_serials)]
    assert_settled_once(app, must_settle)
    assert_wallets_match_ledger(app)
    if untouched is not None:
        assert_untouched(app, untouched)
    return by_serial
