"""Charging sessions, one path for every origin: staff in the admin, the member app, partner
platforms and the pile itself (card / VIN, 0x31). Start → live → stop → bill intake; pricing
and settlement are in :mod:`app.services.pricing` and :mod:`app.services.settlement`.

Live data never costs a DB write per frame: realtime samples go to a Redis list and are
bulk-inserted by :func:`flush_samples` (a gateway greenlet every few seconds, plus a cron
backstop); only status transitions (starting → charging, charging → stopping) touch the order
row when they happen. Active sessions are indexed in Redis by transaction serial.
"""
import json
import logging
import time
from datetime import datetime, timedelta
from decimal import Decimal

from flask import current_app
from sqlalchemy import select

from app.extensions import db, get_redis
from app.models import Card, ChargeOrder, Connector, Member, MeterSample, OrderEvent, Pile, utcnow
from app.models.base import N_
from app.models.order import ACTIVE_ORDER_STATUSES, START_METHOD_YKC
from app.services import discounts, occupancy, order_state, organizations
from app.services.errors import (  # ChargingError and the typed start refusals
    AccountNotActive,
    BalanceTooLow,
    ChargingError,
    CouponNotUsable,
    GunDisabled,
    GunFault,
    GunNotFree,
    PileNotOnline,
    StartRefused,
    ykc_auth_failure,
)
from app.services.money import q_pile_balance, q_power

log = logging.getLogger(__name__)

SAMPLES_KEY = "cpms:samples"
ACTIVE_KEY = "cpms:active:{serial}"
STOP_FLAG = "cpms:autostop:{order_id}"
STOP_SENT = "cpms:stop_sent:{order_id}"   # a stop went out lately: no resend before it expires
CHARGING = 3  # 0x13 status: 0 offline, 1 fault, 2 idle, 3 charging
YKC_METHOD = {v: k for k, v in START_METHOD_YKC.items()}
START_FAILURES = {1: N_("Pile number does not match"), 2: N_("The gun is already charging"), 3: N_("Device fault"),
                  4: N_("Device offline"), 5: N_("The gun is not plugged in")}
STOP_FAILURES = {1: N_("Pile number does not match"), 2: N_("The gun is not charging"), 3: N_("Other error")}


def _cfg(name, default):
    return current_app.config.get(name, default)


def min_balance():
    return Decimal(str(_cfg("CHARGING_MIN_BALANCE", "5.00")))


def pile_balance(amount):
    """What the pile is told it may spend: rounded down to the fen, never more than there is."""
    return q_pile_balance(Decimal(amount or 0))


def event(order, name, user_id=None, remark=None, detail=None, from_status=None):
    """An order event without a status change (:func:`app.services.order_state.record`; a
    ``start_sent`` reported twice — command reply and gateway hook — is written once)."""
    return order_state.record(order, name, user_id=user_id, remark=remark, detail=detail, from_status=from_status)


def set_status(order, status, name, user_id=None, remark=None, detail=None):
    """Move the order through the one transition function (raises IllegalTransition)."""
    return order_state.transition(order, status, name, user_id=user_id, reason=remark, detail=detail)


def active_order(connector_id):
    return db.session.scalar(select(ChargeOrder).where(ChargeOrder.connector_id == connector_id,
                                                       ChargeOrder.status.in_(ACTIVE_ORDER_STATUSES)))


def _remember(order, limit):
    r = get_redis()
    r.hset(ACTIVE_KEY.format(serial=order.serial), mapping={"order_id": order.id, "status": order.status,
                                                             "limit": str(limit if limit is not None else "")})
    r.expire(ACTIVE_KEY.format(serial=order.serial), 7 * 24 * 3600)


def _active(serial):
    raw = get_redis().hgetall(ACTIVE_KEY.format(serial=serial))
    return {k.decode(): v.decode() for k, v in raw.items()} if raw else None


def _forget(order):
    get_redis().delete(ACTIVE_KEY.format(serial=order.serial))


# --- start -----------------------------------------------------------------------------------------------


def _text_hash(raw):
    return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()}


def live_start_state(connector):
    """(pile online, gun status) for the start checks, from the live state the gateway keeps in
    Redis (written as frames arrive; the database gets them in batches, a second or more later).

    Online: a gateway node holds the pile. The database is asked only when Redis knows nothing of
    the pile. Gun status: the gun's live hash, else the database; ``None`` (unknown) when the pile is
    online but the only status there is is the "offline" written when the pile last disconnected
    (the pile logged in again and has not reported the gun yet: the pile decides)."""
    from app.gateway.registry import Registry, gun_key, pile_key

    pile = connector.pile
    redis = get_redis()
    registry = Registry(redis)
    pile_live = _text_hash(redis.hgetall(pile_key(pile.code)))
    owner = registry.owner(pile.code)
    from_redis = owner is not None or bool(pile_live)
    online = bool(owner and registry.node_alive(owner[0])) if from_redis else bool(pile.online)
    gun_live = _text_hash(redis.hgetall(gun_key(connector.code)))
    status = gun_live.get("status") or connector.status
    if from_redis and online and status == "offline":
        reported = gun_live.get("status") == "offline" and gun_live.get("updated_at", "") > pile_live.get(
            "offline_at", "")                    # a 0x13 said so after the pile's last disconnect
        if not reported:
            status = None
    return online, status


