"""Pushes to partner platforms and regulators (T/CEC 102), reconciliation, 获取充电站.

One write path for every push (jobs, admin 订单推送 / 重新推送, cron):

1. :func:`queue_push` writes a :class:`PushLog` row (direction 'out', status 'pending') naming the
   interface and the business object (``order_id`` or ``business_key``), commits, and enqueues the RQ job
   ``push-{log id}`` (queue ``push``) with ``Retry(max=TCEC_PUSH_RETRY_MAX, interval=TCEC_PUSH_RETRY_INTERVAL)``.
2. :func:`send` (the job) builds the payload from the current data, calls the partner through
   :class:`app.interconnect.client.PartnerClient` and records the exchange on that same row. A row already
   'success' is never sent again, so a job re-run after its worker was killed adds no second success.
   A failure raises (RQ retries) until the attempts are used up; then the row is 'failed' (推送日志).
3. :func:`watchdog` (cron) re-enqueues 'pending'/'retrying' rows whose job is gone (its worker was killed
   and RQ's abandoned-job cleanup has not run yet, or the enqueue was lost).

Triggers: gun status changes from the gateway (:func:`gun_status_changed`, coalesced per gun), partner order
events (started, start failed, stopped, settled) seen in committed :class:`OrderEvent` rows
(:func:`install_order_listeners`), the 50-second charging snapshot (:func:`push_charging_snapshots`), the
regulators' schedule (:func:`push_regulators`), the daily reconciliation (:func:`reconcile_due`).

Only partners that are ``enabled`` and ``push_enabled`` are pushed to, and only data of their operator.
"""
from __future__ import annotations

import logging
import time
from datetime import timedelta
from decimal import Decimal

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, noload

from app.extensions import db, get_redis
from app.models import ChargeOrder, Connector, OrderEvent, Partner, PushLog, Station
from app.models.interconnect import PartnerStation, ReconciliationDispute
from app.services import clock, order_state
from app.services import interconnect_payloads as payloads
from app.services.money import quantize

log = logging.getLogger(__name__)

QUEUE = "push"
GUN_STATUS_KEY = "cpms:tcec:gun_status"          # hash connector id -> latest status (gateway)
GUN_JOB_KEY = "cpms:tcec:gun_job:{}"             # one waiting status job per gun (SET NX)
GUN_JOB_TTL = 300                                # a lost job frees its guns after this many seconds
REGULATOR_CURSOR = "cpms:tcec:regulator:{}"      # partner id -> last scheduled push (ISO UTC)

# order events that push to the order's partner: event -> interface
ORDER_EVENT_PUSHES = {
    "started": "notification_start_charge_result",
    "start_failed": "notification_start_charge_result",
    "stopped": "notification_stop_charge_result",          # the pile stopped charging
    "priced": "notification_stop_charge_result",           # finished (a stop requested first has no 'stopped')
    "settled": "notification_charge_order_info",
}
ONCE_PER_ORDER = {"notification_start_charge_result", "notification_stop_charge_result"}
ORDER_INTERFACES = {"notification_start_charge_result", "notification_stop_charge_result",
                    "notification_charge_order_info", "notification_equip_charge_status"}
RESENDABLE = ORDER_INTERFACES | {"notification_stationStatus", "notification_stationInfo", "check_charge_orders"}


class PushRefused(ValueError):
    """A push that cannot be made (partner disabled, not a partner order, ...): shown to staff."""


def _queue(redis=None):
    from rq import Queue

    return Queue(QUEUE, connection=redis or get_redis())


def active_partners(operator_id, partner_type=None):
    query = select(Partner).where(Partner.operator_id == operator_id, Partner.enabled.is_(True),
                                  Partner.push_enabled.is_(True))
    if partner_type:
        query = query.where(Partner.partner_type == partner_type)
    return db.session.scalars(query.order_by(Partner.id)).all()


def _pushable(partner) -> bool:
    return bool(partner and partner.enabled and partner.push_enabled and partner.base_url)


