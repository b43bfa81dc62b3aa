"""Occupancy (占位): a finished session's car keeps the space (gun plugged, or the ground lock /
parking sensor reports the space occupied) beyond the station's free minutes.

Rule (per station, snapshotted on the occupancy order): ``occupancy_enabled``, ``occupancy_free_minutes``,
``occupancy_price`` (yuan per unit, 5 dp), ``occupancy_unit`` (minute | hour), ``occupancy_cap`` (yuan
per occupancy order; NULL = none).

Fee (:func:`occupancy_fee`) — occupation starts when charging ended and ends when the space is freed:
- duration minutes = total time rounded **up** to whole minutes (a started minute counts);
- billable minutes = duration − free minutes (never below 0);
- units = billable minutes (per minute) or billable minutes / 60 rounded **up** (per started hour);
- fee = units × price, rounded half up to 4 dp once, then capped at the cap.
The occupancy order is created only once the free minutes are exceeded (so freeing the space within
them leaves no order); its ``started_at`` is the end of charging and ``duration_minutes`` the whole
occupation (free minutes included), as the manual's 占位时长 shows.

Pending state lives in **Redis** (the gateway hooks run per 0x13 frame and must be cheap):
- ``cpms:occupancy:seen:{connector_id}`` hash: the last plug / park state reported for the
  connector and when (written by every :func:`on_connector_state` call; kept 2 days);
- ``cpms:occupancy:state:{connector_id}`` hash: the finished session being watched (charge order id,
  when charging ended, rule snapshot, current plugged/parked, occupancy order id once created);
- ``cpms:occupancy:pending`` set: connector ids with a state (what :func:`accrue` scans).
If Redis loses them, pending occupations are lost (the customer is not charged); orders already
created live in the database. Database transitions (create, update, finish) lock the charge order row,
so the gateway hook and the accrual job never create two occupancy orders for one session.

Transactions: no function here rolls back a transaction it did not open. Each database step runs in a
savepoint (``session.begin_nested()``): a step that fails undoes only itself and raises. The public
entry points (:func:`end_occupancy`, :func:`settle_occupancy`, :func:`accrue`, the hooks) are units of
work of their own and commit; call them outside a unit of work of yours (the charging flow calls
:func:`on_session_started` after the new order is committed).

Time is always passed in (``at_utc`` / ``now``, naive UTC) so tests can compress time.
Settlement: like a charge — member wallet debit of the fee with idempotency key
``occupancy:{occupancy_order.id}`` (arrears allowed, kind ``occupancy``); no member → the order stays
``finished`` / ``unpaid`` with pay_type ``partner`` (collected through the partner, or waived by staff).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions import db, get_redis
from app.models import ChargeOrder, OccupancyOrder
from app.models.base import utcnow
from app.services import wallet
from app.services.money import q_amount, q_price

log = logging.getLogger(__name__)

PENDING_KEY = "cpms:occupancy:pending"
SEEN_TTL = 2 * 24 * 3600
# a gateway reports a gun's plug state when it changes, and again after this long (keeps the seen hash alive)
SEEN_REFRESH_SECONDS = 600
ZERO = Decimal("0.0000")


def state_key(connector_id) -> str:
    return f"cpms:occupancy:state:{connector_id}"


def seen_key(connector_id) -> str:
    return f"cpms:occupancy:seen:{connector_id}"


def forget_connectors(connector_ids) -> None:
    """Drop the plug and occupation state of deleted connectors (a new connector may be given the same
    id: SQLite hands out the highest id again after a delete)."""
    ids = [str(i) for i in connector_ids]
    if not ids:
        return
    redis = get_redis()
    pipe = redis.pipeline()
    pipe.delete(*[state_key(i) for i in ids], *[seen_key(i) for i in ids])
    pipe.srem(PENDING_KEY, *ids)
    pipe.execute()


_DELETED_KEY = "cpms_deleted_connectors"


def _collect_deleted(session, _flush_context):
    from app.models import Connector

    ids = [obj.id for obj in session.deleted if isinstance(obj, Connector) and obj.id is not None]
    if ids:
        session.info.setdefault(_DELETED_KEY, []).extend(ids)


def _forget_deleted(session):
    ids = session.info.pop(_DELETED_KEY, None)
    if ids:
        try:
            forget_connectors(ids)
        except Exception:  # the delete is committed; stale state only expires later
            log.exception("could not drop the Redis state of deleted connectors %s", ids)


def _undo_collected(session, previous_transaction):
    if previous_transaction.parent is None:
        session.info.pop(_DELETED_KEY, None)


def install_listeners():
    """Every Session: connectors deleted and committed (admin, REST, a pile's cascade) -> their Redis
    state dropped."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    if not event.contains(Session, "after_flush", _collect_deleted):
        event.listen(Session, "after_flush", _collect_deleted)
        event.listen(Session, "after_commit", _forget_deleted)
        event.listen(Session, "after_soft_rollback", _undo_collected)


def _iso(value: datetime) -> str:
    return value.isoformat()


def _dt(text) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.decode() if isinstance(text, bytes) else text)