def check_start(connector, member, prepaid_amount, card=None):
    """Raise a StartRefused subclass (a ChargingError) unless the gun and the account may start a
    session. Pile and gun state are the live ones (:func:`live_start_state`)."""
    pile = connector.pile
    if not connector.enabled or not pile.enabled:
        raise GunDisabled(N_("This gun is disabled."))
    online, status = live_start_state(connector)
    if not online or status == "offline":
        raise PileNotOnline(N_("The pile is offline."))
    if status == "fault":
        raise GunFault(N_("The gun is not free (status: %(status)s).") % {"status": status})
    if status in ("charging", "reserved"):
        raise GunNotFree(N_("The gun is not free (status: %(status)s).") % {"status": status})
    if active_order(connector.id) is not None:
        raise GunNotFree(N_("The gun already has a session in progress."))
    paying_org = organizations.paying_organization(card)   # a fleet card may charge its organization
    if member is not None or paying_org is not None:
        if member is not None and member.status != "active":
            raise AccountNotActive(N_("The member account is not active."))
        if paying_org is not None and not paying_org.enabled:
            raise AccountNotActive(N_("The organization's account is disabled."))
        available = organizations.available_balance(member, card)
        wanted = Decimal(prepaid_amount) if prepaid_amount is not None else available
        if prepaid_amount is not None and wanted > available:
            raise BalanceTooLow(N_("The prepaid amount %(wanted)s exceeds the balance %(available)s.")
                                % {"wanted": wanted, "available": available})
        if wanted < min_balance():
            raise BalanceTooLow(N_("The balance must be at least %(amount)s yuan to start.")
                                % {"amount": min_balance()})
    elif prepaid_amount is not None and Decimal(prepaid_amount) < min_balance():
        raise BalanceTooLow(N_("The prepaid amount must be at least %(amount)s yuan.") % {"amount": min_balance()})


def create_order(connector, *, origin, member=None, card=None, prepaid_amount=None, channel_id=None,
                 partner_id=None, partner_order_no=None, user_id=None, plate_no=None, vin=None):
    """A new order in 'starting', with its number, transaction serial and tariff snapshot."""
    from app.services import order_numbers, pricing

    pile, station = connector.pile, connector.station
    template = station.price_template
    if template is None or not template.periods:
        raise ChargingError(N_("The station has no price template."))
    now = utcnow()
    order = ChargeOrder(
        order_no=order_numbers.new_order_no(now), serial=order_numbers.new_serial(pile.code, connector.gun_no, now),
        operator_id=connector.operator_id, station_id=station.id, pile_id=pile.id, connector_id=connector.id,
        member_id=member.id if member else None, card_id=card.id if card else None,
        organization_id=(card.organization_id if card else None) or (member.organization_id if member else None),
        card_no=card.logical_no if card else None, plate_no=plate_no or (member.plate_no if member else None),
        vin=vin, start_method=origin, status="starting", channel_id=channel_id, partner_id=partner_id,
        partner_order_no=partner_order_no, prepaid_amount=Decimal(prepaid_amount) if prepaid_amount else None,
        price_template_id=template.id, tariff_snapshot=pricing.snapshot(template), start_requested_at=now,
        pay_type="wallet" if member else ("partner" if partner_id else None))
    db.session.add(order)
    event(order, "created", user_id, detail={"origin": origin}, from_status=None)
    db.session.flush()
    return order


def _session_committed(order, limit):
    """After the new order is committed, in this order: its Redis session key, then the end of the
    previous session's occupation (a unit of work of its own; it never blocks the start). Raises
    ChargingError when the session key cannot be written (the order is failed: nothing goes to the pile)."""
    order_id, connector_id, at = order.id, order.connector_id, order.start_requested_at or utcnow()
    try:
        _remember(order, limit)
    except Exception:
        log.exception("could not index order %s in Redis; the start is refused", order.order_no)
        try:
            _fail(order_id, N_("The platform could not record the session."))
        except Exception:  # the start-timeout job fails it later
            log.exception("could not fail order %s", order_id)
        raise ChargingError(N_("The platform could not record the session.")) from None
    try:
        occupancy.on_session_started(connector_id, at)
    except Exception:  # occupancy must never block a start
        log.exception("ending the previous occupation on connector %s failed", connector_id)
    return db.session.get(ChargeOrder, order_id)


def spend_limit(order, member):
    if order.prepaid_amount is not None:
        return Decimal(order.prepaid_amount)
    if member is not None or organizations.paying_organization(order.card) is not None:
        return organizations.available_balance(member, order.card)
    return None