# ---- queueing -----------------------------------------------------------------------------------
def enqueue_log(log_id: int, redis=None, delay=None):
    """The job of push ``log_id`` (job id ``push-{id}``), now or after ``delay`` seconds."""
    from rq import Retry

    interval = current_app.config["TCEC_PUSH_RETRY_INTERVAL"]
    options = dict(job_id=f"push-{log_id}", description=f"T/CEC push {log_id}", result_ttl=24 * 3600,
                   failure_ttl=7 * 24 * 3600,
                   retry=Retry(max=current_app.config["TCEC_PUSH_RETRY_MAX"], interval=interval))
    queue = _queue(redis)
    if delay:
        return queue.enqueue_in(timedelta(seconds=delay), "app.tasks.interconnect.push_job", log_id, **options)
    return queue.enqueue("app.tasks.interconnect.push_job", log_id, **options)


def queue_push(partner, interface, *, order_id=None, business_key=None, redis=None) -> PushLog:
    """Record the push (PushLog 'pending'), commit, enqueue its job. The row id is the job's argument."""
    row = PushLog(partner_id=partner.id, operator_id=partner.operator_id, direction="out", interface=interface,
                  order_id=order_id, business_key=business_key, status="pending", attempts=0)
    db.session.add(row)
    db.session.commit()
    enqueue_log(row.id, redis)
    return row


def resend(log_id: int, user_operator_ids=None) -> PushLog:
    """重新推送: a new push of the same interface and business object as log ``log_id``."""
    old = db.session.get(PushLog, log_id)
    if old is None or old.direction != "out" or old.interface not in RESENDABLE:
        raise PushRefused(_l("Only pushes we sent can be sent again."))
    partner = old.partner
    if not _pushable(partner):
        raise PushRefused(_l("The partner is disabled or pushes to it are off."))
    return queue_push(partner, old.interface, order_id=old.order_id, business_key=old.business_key)


def push_order(order_id: int) -> PushLog:
    """订单推送 (历史订单): send ChargeOrderInfo of a partner order to its partner again."""
    order = db.session.get(ChargeOrder, order_id)
    if order is None or not order.partner_id:
        raise PushRefused(_l("Only orders of a partner platform can be pushed."))
    partner = order.partner
    if not _pushable(partner) or partner.operator_id != order.operator_id:
        raise PushRefused(_l("The partner is disabled or pushes to it are off."))
    if order.status not in ("finished", "settled"):
        raise PushRefused(_l("Only finished orders can be pushed."))
    return queue_push(partner, "notification_charge_order_info", order_id=order.id,
                      business_key=payloads.start_charge_seq(order, partner.our_operator_code))


# ---- sending (the job) ------------------------------------------------------------------------------
def _order_of(row, partner):
    order = db.session.get(ChargeOrder, row.order_id) if row.order_id else None
    if order is None or order.operator_id != partner.operator_id:
        raise PushRefused(_l("The order does not exist or belongs to another operator."))
    return order


def build_payload(row, partner) -> dict:
    from app.interconnect import dialect

    code = partner.our_operator_code
    iface = row.interface
    if iface == "notification_stationStatus":
        connector = db.session.execute(                   # columns only: no relationship loading per push
            select(Connector.code, Connector.status, Connector.park_status, Connector.lock_status)
            .join(Station, Station.id == Connector.station_id)
            .where(Connector.code == row.business_key, Station.operator_id == partner.operator_id)).first()
        if connector is None:
            raise PushRefused(_l("The connector does not exist or belongs to another operator."))
        return dialect.station_status_payload(partner, [payloads.connector_status_info(connector)])
    if iface == "notification_stationInfo":
        station = db.session.scalar(select(Station).where(Station.code == row.business_key,
                                                          Station.operator_id == partner.operator_id))
        if station is None:
            raise PushRefused(_l("The station does not exist or belongs to another operator."))
        return {"StationInfo": station_info(station, partner)}
    if iface == "check_charge_orders":
        return check_payload(partner, row.business_key)
    order = _order_of(row, partner)
    if iface == "notification_charge_order_info":
        return payloads.charge_order_info(order, code)
    if iface == "notification_equip_charge_status":
        return payloads.charging_snapshot(order, code)
    seq = payloads.start_charge_seq(order, code)
    stat = payloads.SEQ_STAT.get(order.status, 5)
    if iface == "notification_start_charge_result":
        return {"StartChargeSeq": seq, "StartChargeSeqStat": stat, "ConnectorID": order.connector.code,
                "StartTime": payloads.tcec_time(order.started_at or order.created_at),
                "IdentCode": (order.order_no or "")[-6:]}
    if iface == "notification_stop_charge_result":
        return {"StartChargeSeq": seq, "StartChargeSeqStat": stat, "ConnectorID": order.connector.code,
                "SuccStat": 0, "FailReason": 0}
    raise PushRefused(_l("Unknown interface %(name)s", name=iface))