def _decode(raw: dict) -> dict:
    return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()}


def _flag(value: bool | None) -> str | None:
    return None if value is None else ("1" if value else "0")


def _occupied(state: dict) -> bool:
    return state.get("plugged", "1") == "1" or state.get("parked") == "1"


@dataclass
class Fee:
    duration_minutes: int
    billable_minutes: int
    units: int
    amount: Decimal


def occupancy_fee(started_at: datetime, ended_at: datetime, free_minutes: int, price, unit: str, cap=None) -> Fee:
    """Fee of an occupation from ``started_at`` (end of charging) to ``ended_at`` (see module doc)."""
    micros = max(0, (ended_at - started_at) // timedelta(microseconds=1))
    duration = -(-micros // 60_000_000)
    billable = max(0, duration - int(free_minutes or 0))
    units = billable if unit != "hour" else -(-billable // 60)
    amount = q_amount(units * q_price(price or 0))
    if cap is not None:
        amount = min(amount, q_amount(cap))
    return Fee(duration, billable, units, amount)


def _rule(state: dict):
    cap = state.get("cap")
    return int(state.get("free_minutes") or 0), Decimal(state.get("price") or "0"), state.get("unit") or "minute", \
        (Decimal(cap) if cap not in (None, "") else None)


# --- hooks called by the charging flow / gateway ---------------------------------------------------------


def on_session_finished(order, now: datetime | None = None) -> bool:
    """Watch the connector of a finished session for occupancy. Returns True when watching.

    Idempotent per order. The last plug/park state seen after the end of charging (the bill can come
    after the driver already unplugged) is taken into account."""
    station = order.station
    redis = get_redis()
    ended = order.ended_at or now or utcnow()
    previous = _decode(redis.hgetall(state_key(order.connector_id)))
    if previous.get("charge_order_id") == str(order.id):
        return True
    if previous:               # an older session on this connector: its occupation ended when this one began
        end_occupancy(order.connector_id, order.started_at or ended)
    if station is None or not station.occupancy_enabled:
        return False
    state = {"charge_order_id": str(order.id), "ended_at": _iso(ended), "at": _iso(ended), "plugged": "1",
             "parked": "", "free_minutes": str(int(station.occupancy_free_minutes or 0)),
             "price": str(q_price(station.occupancy_price or 0)), "unit": station.occupancy_unit or "minute",
             "cap": str(q_amount(station.occupancy_cap)) if station.occupancy_cap is not None else ""}
    seen = _decode(redis.hgetall(seen_key(order.connector_id)))
    seen_at = _dt(seen.get("at"))
    if seen_at is not None and seen_at >= ended:
        state.update({k: seen[k] for k in ("plugged", "parked") if seen.get(k) not in (None, "")})
        state["at"] = _iso(seen_at)
    pipe = redis.pipeline()
    pipe.delete(state_key(order.connector_id))
    pipe.hset(state_key(order.connector_id), mapping=state)
    pipe.expire(state_key(order.connector_id), _max_hours() * 3600 + 3600)
    pipe.sadd(PENDING_KEY, str(order.connector_id))
    pipe.execute()
    if not _occupied(state):
        end_occupancy(order.connector_id, _dt(state["at"]))
        return False
    return True


def on_connector_state(connector_id: int, plugged: bool | None, parked: bool | None, at_utc: datetime):
    """A report of the connector's plug (0x13) and/or space (0x61 ground lock) state; None = not reported.

    One Redis round trip unless a finished session is being watched on the connector. When the space
    is freed the occupation ends (order finished and settled). Returns the OccupancyOrder if one ended."""
    redis = get_redis()
    fields = {"at": _iso(at_utc)}
    for name, value in (("plugged", _flag(plugged)), ("parked", _flag(parked))):
        if value is not None:
            fields[name] = value
    pipe = redis.pipeline(transaction=False)
    pipe.hset(seen_key(connector_id), mapping=fields)
    pipe.expire(seen_key(connector_id), SEEN_TTL)
    pipe.sismember(PENDING_KEY, str(connector_id))
    watched = pipe.execute()[-1]
    if not watched:
        return None
    state = _decode(redis.hgetall(state_key(connector_id)))
    if not state:
        redis.srem(PENDING_KEY, str(connector_id))
        return None
    last = _dt(state.get("at"))
    if last is not None and at_utc < last:      # out of order: an older report changes nothing
        return None
    redis.hset(state_key(connector_id), mapping=fields)
    state.update(fields)
    if not _occupied(state):
        return end_occupancy(connector_id, at_utc)
    return None


def on_session_started(connector_id: int, at_utc: datetime, session=None):
    """A new session on the connector ends the previous session's occupation. A unit of work of its own:
    call it after the new order is committed (it commits, and never rolls back the caller's work)."""
    if get_redis().sismember(PENDING_KEY, str(connector_id)):
        return end_occupancy(connector_id, at_utc, session)
    return None


# --- database transitions -----------------------------------------------------------------------------------


def _max_hours() -> int:
    try:
        from flask import current_app

        return int(current_app.config.get("OCCUPANCY_MAX_HOURS", 24))
    except RuntimeError:
        return 24


def _upsert(connector_id, state: dict, until: datetime, *, finish: bool, session):
    """Create or update the occupancy order of the watched session up to ``until``, in a savepoint of
    the session's transaction (no commit, no rollback of anything but the savepoint).
    Returns the order, or None while within the free minutes (or the session is gone)."""
    order_id = int(state["charge_order_id"])
    ended = _dt(state["ended_at"])
    free, price, unit, cap = _rule(state)
    fee = occupancy_fee(ended, until, free, price, unit, cap)
    with session.begin_nested():
        charge = wallet.lock_row(session, ChargeOrder, order_id)
        if charge is None:
            return None
        occ = session.scalar(select(OccupancyOrder).where(OccupancyOrder.charge_order_id == order_id)
                             .execution_options(populate_existing=True))
        if occ is None:
            if fee.billable_minutes <= 0:
                return None
            from app.services.order_numbers import new_order_no

            occ = OccupancyOrder(
                order_no=new_order_no(until, session=session), operator_id=charge.operator_id,
                charge_order_id=charge.id, channel_id=charge.channel_id, station_id=charge.station_id,
                pile_id=charge.pile_id, connector_id=charge.connector_id, member_id=charge.member_id,
                start_method=charge.start_method, status="ongoing", started_at=ended,
                free_minutes=free, price=price, unit=unit, cap=cap)
            session.add(occ)
        if occ.status == "ongoing":
            occ.duration_minutes = fee.duration_minutes
            occ.amount = fee.amount
            occ.settlement_amount = fee.amount
            if finish:
                occ.ended_at = until
                occ.status = "finished"
    return occ


def end_occupancy(connector_id: int, at_utc: datetime, session=None):
    """The space was freed at ``at_utc``: finish (and settle) the occupancy order, stop watching.
    A unit of work: commits what it wrote; a failure undoes its own savepoint only and raises."""
    redis = get_redis()
    session = session or db.session
    state = _decode(redis.hgetall(state_key(connector_id)))
    occ = None
    if state.get("charge_order_id"):
        occ = _upsert(connector_id, state, max(at_utc, _dt(state["ended_at"])), finish=True, session=session)
        session.commit()
        if occ is not None:
            settle_occupancy(occ.id, session=session)
    pipe = redis.pipeline()
    pipe.delete(state_key(connector_id))
    pipe.srem(PENDING_KEY, str(connector_id))
    pipe.execute()
    return occ


def accrue(now: datetime | None = None, session=None) -> dict:
    """Periodic job: start/update occupancy orders from the last known state of every watched connector
    (works without new frames); end the ones freed or older than OCCUPANCY_MAX_HOURS."""
    redis = get_redis()
    session = session or db.session
    now = now or utcnow()
    counts = {"watched": 0, "ongoing": 0, "ended": 0, "errors": 0}
    for raw in redis.smembers(PENDING_KEY):
        connector_id = int(raw)
        counts["watched"] += 1
        try:
            state = _decode(redis.hgetall(state_key(connector_id)))
            if not state.get("charge_order_id"):
                redis.srem(PENDING_KEY, str(connector_id))
                continue
            ended = _dt(state["ended_at"])
            limit = ended + timedelta(hours=_max_hours())
            if not _occupied(state):
                end_occupancy(connector_id, _dt(state.get("at")) or now, session)
                counts["ended"] += 1
            elif now >= limit:
                end_occupancy(connector_id, limit, session)
                counts["ended"] += 1
            elif _upsert(connector_id, state, now, finish=False, session=session) is not None:
                session.commit()
                counts["ongoing"] += 1
        except Exception:          # the failed step undid its own savepoint; the next connector goes on
            counts["errors"] += 1
            log.exception("occupancy accrual failed for connector %s", connector_id)
            if not session.is_active:      # a failed commit left a dead transaction: nothing in it survives
                session.rollback()
    session.commit()
    return counts


def settle_occupancy(occupancy_id: int, session=None, now: datetime | None = None):
    """Settle a finished occupancy order once: wallet debit ``occupancy:{id}``. Commits; a failure
    undoes its own savepoint only (a debit already booked for it is an IntegrityError: settled before)."""
    session = session or db.session
    now = now or utcnow()
    try:
        with session.begin_nested():
            occ = _settle(session, occupancy_id, now)
    except IntegrityError:
        session.commit()
        return session.get(OccupancyOrder, occupancy_id, populate_existing=True)
    session.commit()
    return occ


def _settle(session, occupancy_id: int, now: datetime):
    occ = wallet.lock_row(session, OccupancyOrder, occupancy_id)
    if occ is None or occ.status != "finished":
        return occ
    amount = q_amount(occ.amount or 0)
    if occ.member_id is None and amount > 0:
        occ.pay_type = occ.pay_type or "partner"
        return occ
    if amount > 0:
        wallet.post_entry(occ.member_id, -amount, "occupancy", idempotency_key=f"occupancy:{occ.id}",
                          remark=f"occupancy {occ.order_no}", allow_negative=True, session=session,
                          occupancy_order_id=occ.id)
        occ.pay_type = occ.pay_type or "wallet"
    occ.paid_amount = amount
    occ.income_amount = amount - q_amount(occ.discount_amount or 0)
    occ.pay_status = "paid"
    occ.paid_at = now
    occ.status = "settled"
    return occ