def start_charge(connector_id, *, origin, member_id=None, card_id=None, prepaid_amount=None, channel_id=None,
                 partner_id=None, partner_order_no=None, user_id=None, coupon_id=None):
    """Start a session on a gun. Returns the order ('starting' until the pile reports charging;
    the start-timeout job fails it after CHARGING_START_TIMEOUT). Raises ChargingError.

    ``coupon_id``: the member's coupon chosen for this charge; it must be the member's, unused, valid
    now and for this station (:func:`app.services.discounts.lock_coupon`). It is locked for the order in
    the transaction that creates the order, applied at settlement, released if the order fails or is
    closed without charge."""
    from app.services import pile_commands

    connector = db.session.get(Connector, connector_id)
    if connector is None:
        raise ChargingError(N_("Unknown gun."))
    member = db.session.get(Member, member_id) if member_id else None
    card = db.session.get(Card, card_id) if card_id else None
    if card is not None and member is None:
        member = card.member
    if member is not None and member.operator_id != connector.operator_id:
        raise ChargingError(N_("The member belongs to another operator."))
    check_start(connector, member, prepaid_amount, card=card)
    try:
        if coupon_id is not None:            # checked before anything is written
            problem = discounts.start_coupon_problem(coupon_id, member, connector)
            if problem:
                raise discounts.CouponError(problem)
        with order_state.savepoint(db.session):
            order = create_order(connector, origin=origin, member=member, card=card, prepaid_amount=prepaid_amount,
                                 channel_id=channel_id, partner_id=partner_id, partner_order_no=partner_order_no,
                                 user_id=user_id)
            if coupon_id is not None:        # taken by another start meanwhile: the order is undone too
                discounts.lock_coupon(order, coupon_id, session=db.session)
    except discounts.CouponError as exc:
        raise CouponNotUsable(str(exc)) from exc
    limit = spend_limit(order, member)
    db.session.commit()                      # the order row first; then its session key; then the pile
    order = _session_committed(order, limit)
    order_id = order.id
    try:
        reply = pile_commands.remote_start(connector.code, order.serial, pile_balance(limit or Decimal("9999")),
                                           logical_card=card.logical_no if card else "0" * 16,
                                           physical_card=card.physical_no if card else None)
    except pile_commands.PileOffline:
        _fail(order_id, N_("The pile is offline."))
        raise ChargingError(N_("The pile is offline.")) from None
    except pile_commands.CommandTimeout:
        order = db.session.get(ChargeOrder, order_id)
        event(order, "start_sent", user_id, remark=N_("no reply yet; waiting for the pile"))
        db.session.commit()
        return order
    order = record_start_reply(reply)
    if order is not None and order.status == "failed":
        raise ChargingError(order.failure_reason)
    return db.session.get(ChargeOrder, order_id)


def _fail(order_id, reason, user_id=None):
    order = db.session.get(ChargeOrder, order_id)
    if order.status in ("starting", "pending"):
        order.failure_reason = reason
        order.ended_at = utcnow()
        set_status(order, "failed", "start_failed", user_id, remark=reason)
        db.session.commit()
        _forget(order)
    return order


def _order_by_serial(serial, lock=False):
    stmt = select(ChargeOrder).where(ChargeOrder.serial == serial)
    if lock:
        stmt = stmt.with_for_update()
    return db.session.scalar(stmt)


def record_start_reply(msg):
    """0x33 (from the command reply or the gateway hook; idempotent)."""
    order = _order_by_serial(msg.transaction_serial, lock=True)
    if order is None or order.status != "starting":
        db.session.commit()          # nothing to write: end the lock (never discard a caller's work)
        return order
    if msg.result == 1:
        event(order, "start_sent", remark=N_("pile accepted"))
        db.session.commit()
        return order
    refused = N_("Start refused (0x%(code)s)") % {"code": f"{msg.failure_reason:02X}"}
    return _fail(order.id, START_FAILURES.get(msg.failure_reason, refused))


# --- pile-initiated start (card / VIN) -------------------------------------------------------------------