def station_info(station, partner) -> dict:
    """StationInfo of our station: the builder query_stations_info answers with."""
    from app.services.interconnect import station_info as build

    return build(station, partner)


def _after_success(row, partner, data):
    iface = row.interface
    if iface == "notification_charge_order_info" and row.order_id:
        order = db.session.get(ChargeOrder, row.order_id)
        if order is not None:
            if "ConfirmResult" in data:
                order.partner_confirm_result = int(data["ConfirmResult"])
            order.pushed_at = clock.utcnow()
            order_state.record(order, "pushed", detail={"partner_id": partner.id, "push_log_id": row.id,
                                                        "confirm_result": data.get("ConfirmResult")})
    elif iface == "check_charge_orders":
        record_disputes(partner, row.business_key, data, "out")


def _push_row(log_id):
    """The PushLog row, its columns only (no partner/channel loading on every refresh)."""
    return db.session.execute(select(PushLog).options(noload("*")).where(PushLog.id == log_id)
                              .execution_options(populate_existing=True)).scalar_one_or_none()


def send(log_id: int, *, inline=False, clients=None) -> str:
    """Send push ``log_id`` once. Returns a short result. As the push job it raises on failure so RQ
    retries it; ``inline`` (the gun status job sending right away) schedules the push job for the retries
    instead. ``clients``: PartnerClient per partner id, reused across calls."""
    from app.interconnect.client import PartnerClient, PushError

    row = _push_row(log_id)
    if row is None:
        return "no such push"
    if row.status == "success":
        return "already delivered"
    if row.status == "failed" and row.attempts > current_app.config["TCEC_PUSH_RETRY_MAX"]:
        return "failed"
    clients = {} if clients is None else clients
    client = clients.get(row.partner_id)
    if client is None:
        client = PartnerClient(db.session.get(Partner, row.partner_id, options=[noload("*")]))
        clients[row.partner_id] = client
    partner = client.partner                       # its columns, read once per job
    try:
        if not _pushable(partner):
            raise PushRefused(_l("The partner is disabled or pushes to it are off."))
        payload = build_payload(row, partner)
    except PushRefused as exc:
        row.status, row.msg = "failed", str(exc)[:255]
        db.session.commit()
        return f"refused: {exc}"
    try:
        data = client.call(row.interface, payload, log=row)
    except PushError as exc:
        row = _push_row(log_id)
        if row.attempts > current_app.config["TCEC_PUSH_RETRY_MAX"]:
            row.status, row.next_retry_at = "failed", None
            db.session.commit()
            return f"failed after {row.attempts} attempts: {exc}"
        interval = current_app.config["TCEC_PUSH_RETRY_INTERVAL"]
        row.status = "retrying"
        row.next_retry_at = clock.utcnow() + timedelta(seconds=interval)
        db.session.commit()
        if inline:
            enqueue_log(row.id, delay=interval)
            return f"retry in {interval} s: {exc}"
        raise
    if row.interface in ("notification_charge_order_info", "check_charge_orders"):
        _after_success(_push_row(log_id), partner, data)
        db.session.commit()
    return "delivered"