def authorize_pile_start(msg):
    """0x31 → 0x32: a card swiped or a VIN recognised at the pile."""
    from app.gateway.ykc import PileStartReply, codes
    from app.services.charging_hooks import refusal

    def refuse(reason):                   # 0x32, or 0xA2 for a parallel start (0xA1)
        return refusal(msg, reason)

    connector = db.session.scalar(select(Connector).where(Connector.code == f"{msg.pile_code}{msg.gun}"))
    if connector is None:
        return refuse(codes.AuthFailure.ACCOUNT_NOT_ALLOWED)
    card = member = None
    if msg.start_mode == 3:
        vin = (msg.vin or "").strip()
        member = db.session.scalar(select(Member).where(Member.vin == vin, Member.operator_id == connector.operator_id))
        if member is None:
            return refuse(codes.AuthFailure.VIN_NOT_REGISTERED)
    else:
        physical = bytes(msg.account_or_card).hex().upper()
        card = db.session.scalar(select(Card).where(Card.physical_no == physical))
        if card is None or card.operator_id != connector.operator_id:
            return refuse(codes.AuthFailure.ACCOUNT_NOT_FOUND)
        if card.status != "active":
            return refuse(codes.AuthFailure.ACCOUNT_FROZEN)
        member = card.member
        if member is None and organizations.paying_organization(card) is None:   # nobody pays for it
            return refuse(codes.AuthFailure.ACCOUNT_NOT_FOUND)
    try:
        check_start(connector, member, None, card=card)
    except StartRefused as exc:
        db.session.rollback()
        return refuse(ykc_auth_failure(exc))
    order = create_order(connector, origin="vin" if msg.start_mode == 3 else "card", member=member, card=card,
                         vin=(msg.vin or None) if msg.start_mode == 3 else None)
    limit = spend_limit(order, member)
    db.session.commit()      # the order row first, then its session key, then the 0x32; any failure: refused
    order = _session_committed(order, limit)
    return PileStartReply(transaction_serial=order.serial, pile_code=msg.pile_code, gun=msg.gun,
                          logical_card=card.logical_no if card else "0" * 16, balance=pile_balance(limit),
                          auth_result=1, failure_reason=0)


# --- live ------------------------------------------------------------------------------------------------


def record_realtime(msg, at=None):
    """0x13 of a gun with a transaction serial: queue the sample, move starting → charging,
    charging → stopping when the pile stops by itself, and stop at the spending limit."""
    serial = msg.transaction_serial
    if not serial or set(serial) == {"0"}:
        return
    active = _active(serial)
    if active is None:
        return
    at = at or utcnow()
    order_id = int(active["order_id"])
    power = q_power(Decimal(msg.output_voltage) * Decimal(msg.output_current) / 1000)
    sample = {"order_id": order_id, "at": at.isoformat(), "status": msg.status, "voltage": str(msg.output_voltage),
              "current": str(msg.output_current), "power": str(power), "soc": msg.soc, "energy": str(msg.energy),
              "energy_with_loss": str(msg.lossy_energy), "amount": str(msg.amount), "gun_temp": msg.gun_temperature,
              "battery_max_temp": msg.battery_max_temperature, "charged_minutes": msg.charged_minutes,
              "remaining_minutes": msg.remaining_minutes, "fault_bits": msg.hardware_faults}
    r = get_redis()
    r.rpush(SAMPLES_KEY, json.dumps(sample))
    status = active.get("status")
    if status == "starting" and msg.status == CHARGING:
        _transition(order_id, serial, "charging", at, soc=msg.soc)
    elif status in ("charging", "starting") and msg.status != CHARGING and status == "charging":
        _transition(order_id, serial, "stopping", at, remark=N_("the pile stopped charging"))
    elif status == "stopping" and msg.status == CHARGING and _stop_due(r, order_id):
        from app.tasks.charging_jobs import enqueue_stop

        # the pile missed the stop (it was offline, or the answer was lost): send it again
        enqueue_stop(order_id, N_("The pile still reported charging after the stop: stop sent again."))
    limit = active.get("limit")
    if limit and msg.status == CHARGING and Decimal(msg.amount) >= Decimal(limit) \
            and r.set(STOP_FLAG.format(order_id=order_id), "1", nx=True, ex=3600):
        from app.tasks.charging_jobs import enqueue_stop

        enqueue_stop(order_id, N_("The spending limit was reached."))


def _stop_due(r, order_id):
    """True (and the guard set) when no stop went to the pile for CHARGING_STOP_RESEND_SECONDS."""
    ttl = max(1, int(_cfg("CHARGING_STOP_RESEND_SECONDS", 20)))
    return bool(r.set(STOP_SENT.format(order_id=order_id), "1", nx=True, ex=ttl))


def _transition(order_id, serial, status, at, soc=None, remark=None):
    order = db.session.scalar(select(ChargeOrder).where(ChargeOrder.id == order_id).with_for_update())
    if order is None or not order_state.allowed(order.status, status):
        db.session.rollback()
        return
    if status == "charging":
        order.started_at = order.started_at or at
        order.start_soc = soc
    set_status(order, status, "started" if status == "charging" else "stopped", remark=remark)
    db.session.commit()
    get_redis().hset(ACTIVE_KEY.format(serial=serial), "status", status)


def flush_samples(batch=5000):
    """Bulk-insert queued realtime samples and refresh each order's live figures.

    One bad row never blocks the others: a sample that cannot be written (unreadable, its order does
    not exist, a value the database refuses) is set aside in :data:`DEAD_SAMPLES_KEY` with the reason
    (:func:`set_aside_samples` shows them) and the rest are written. Only a failure of the database
    itself puts the batch back for the next run (and raises)."""
    r = get_redis()
    total = 0
    while True:
        raw = r.lpop(SAMPLES_KEY, batch)
        if not raw:
            return total
        try:
            written, dead = _write_samples(raw)
        except Exception:
            r.lpush(SAMPLES_KEY, *reversed(raw))  # the database failed as a whole: keep them for the next run
            raise
        _set_aside(dead)
        total += written
        if len(raw) < batch:
            return total


DEAD_SAMPLES_KEY = "cpms:samples:dead"              # JSON {"sample", "reason", "at"}, newest last
DEAD_SAMPLES_TOTAL = "cpms:samples:dead:total"      # counter (metrics)
DEAD_SAMPLES_KEEP = 10000
SAMPLE_DECIMALS = ("voltage", "current", "power", "energy", "energy_with_loss", "amount")
SAMPLE_INTEGERS = ("soc", "gun_temp", "battery_max_temp", "charged_minutes", "remaining_minutes", "fault_bits")


def _sample_row(item):
    """A queued sample (JSON) as a MeterSample row; ValueError when it is not one."""
    data = json.loads(item)
    if not isinstance(data, dict):
        raise ValueError("not an object")
    status = data.get("status")
    row = {"order_id": int(data["order_id"]), "at": datetime.fromisoformat(data["at"]),
           "status": None if status is None else str(status)}
    for key in SAMPLE_DECIMALS:
        row[key] = Decimal(str(data[key])) if data.get(key) is not None else None
    for key in SAMPLE_INTEGERS:
        row[key] = int(data[key]) if data.get(key) is not None else None
    return row


def _why(exc) -> str:
    """Why a queued sample is unreadable, as a msgid (shown translated; never an exception's repr)."""
    if isinstance(exc, json.JSONDecodeError):
        return N_("not JSON")
    if isinstance(exc, KeyError):
        return N_("a field is missing")
    if isinstance(exc, ArithmeticError):
        return N_("a value is not a number")
    return N_("a value has the wrong type")


def _write_samples(raw):
    """Write what can be written of one batch (one transaction; each insert in a savepoint).
    Returns (rows written, [(raw sample, reason)] set aside)."""
    from sqlalchemy.exc import DataError, IntegrityError

    dead, rows = [], []
    for item in raw:
        try:
            rows.append((item, _sample_row(item)))
        except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
            dead.append((item, (N_("unreadable sample: %(error)s") % {"error": _why(exc)})[:255]))
    ids = {row["order_id"] for _, row in rows}
    known = set(db.session.scalars(select(ChargeOrder.id).where(ChargeOrder.id.in_(ids)))) if ids else set()
    good = []
    for item, row in rows:
        if row["order_id"] in known:
            good.append((item, row))
        else:
            dead.append((item, N_("order %(id)s does not exist") % {"id": row["order_id"]}))

    def insert(part):
        if not part:
            return []
        try:
            with db.session.begin_nested():
                db.session.execute(MeterSample.__table__.insert(), [row for _, row in part])
            return part
        except (IntegrityError, DataError) as exc:
            if len(part) == 1:
                dead.append((part[0][0], N_("refused by the database"), str(exc.orig)[:500]))
                return []
            half = len(part) // 2
            return insert(part[:half]) + insert(part[half:])

    written = insert(good)
    latest = {}
    for _, row in written:
        if row["order_id"] not in latest or latest[row["order_id"]]["at"] <= row["at"]:
            latest[row["order_id"]] = row
    for order_id, row in latest.items():
        order = db.session.get(ChargeOrder, order_id)
        if order is None or (order.live_updated_at and order.live_updated_at > row["at"]):
            continue
        order.live_power, order.live_voltage, order.live_current = row["power"], row["voltage"], row["current"]
        order.live_soc, order.live_energy, order.live_amount = row["soc"], row["energy"], row["amount"]
        order.live_remaining_minutes, order.live_updated_at = row["remaining_minutes"], row["at"]
        if order.started_at:
            order.duration_seconds = max(0, int((row["at"] - order.started_at).total_seconds()))
    db.session.commit()
    return len(written), dead


def _set_aside(dead):
    """Keep unwritable samples with their reason (newest DEAD_SAMPLES_KEEP) and count them."""
    if not dead:
        return
    at = utcnow().isoformat(timespec="seconds")
    pipe = get_redis().pipeline()
    for item, reason, *detail in dead:      # detail: the database's own words, shown as code
        sample = item.decode(errors="replace") if isinstance(item, bytes) else str(item)
        pipe.rpush(DEAD_SAMPLES_KEY, json.dumps({"sample": sample, "reason": reason, "at": at,
                                                 "detail": detail[0] if detail else None}))
    pipe.ltrim(DEAD_SAMPLES_KEY, -DEAD_SAMPLES_KEEP, -1)
    pipe.incrby(DEAD_SAMPLES_TOTAL, len(dead))
    pipe.execute()
    log.warning("%d realtime sample(s) set aside, e.g. %s", len(dead), dead[0][1])


def set_aside_samples(limit=200):
    """The samples set aside by :func:`flush_samples`, newest first: [{"sample", "reason", "at"}]."""
    r = get_redis()
    items = r.lrange(DEAD_SAMPLES_KEY, -limit, -1)
    return [json.loads(x) for x in reversed(items)]