def watchdog(now=None, limit=1000) -> dict:
    """Cron: pushes left 'pending'/'retrying' for TCEC_PUSH_STALE_SECONDS whose job is not waiting or
    running (its worker was killed, the enqueue was lost) are enqueued again (same job id, same row)."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job, JobStatus

    redis = get_redis()
    now = now or clock.utcnow()
    stale = current_app.config["TCEC_PUSH_STALE_SECONDS"]
    rows = db.session.execute(select(PushLog.id, PushLog.updated_at).where(
        PushLog.direction == "out", PushLog.status.in_(("pending", "retrying")),
        PushLog.updated_at <= now - timedelta(seconds=stale)).order_by(PushLog.id).limit(limit)).all()
    db.session.rollback()
    again = []
    for log_id, _updated in rows:
        try:
            job = Job.fetch(f"push-{log_id}", connection=redis)
            status = job.get_status(refresh=False)
        except NoSuchJobError:
            job, status = None, None
        if status in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED):
            continue
        if status == JobStatus.STARTED and job is not None:
            started = job.started_at or job.enqueued_at
            if started is not None and (now - clock.to_naive_utc(started)).total_seconds() < stale:
                continue
        enqueue_log(log_id, redis)
        again.append(log_id)
    return {"enqueued": again}


# ---- gun status (from the gateway) -------------------------------------------------------------------
_partner_ops = {"at": 0.0, "ids": frozenset()}


def _operators_with_partners() -> frozenset:
    now = time.monotonic()
    if now - _partner_ops["at"] > current_app.config["TCEC_PARTNER_CACHE_SECONDS"]:
        ids = db.session.scalars(select(Partner.operator_id).where(
            Partner.enabled.is_(True), Partner.push_enabled.is_(True),
            Partner.partner_type == "platform").distinct()).all()
        _partner_ops.update(at=now, ids=frozenset(ids))
    return _partner_ops["ids"]


def gun_status_changed(changes, redis=None) -> int:
    """Gateway hook, after its batch is committed: ``changes`` = objects with ``connector_id``,
    ``operator_id``, ``status``. Cheap: one Redis transaction writes the latest status per gun and flags
    each gun that has no waiting push (SET NX ``GUN_JOB_KEY``, one waiting job per gun); the flagged guns
    of this batch go to one job. A burst of changes of a gun is thus one or two pushes of its last status.
    Returns the number of guns flagged."""
    ops = _operators_with_partners()
    latest = {c.connector_id: c.status for c in changes if c.operator_id in ops}
    if not latest:
        return 0
    redis = redis or get_redis()
    pipe = redis.pipeline()
    pipe.hset(GUN_STATUS_KEY, mapping={str(k): v for k, v in latest.items()})
    for cid in latest:
        pipe.set(GUN_JOB_KEY.format(cid), "1", nx=True, ex=GUN_JOB_TTL)
    created = pipe.execute()[1:]
    flagged = [cid for cid, new in zip(latest, created, strict=True) if new]
    if flagged:
        from rq import Retry

        _queue(redis).enqueue("app.tasks.interconnect.gun_status_job", flagged, retry=Retry(max=2, interval=5),
                              description=f"status of {len(flagged)} gun(s)", result_ttl=600,
                              failure_ttl=24 * 3600)
    return len(flagged)


def push_gun_status(connector_ids, redis=None) -> int:
    """The gun status job: take the pending status of each gun (atomically, dropping its job flag so a
    later change queues a new job), write one PushLog row per gun and platform partner of its operator,
    then send them right away (a failed one goes to its own push job for the retries). Returns the rows."""
    ids = [int(connector_ids)] if isinstance(connector_ids, (int, str)) else [int(c) for c in connector_ids]
    if not ids:
        return 0
    redis = redis or get_redis()
    fields = [str(c) for c in ids]
    pipe = redis.pipeline()
    for cid in ids:
        pipe.delete(GUN_JOB_KEY.format(cid))
    pipe.hmget(GUN_STATUS_KEY, fields)
    pipe.hdel(GUN_STATUS_KEY, *fields)
    statuses = pipe.execute()[len(ids)]
    pending = [cid for cid, status in zip(ids, statuses, strict=True) if status is not None]
    if not pending:
        return 0
    guns = db.session.execute(select(Connector.code, Station.operator_id)
                              .join(Station, Station.id == Connector.station_id)
                              .where(Connector.id.in_(pending)).order_by(Connector.id)).all()
    partners_of, rows = {}, []
    for code, operator_id in guns:
        if operator_id not in partners_of:
            partners_of[operator_id] = [p for p in active_partners(operator_id, "platform") if p.base_url]
        rows += [PushLog(partner_id=p.id, operator_id=p.operator_id, direction="out",
                         interface="notification_stationStatus", business_key=code, status="pending", attempts=0)
                 for p in partners_of[operator_id]]
    if not rows:
        return 0
    db.session.add_all(rows)
    db.session.flush()
    ids = [r.id for r in rows]
    db.session.commit()                 # recorded before sending: a worker killed now leaves them to the watchdog
    clients = {}
    for log_id in ids:
        send(log_id, inline=True, clients=clients)
    return len(ids)


# ---- partner order events ------------------------------------------------------------------------------
_SESSION_KEY = "cpms_tcec_order_pushes"


def _collect(session, flush_context):
    found = session.info.get(_SESSION_KEY)
    for obj in session.new:
        if isinstance(obj, OrderEvent) and obj.event in ORDER_EVENT_PUSHES:
            order = obj.order
            if order is not None and order.partner_id:
                if found is None:
                    found = session.info[_SESSION_KEY] = []
                found.append((ORDER_EVENT_PUSHES[obj.event], order.id))


def _enqueue_collected(session):
    found = session.info.pop(_SESSION_KEY, None)
    if not found:
        return
    try:
        queue = _queue()
        for interface, order_id in dict.fromkeys(found):
            queue.enqueue("app.tasks.interconnect.order_event_job", interface, order_id,
                          job_id=f"tcec-{interface}-{order_id}" if interface in ONCE_PER_ORDER else None,
                          description=f"{interface} order {order_id}", result_ttl=3600)
    except Exception:  # never fail the caller's committed work; the cron snapshot/order push catches up
        log.exception("could not queue partner pushes %s", found)


def _forget(session, previous_transaction):
    """The outermost transaction rolled back: its events never happened (a SAVEPOINT rollback keeps them)."""
    if previous_transaction.parent is None:
        session.info.pop(_SESSION_KEY, None)


def install_order_listeners():
    """Every Session: partner order events committed -> their push jobs (Redis only, after commit)."""
    if not event.contains(Session, "after_flush", _collect):
        event.listen(Session, "after_flush", _collect)
        event.listen(Session, "after_commit", _enqueue_collected)
        event.listen(Session, "after_soft_rollback", _forget)


def push_order_event(interface: str, order_id: int) -> int:
    """Job: queue ``interface`` for the order's partner (once per order for start/stop results)."""
    order = db.session.get(ChargeOrder, order_id)
    if order is None or not order.partner_id:
        return 0
    partner = order.partner
    if not _pushable(partner) or partner.operator_id != order.operator_id:
        return 0
    events = [e for e, i in ORDER_EVENT_PUSHES.items() if i == interface]
    if events and not any(order_state.has_event(order, e) for e in events):
        return 0                                  # the event was rolled back (a savepoint): nothing happened
    if interface in ONCE_PER_ORDER and db.session.scalar(select(PushLog.id).where(
            PushLog.partner_id == partner.id, PushLog.interface == interface, PushLog.order_id == order.id,
            PushLog.direction == "out").limit(1)):
        return 0
    queue_push(partner, interface, order_id=order.id,
               business_key=payloads.start_charge_seq(order, partner.our_operator_code))
    return 1