def set_aside_count():
    """(held now, set aside since the counter began)."""
    r = get_redis()
    return r.llen(DEAD_SAMPLES_KEY), int(r.get(DEAD_SAMPLES_TOTAL) or 0)


def unprocessed_bills(limit=200):
    """Bills stored and acknowledged but still ``received`` (their intake failed; :func:`reprocess_bills`
    retries them): (count, the oldest ``limit`` rows)."""
    from sqlalchemy import func

    from app.models import PileBill

    received = PileBill.status == "received"
    count = db.session.scalar(select(func.count()).select_from(PileBill).where(received))
    rows = db.session.scalars(select(PileBill).where(received).order_by(PileBill.id).limit(limit)).all()
    return count, rows


# --- stop ------------------------------------------------------------------------------------------------


def stop_charge(order_id, *, by, user_id=None, reason=None):
    """Ask the pile to stop. The order moves to 'stopping'; the pile's bill finishes it."""
    from app.services import pile_commands

    order = db.session.scalar(select(ChargeOrder).where(ChargeOrder.id == order_id).with_for_update())
    if order is None:
        raise ChargingError(N_("Unknown order."))
    if order.status not in ("starting", "charging", "stopping"):
        db.session.rollback()
        raise ChargingError(N_("The order is not charging (status: %(status)s).") % {"status": order.status})
    if order.status != "stopping":
        set_status(order, "stopping", "stop_requested", user_id, remark=reason or N_("stop by %(by)s") % {"by": by},
                   detail={"by": by})
    else:
        event(order, "stop_requested", user_id, remark=reason or N_("stop by %(by)s") % {"by": by}, detail={"by": by})
    db.session.commit()
    get_redis().hset(ACTIVE_KEY.format(serial=order.serial), "status", "stopping")
    get_redis().set(STOP_SENT.format(order_id=order.id), "1", ex=max(1, int(_cfg("CHARGING_STOP_RESEND_SECONDS", 20))))
    gun_code, order_id = order.connector.code, order.id
    try:
        reply = pile_commands.remote_stop(gun_code)
    except pile_commands.PileOffline:
        raise ChargingError(N_("The pile is offline: the stop is sent again when it reconnects.")) from None
    except pile_commands.CommandTimeout:
        raise ChargingError(N_("The pile did not answer the stop command in time.")) from None
    if reply.result != 1 and reply.failure_reason != 2:
        raise ChargingError(STOP_FAILURES.get(reply.failure_reason, N_("The pile refused to stop.")))
    return db.session.get(ChargeOrder, order_id)


# --- bill intake -----------------------------------------------------------------------------------------


CLOCK_SKEW_LIMIT = 60      # seconds: a pile clock further off than this is set (0x56) and noted on the order


def pile_clock_skew(pile_time, platform_time):
    """Seconds the pile's clock is ahead (+) or behind (-) the platform's; None when one is unknown."""
    if pile_time is None or platform_time is None:
        return None
    return int((pile_time - platform_time).total_seconds())


def pile_clock_wrong(pile_time, platform_time):
    """True when the pile's clock is more than CLOCK_SKEW_LIMIT seconds off (the gateway then sends 0x56)."""
    skew = pile_clock_skew(pile_time, platform_time)
    return skew is not None and abs(skew) > CLOCK_SKEW_LIMIT


def bill_times(order, msg, received_at):
    """(started_at, ended_at, skew seconds) of a session on the platform's clock.

    Order times come from one clock, ours: the start is when we saw the pile charging (or the
    request); the end is that start plus the duration the pile measured (its clock may be off, but
    it runs), never after the bill reached us. The skew compares the pile's start with ours when we
    saw the start, else the pile's record time with the bill's arrival."""
    pile_start, pile_end = msg.start_time, msg.end_time
    duration = pile_end - pile_start if pile_start and pile_end and pile_end >= pile_start else None
    started = order.started_at
    if started is not None:
        skew = pile_clock_skew(pile_start, started)
        ended = min(received_at, started + duration) if duration is not None else received_at
        ended = max(ended, started)
    else:
        skew = pile_clock_skew(msg.transaction_time or pile_end, received_at)
        ended = received_at
        started = ended - duration if duration is not None else min(order.start_requested_at or ended, ended)
    return started, ended, skew