def push_charging_snapshots() -> int:
    """Cron (every TCEC_CHARGE_STATUS_INTERVAL s): notification_equip_charge_status of every charging
    partner order."""
    rows = db.session.execute(select(ChargeOrder.id, ChargeOrder.partner_id).where(
        ChargeOrder.status == "charging", ChargeOrder.partner_id.is_not(None))).all()
    n = 0
    for order_id, _partner_id in rows:
        n += push_order_event("notification_equip_charge_status", order_id)
    return n


# ---- regulators ------------------------------------------------------------------------------------
def push_regulators(now=None) -> dict:
    """Cron (every TCEC_REGULATOR_PUSH_SECONDS): to each regulator, station info of its operator's stations
    changed since the last run (all on the first), the status of connectors changed since then, and
    ChargeOrderInfo of orders settled since then."""
    redis = get_redis()
    now = now or clock.utcnow()
    report = {}
    regulators = db.session.scalars(select(Partner).where(
        Partner.partner_type == "regulator", Partner.enabled.is_(True), Partner.push_enabled.is_(True))).all()
    for partner in regulators:
        if not partner.base_url:
            continue
        raw = redis.get(REGULATOR_CURSOR.format(partner.id))
        since = clock.parse_iso_utc(raw.decode() if isinstance(raw, bytes) else raw) if raw else None
        stations = select(Station.code).where(Station.operator_id == partner.operator_id, Station.source == "local")
        if since is not None:
            stations = stations.where(Station.updated_at > since)
        station_codes = db.session.scalars(stations).all()
        connectors = select(Connector.code).join(Station, Station.id == Connector.station_id).where(
            Station.operator_id == partner.operator_id, Station.source == "local")
        if since is not None:
            connectors = connectors.where(Connector.status_changed_at > since)
        connector_codes = db.session.scalars(connectors).all()
        orders = select(ChargeOrder).where(ChargeOrder.operator_id == partner.operator_id,
                                           ChargeOrder.status == "settled")
        if since is not None:
            orders = orders.where(ChargeOrder.settled_at > since)
        order_list = db.session.scalars(orders.order_by(ChargeOrder.id)).all()
        for code in station_codes:
            queue_push(partner, "notification_stationInfo", business_key=code, redis=redis)
        for code in connector_codes:
            queue_push(partner, "notification_stationStatus", business_key=code, redis=redis)
        for order in order_list:
            queue_push(partner, "notification_charge_order_info", order_id=order.id,
                       business_key=payloads.start_charge_seq(order, partner.our_operator_code), redis=redis)
        redis.set(REGULATOR_CURSOR.format(partner.id), now.isoformat())
        report[partner.id] = {"stations": len(station_codes), "connectors": len(connector_codes),
                              "orders": len(order_list)}
    return report