def record_bill(bill, msg):
    """0x3B, already stored raw (PileBill, unique serial). Matches it to its order once; a bill
    for an unknown serial creates an order flagged for review. Idempotent.

    Does not depend on other orders: the sample flush sets aside what it cannot write. A bill that
    fails here stays ``received`` and :func:`reprocess_bills` takes it up again."""
    from app.gateway.ykc import codes

    if bill.order_id is not None:
        return db.session.get(ChargeOrder, bill.order_id)
    flush_samples()
    order = _order_by_serial(bill.serial, lock=True)
    if order is None:
        order = _orphan_order(bill, msg)
    elif order.pile_amount is not None:  # matched before (e.g. a replayed row): nothing to do
        bill.order_id, bill.status = order.id, "matched"
        db.session.commit()
        return order
    bill.order_id, bill.status = order.id, "matched" if order.status != "abnormal" else "orphan"
    order.pile_started_at, order.pile_ended_at = msg.start_time, msg.end_time
    order.started_at, order.ended_at, skew = bill_times(order, msg, bill.received_at or utcnow())
    if skew is not None and abs(skew) > CLOCK_SKEW_LIMIT:
        event(order, "clock_skew",
              remark=N_("The pile's clock is %(skew)s s off the platform's.") % {"skew": f"{skew:+d}"},
              detail={"skew_seconds": skew, "pile_started_at": _iso(msg.start_time),
                      "pile_ended_at": _iso(msg.end_time), "pile_recorded_at": _iso(msg.transaction_time)},
              from_status=order.status)
    order.stop_reason_code = msg.stop_reason
    order.stop_reason = codes.stop_reason_text(msg.stop_reason)
    order.meter_start, order.meter_stop = msg.meter_start, msg.meter_stop
    order.pile_energy, order.pile_amount = msg.total_energy, msg.total_amount
    order.vin = order.vin or (msg.vin or "").strip() or None
    if order.started_at and order.ended_at:
        order.duration_seconds = max(0, int((order.ended_at - order.started_at).total_seconds()))
    event(order, "bill_received", detail={"serial": bill.serial, "energy": str(msg.total_energy),
                                          "amount": str(msg.total_amount)}, from_status=order.status)
    db.session.commit()
    _forget(order)
    if order.status == "abnormal":
        return order
    return finish_with_bill(order.id)


def finish_with_bill(order_id):
    """Price the session (the platform's figure is authoritative), then settle or flag it."""
    from app.services import pricing, settlement

    order = db.session.get(ChargeOrder, order_id)
    result = pricing.reprice_order(order)
    db.session.commit()
    order = db.session.get(ChargeOrder, order_id)
    try:
        occupancy.on_session_finished(order)
    except Exception:  # occupancy must never block the money path
        log.exception("occupancy bookkeeping failed for order %s", order.order_no)
    if order.status == "finished":
        settlement.enqueue_settlement(order.id)
    log.info("order %s priced: %s", order.order_no, getattr(result, "reason", None) or "ok")
    return order


def _iso(value):
    return value.isoformat() if value else None


def _orphan_order(bill, msg):
    """An order for a bill nobody started here (offline card session, lost start)."""
    from app.services import order_numbers, pricing

    pile = db.session.scalar(select(Pile).where(Pile.code == bill.pile_code))
    connector = db.session.scalar(select(Connector).where(Connector.pile_id == pile.id,
                                                          Connector.gun_no == bill.gun_no))
    physical = bytes(msg.physical_card).hex().upper() if msg.physical_card else None
    card = db.session.scalar(select(Card).where(Card.physical_no == physical)) if physical else None
    template = pile.station.price_template
    order = ChargeOrder(
        order_no=order_numbers.new_order_no(), serial=bill.serial, operator_id=pile.operator_id,
        station_id=pile.station_id, pile_id=pile.id, connector_id=connector.id if connector else None,
        member_id=card.member_id if card else None, card_id=card.id if card else None,
        card_no=card.logical_no if card else physical, start_method=YKC_METHOD.get(msg.transaction_flag, "card"),
        status="abnormal", needs_review=True, abnormal_reason=N_("Bill for a transaction the platform did not start"),
        price_template_id=template.id if template else None,
        tariff_snapshot=pricing.snapshot(template) if template else None)
    db.session.add(order)
    event(order, "marked_abnormal", remark=order.abnormal_reason)
    db.session.flush()
    return order


# --- watchdogs (cron) ------------------------------------------------------------------------------------


def reprocess_bills(now=None, limit=500):
    """Every bill still ``received`` CHARGING_BILL_REPROCESS_AFTER seconds after it arrived (its intake
    failed after the 0x40 went out, so the pile will not resend it) goes through :func:`record_bill`
    again. One failing bill never stops the others. Returns {"processed", "failed"}."""
    from app.gateway.ykc import decode_frame
    from app.models import PileBill

    now = now or utcnow()
    before = now - timedelta(seconds=int(_cfg("CHARGING_BILL_REPROCESS_AFTER", 60)))
    ids = db.session.scalars(select(PileBill.id).where(PileBill.status == "received", PileBill.received_at <= before)
                             .order_by(PileBill.id).limit(limit)).all()
    db.session.commit()
    counts = {"processed": 0, "failed": 0}
    for bill_id in ids:
        try:
            bill = db.session.get(PileBill, bill_id)
            if bill is None or bill.status != "received":
                continue
            _, msg = decode_frame(bytes.fromhex(bill.raw_hex), strict=False)
            record_bill(bill, msg)
            counts["processed"] += 1
        except Exception:
            db.session.rollback()        # this job's own transaction (one per bill)
            counts["failed"] += 1
            log.exception("reprocessing bill %s failed", bill_id)
    return counts