# ---- reconciliation ------------------------------------------------------------------------------------
def check_order_seq(partner, day) -> str:
    return f"{partner.our_operator_code}{day:%Y%m%d}{partner.id:010d}"[:27]


def _day_orders(partner, day):
    start, end = clock.day_bounds_utc(day)
    return db.session.scalars(select(ChargeOrder).where(
        ChargeOrder.partner_id == partner.id, ChargeOrder.operator_id == partner.operator_id,
        ChargeOrder.status.in_(("finished", "settled")), ChargeOrder.ended_at >= start,
        ChargeOrder.ended_at < end).order_by(ChargeOrder.id)).all(), start, end


def _parse_day(key):
    from datetime import date

    return date.fromisoformat(key)


def check_payload(partner, day_key) -> dict:
    day = _parse_day(day_key)
    orders, start, end = _day_orders(partner, day)
    items = []
    for order in orders:
        total = payloads.order_money(order)[2]
        items.append({"StartChargeSeq": payloads.start_charge_seq(order, partner.our_operator_code),
                      "TotalPower": payloads.q2(order.energy), "TotalMoney": total})
    return {"CheckOrderSeq": check_order_seq(partner, day), "StartTime": payloads.tcec_time(start),
            "EndTime": payloads.tcec_time(end - timedelta(seconds=1)), "OrderCount": len(items),
            "TotalOrderPower": sum((i["TotalPower"] for i in items), Decimal("0.00")),
            "TotalOrderMoney": sum((i["TotalMoney"] for i in items), Decimal("0.00")), "ChargeOrders": items}


def record_disputes(partner, day_key, data, direction) -> int:
    """DisputeOrders of a check_charge_orders answer -> ReconciliationDispute rows (both sides' figures)."""
    day = _parse_day(day_key)
    start, end = clock.day_bounds_utc(day)
    seq = data.get("CheckOrderSeq") or check_order_seq(partner, day)
    n = 0
    for item in data.get("DisputeOrders") or []:
        sc_seq = str(item.get("StartChargeSeq") or "")
        order = db.session.scalar(select(ChargeOrder).where(ChargeOrder.partner_id == partner.id,
                                                            ChargeOrder.partner_order_no == sc_seq))
        exists = db.session.scalar(select(ReconciliationDispute.id).where(
            ReconciliationDispute.partner_id == partner.id, ReconciliationDispute.direction == direction,
            ReconciliationDispute.check_order_seq == seq, ReconciliationDispute.start_charge_seq == sc_seq))
        if exists:
            continue
        db.session.add(ReconciliationDispute(
            operator_id=partner.operator_id, partner_id=partner.id, direction=direction, check_order_seq=seq,
            start_charge_seq=sc_seq, order_id=order.id if order else None, period_start=start, period_end=end,
            their_power=Decimal(str(item.get("TotalPower", 0))), their_money=Decimal(str(item.get("TotalMoney", 0))),
            our_power=payloads.q2(order.energy) if order else None,
            our_money=(payloads.q2(order.electricity_fee) + payloads.q2(order.service_fee)) if order else None,
            reason=int(item.get("DisputeReason") or 4)))
        n += 1
    return n


def reconcile(partner, day) -> PushLog:
    """Queue check_charge_orders of the local ``day`` to ``partner`` (a push: retried, logged)."""
    return queue_push(partner, "check_charge_orders", business_key=day.isoformat())


def reconcile_due(now=None) -> list:
    """Cron (hourly): after local midnight + TCEC_RECONCILE_AFTER_MINUTES, check the previous local day
    with every platform partner not yet checked for it (a 'check_charge_orders' push exists)."""
    local = clock.local_now(now)
    if local.hour * 60 + local.minute < current_app.config["TCEC_RECONCILE_AFTER_MINUTES"]:
        return []
    day = local.date() - timedelta(days=1)
    done = []
    partners = db.session.scalars(select(Partner).where(
        Partner.partner_type == "platform", Partner.enabled.is_(True), Partner.push_enabled.is_(True))).all()
    for partner in partners:
        if not partner.base_url or db.session.scalar(select(PushLog.id).where(
                PushLog.partner_id == partner.id, PushLog.interface == "check_charge_orders",
                PushLog.direction == "out", PushLog.business_key == day.isoformat()).limit(1)):
            continue
        reconcile(partner, day)
        done.append(partner.id)
    return done


# ---- 获取充电站 --------------------------------------------------------------------------------------
PAGE_SIZE = 50
MAX_PAGES = 1000


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _dec_or_none(value):
    try:
        return quantize(Decimal(str(value)), Decimal("0.000001"))
    except (ArithmeticError, ValueError, TypeError):
        return None


def _text(value, n):
    return None if value in (None, "") else str(value)[:n]


def upsert_station(partner, info: dict, now) -> PartnerStation:
    code = str(info.get("StationID") or "")[:32]
    row = db.session.scalar(select(PartnerStation).where(PartnerStation.partner_id == partner.id,
                                                         PartnerStation.station_code == code))
    if row is None:
        row = PartnerStation(partner_id=partner.id, operator_id=partner.operator_id, station_code=code)
        db.session.add(row)
    equipment = info.get("EquipmentInfos") or []
    if not isinstance(equipment, list):
        equipment = []
    row.station_operator_code = _text(info.get("OperatorID"), 16)
    row.equipment_owner_code = _text(info.get("EquipmentOwnerID"), 16)
    row.name = _text(info.get("StationName"), 64)
    row.area_code = _text(info.get("AreaCode"), 16)
    row.address = _text(info.get("Address"), 128)
    row.station_tel = _text(info.get("StationTel"), 32)
    row.service_tel = _text(info.get("ServiceTel"), 32)
    row.station_type = _int_or_none(info.get("StationType"))
    row.station_status = _int_or_none(info.get("StationStatus"))
    row.park_nums = _int_or_none(info.get("ParkNums"))
    row.lng, row.lat = _dec_or_none(info.get("StationLng")), _dec_or_none(info.get("StationLat"))
    row.construction = _int_or_none(info.get("Construction"))
    row.busine_hours = _text(info.get("BusineHours"), 128)
    row.electricity_fee = _text(info.get("ElectricityFee"), 256)
    row.service_fee = _text(info.get("SeviceFee") or info.get("ServiceFee"), 128)
    row.park_fee = _text(info.get("ParkFee"), 128)
    from app.interconnect.client import wire_numbers

    equipment = wire_numbers(equipment)        # JSON columns: numbers as JSON numbers
    row.equipment = equipment
    row.equipment_count = len(equipment)
    row.connector_count = sum(len(e.get("ConnectorInfos") or []) for e in equipment if isinstance(e, dict))
    row.raw = wire_numbers({k: v for k, v in info.items() if k != "EquipmentInfos"})
    row.fetched_at = now
    return row


def fetch_partner_stations(partner_id: int, last_query_time: str | None = None) -> dict:
    """获取充电站: call the partner's query_stations_info page by page until PageCount, upsert every
    station (equipment and connectors kept with it). Each page is logged in the push log."""
    from app.interconnect.client import PartnerClient

    partner = db.session.get(Partner, partner_id)
    if partner is None or not partner.enabled or not partner.base_url:
        raise PushRefused(_l("The partner is disabled or has no interface URL."))
    client = PartnerClient(partner)
    page, pages, seen = 1, 1, 0
    now = clock.utcnow()
    while page <= pages and page <= MAX_PAGES:
        request = {"PageNo": page, "PageSize": PAGE_SIZE}
        if last_query_time:
            request["LastQueryTime"] = last_query_time
        data = client.call("query_stations_info", request, business_key=f"page {page}")
        pages = max(1, int(data.get("PageCount") or 1))
        for info in data.get("StationInfos") or []:
            if isinstance(info, dict) and info.get("StationID"):
                upsert_station(partner, info, now)
                seen += 1
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            raise
        page += 1
    return {"stations": seen, "pages": page - 1}