def fail_start_timeouts(now=None):
    """'starting' with no charging status within CHARGING_START_TIMEOUT seconds → failed."""
    now = now or utcnow()
    limit = now - timedelta(seconds=int(_cfg("CHARGING_START_TIMEOUT", 90)))
    ids = db.session.scalars(select(ChargeOrder.id).where(ChargeOrder.status == "starting",
                                                          ChargeOrder.start_requested_at < limit)).all()
    for order_id in ids:
        _fail(order_id, N_("The pile did not start charging in time."))
    return len(ids)


def check_stuck_sessions(now=None):
    """Charging with no realtime data for CHARGING_STUCK_MINUTES → ask the pile; no answer → abnormal."""
    from app.services import order_admin, pile_commands

    now = now or utcnow()
    limit = now - timedelta(minutes=int(_cfg("CHARGING_STUCK_MINUTES", 10)))
    flush_samples()
    stuck = db.session.scalars(select(ChargeOrder).where(ChargeOrder.status == "charging")).all()
    flagged = 0
    for order in stuck:
        last = order.live_updated_at or order.started_at or order.start_requested_at
        if last is None or last >= limit:
            continue
        try:
            pile_commands.read_realtime(order.connector.code)
            continue  # the gateway records the fresh frame
        except pile_commands.CommandError:
            order_admin.mark_abnormal(order, N_("No realtime data from the pile while charging."))
            db.session.commit()
            flagged += 1
    return flagged


def check_missing_bills(now=None):
    """No bill BILL_MISSING_MINUTES after the stop → abnormal. A bill that arrived but is not
    processed yet is not a missing bill: :func:`reprocess_bills` takes it up."""
    from app.models import PileBill
    from app.services import order_admin

    now = now or utcnow()
    limit = now - timedelta(minutes=int(_cfg("BILL_MISSING_MINUTES", 10)))
    late = db.session.scalars(select(ChargeOrder).where(ChargeOrder.status == "stopping")).all()
    flagged = 0
    for order in late:
        stopped = db.session.scalar(select(OrderEvent.created_at).where(
            OrderEvent.order_id == order.id, OrderEvent.to_status == "stopping").order_by(OrderEvent.id.desc()))
        if stopped and stopped < limit:
            if order.serial and db.session.scalar(select(PileBill.id).where(PileBill.serial == order.serial)):
                continue
            order_admin.mark_abnormal(order, N_("No bill from the pile after the session stopped."))
            db.session.commit()
            _forget(order)
            flagged += 1
    return flagged


# --- the gateway's hooks ---------------------------------------------------------------------------------


def _hooks_base():
    from app.services.charging_hooks import ChargingHooks

    return ChargingHooks


class OrderHooks(_hooks_base()):
    """The order logic behind the gateway (CHARGING_HOOKS = "app.services.charging:OrderHooks")."""

    def on_remote_start_reply(self, msg):
        record_start_reply(msg)

    def __init__(self):
        # connector id -> (gun_plugged, monotonic time) last handed to occupancy by this gateway process
        self._plug_reported: dict[int, tuple[int, float]] = {}

    def _plug_news(self, gun, msg) -> bool:
        """The plug state changed since the last report to occupancy (or it is due again)."""
        last = self._plug_reported.get(gun.id)
        return (last is None or last[0] != msg.gun_plugged
                or time.monotonic() - last[1] > occupancy.SEEN_REFRESH_SECONDS)

    def wants_realtime(self, pile, gun, msg):
        """A frame with a transaction serial goes to the order logic; one without only matters to
        occupancy, and only when the plug state changed: an idle gun's frames cost no round trip."""
        serial = msg.transaction_serial
        return bool(serial and serial.strip("0")) or self._plug_news(gun, msg)

    def on_realtime(self, pile, gun, msg):
        record_realtime(msg)
        if self._plug_news(gun, msg):
            occupancy.on_connector_state(gun.id, plugged=msg.gun_plugged == 1, parked=None, at_utc=utcnow())
            self._plug_reported[gun.id] = (msg.gun_plugged, time.monotonic())

    def on_ground_lock(self, pile, gun, msg):
        parked = {0x00: False, 0xFF: True}.get(msg.parking_state)
        occupancy.on_connector_state(gun.id, plugged=None, parked=parked, at_utc=utcnow())

    def on_transaction_record(self, bill_row, msg):
        record_bill(db.session.merge(bill_row), msg)

    def on_pile_start_request(self, msg):
        return authorize_pile_start(msg)

    def periodic_tasks(self, config):
        """The gateway bulk-inserts the queued realtime samples every few seconds (cron is the backstop)."""
        return [(float(config.get("CHARGING_SAMPLE_FLUSH_INTERVAL", 2.0)), flush_samples)]
