"""Our T/CEC 102 endpoints for partner platforms: the rules (app/interconnect/server.py is the HTTP shell).

Checks, in this order, for every request (docs/tcec-protocol.md §2.4, §2.5):

1. body is a JSON object carrying OperatorID, Data, TimeStamp, Seq and Sig as non-empty strings → else **4003**;
2. the OperatorID names an enabled partner and Sig verifies with the keys we issued it
   (``partner_keys_ours``; several partner rows may share an OperatorID across operators: the one whose
   SigSecret verifies is the caller) → else **4001**. Nothing is decrypted before this;
3. the caller's IP is in ``Partner.ip_allowlist`` (empty = any) → else **4002** (an authorisation failure
   like a bad token, answered signed, Msg "IP address not allowed"; 4001 would send the partner looking
   at its keys);
4. TimeStamp within ±TCEC_TIMESTAMP_WINDOW of our clock (local time) and OperatorID+TimeStamp+Seq never
   seen before (Redis SET NX, kept twice the window) → else **4001**: a replayed or stale message is a
   signature that must not be accepted again (4003 is reserved for missing envelope fields);
5. every interface but query_token: ``Authorization: Bearer <token>`` issued to this partner and not
   expired (Redis, TokenAvailableTime = TCEC_TOKEN_SECONDS) → else **4002**;
6. Data decrypts to a JSON object → else **4004**; then the interface's own required fields → **4004**.

Other answers: **−1** "system busy" when the same StartChargeSeq is being started by a concurrent request
(retry later) or Redis is unreachable; **500** on any unexpected error (rolled back, logged).

Scope: the partner's requests run ``acting_as(scope_for_operator(partner.operator_id))`` — an operator's
partner sees that operator's own stations (``Station.source == 'local'``) and nothing else. A station of
another operator is answered **4004** exactly like an unknown one (existence is not revealed); device-level
calls whose spec has a FailReason for it answer SuccStat 1 (query_start_charge / query_stop_charge:
FailReason 1 "device does not exist").

Every exchange is logged in PushLog (direction 'in': interface, partner, Ret, Msg, latency, decrypted
bodies with secrets and personal data masked).

Partner starts call :func:`app.services.charging.start_charge` (origin 'partner', the partner's channel,
``partner_id``, ``partner_order_no`` = StartChargeSeq); a repeated StartChargeSeq answers the first
result and starts nothing (first result kept in Redis, the order found by the unique
(partner_id, partner_order_no) otherwise).

Payloads shared with the pushes (charging snapshot, ConnectorStatusInfo, StartChargeSeqStat) come from
:mod:`app.services.interconnect_payloads`.
"""
from __future__ import annotations

import hmac
import json
import logging
import math
import re
import secrets
import time
from datetime import datetime
from decimal import Decimal

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from app.extensions import db, get_redis
from app.interconnect import codec, dialect
from app.interconnect.codec import (
    RET_BUSINESS_PARAMS,
    RET_BUSY,
    RET_OK,
    RET_POST_PARAMS,
    RET_SIG,
    RET_SYSTEM,
    RET_TOKEN,
    TcecError,
)
from app.models import ChargeOrder, Connector, Partner, Pile, PushLog, ReconciliationDispute, Station
from app.models.pile import (
    CONNECTOR_STATUS_TCEC,
    CONNECTOR_TYPE_TCEC,
    NATIONAL_STANDARD_TCEC,
    PILE_TYPE_TCEC,
)
from app.models.station import SITE_TYPE_TCEC, STATION_STATUS_TCEC, STATION_TYPE_TCEC
from app.security.scope import acting_as, apply_scope, in_scope, platform_scope, scope_for_operator
from app.services import clock, live_state, partners
from app.services import interconnect_payloads as payloads
from app.services.errors import ChargingError, GunDisabled, GunFault, GunNotFree, PileNotOnline
from app.services.money import quantize

log = logging.getLogger(__name__)

INTERFACES = ("query_token", "query_stations_info", "query_station_status", "query_station_stats",
              "query_equip_auth", "query_equip_business_policy", "query_start_charge",
              "query_equip_charge_status", "query_stop_charge", "check_charge_orders")

TOKEN_KEY = "cpms:tcec:token:{token}"
SEEN_KEY = "cpms:tcec:seen:{operator}:{timestamp}:{seq}"
START_KEY = "cpms:tcec:start:{partner}:{seq}"
START_LOCK = "cpms:tcec:start:{partner}:{seq}:lock"
SEQ_RE = re.compile(r"[0-9A-Za-z]{1,16}")
TIME_FMT = "%Y-%m-%d %H:%M:%S"

SEQ_STAT = payloads.SEQ_STAT   # StartChargeSeqStat by order status (one mapping for answers and pushes)
# query_start_charge FailReason: 1 no such device, 2 offline, 3–99 custom (ours below)
START_FAIL_NO_DEVICE, START_FAIL_OFFLINE, START_FAIL_BUSY, START_FAIL_FAULT, START_FAIL_DISABLED = 1, 2, 3, 4, 5
START_FAIL_OTHER = 99
# query_stop_charge FailReason: 1 no such device, 2 offline, 3 already stopped, 4–99 custom
STOP_FAIL_NO_DEVICE, STOP_FAIL_OFFLINE, STOP_FAIL_STOPPED, STOP_FAIL_OTHER = 1, 2, 3, 99
ENDED = ("finished", "settled", "failed", "abnormal")

SECRET_KEYS = {"OperatorSecret", "AccessToken"}
PERSONAL_KEYS = {"IdentCode", "UserName", "PhoneNum", "Phone", "Mobile", "PlateNum", "PlateNo", "CarNo", "Vin",
                 "VIN", "CardNo", "IdCard", "UserID"}

Q2, Q1, Q4, Q6 = Decimal("0.01"), Decimal("0.1"), Decimal("0.0001"), Decimal("0.000001")


def q(value, exp):
    return quantize(value if value is not None else 0, exp)


def local_text(value):
    return clock.format_local(value, TIME_FMT) if value else ""


# --- the envelope pipeline ---------------------------------------------------------------------------------


class Answer:
    """What to send back: the envelope, plus what the log needs."""

    def __init__(self, envelope, partner=None, ret=RET_OK, msg="", request_body=None, response_body=None,
                 business_key=None, order_id=None, seq=None):
        self.envelope, self.partner, self.ret, self.msg = envelope, partner, ret, msg
        self.request_body, self.response_body = request_body, response_body
        self.business_key, self.order_id, self.seq = business_key, order_id, seq


def answer(interface: str, body: bytes, authorization: str | None, remote_addr: str | None) -> Answer:
    """The signed answer to one partner request (never raises)."""
    started = time.monotonic()
    state = {"partner": None, "keys": None, "payload": None, "key": None, "order_id": None, "seq": None}
    try:
        ret, msg, out = RET_OK, "", _serve(interface, body, authorization, remote_addr, state)
    except TcecError as exc:
        db.session.rollback()
        ret, msg, out = exc.ret, exc.msg, None
    except RedisError:
        db.session.rollback()
        log.exception("T/CEC %s: Redis unavailable", interface)
        ret, msg, out = RET_BUSY, "system busy, retry later", None
    except Exception:
        db.session.rollback()
        log.exception("T/CEC %s: system error", interface)
        ret, msg, out = RET_SYSTEM, "system error", None
    partner, keys = state["partner"], state["keys"]
    if keys is not None:
        wire = dialect.to_wire(partner, out) if out is not None else None
        envelope = codec.build_response(keys, ret, msg, wire)
    else:  # no partner could be identified: nothing to sign with
        envelope = {"Ret": ret, "Msg": msg, "Data": "", "Sig": ""}
    result = Answer(envelope, partner, ret, msg, state["payload"], out, state["key"], state["order_id"],
                    state["seq"])
    if partner is not None:
        _log_exchange(interface, result, int((time.monotonic() - started) * 1000))
    return result


def _serve(interface, body, authorization, remote_addr, state):
    try:
        envelope = json.loads(body or b"")
    except ValueError:
        raise TcecError(RET_POST_PARAMS, "request body is not JSON") from None
    codec.check_request_fields(envelope)
    partner, keys = identify(envelope, state)
    state["partner"], state["keys"], state["seq"] = partner, keys, envelope["Seq"]
    if not SEQ_RE.fullmatch(envelope["Seq"]):
        raise TcecError(RET_POST_PARAMS, "Seq invalid")
    sent_at = parse_timestamp(envelope["TimeStamp"])
    check_ip(partner, remote_addr)
    check_fresh(envelope, sent_at)
    if interface != "query_token":
        check_token(partner, authorization)
    payload = dialect.from_wire(partner, codec.open_request(keys, envelope))
    state["payload"] = payload
    with _partner_scope(partner):
        return HANDLERS[interface](partner, payload, state)


def _partner_scope(partner):
    if partner.operator_id is None:   # a platform-wide partner record: every operator's stations
        return platform_scope(f"tcec:{partner.id}")
    return acting_as(scope_for_operator(partner.operator_id), name=f"tcec:{partner.id}")


def identify(envelope, state):
    """(partner, our keys) of the request's OperatorID whose SigSecret verifies the Sig; 4001 otherwise.
    When exactly one partner has that OperatorID, a 4001 is still answered signed with its keys and logged."""
    code = envelope["OperatorID"]
    with platform_scope("tcec:identify"):
        candidates = db.session.scalars(select(Partner).where(Partner.partner_operator_code == code,
                                                              Partner.enabled.is_(True))
                                        .order_by(Partner.id)).all()
    for partner in candidates:
        keys = codec.partner_keys_ours(partner)
        try:
            codec.verify_request(keys, envelope)
        except TcecError:
            continue
        return partner, keys
    if len(candidates) == 1:
        state["partner"], state["keys"] = candidates[0], codec.partner_keys_ours(candidates[0])
        raise TcecError(RET_SIG, "signature error")
    raise TcecError(RET_SIG, "unknown OperatorID or signature error")


def parse_timestamp(text):
    try:
        value = datetime.strptime(text, "%Y%m%d%H%M%S")
    except ValueError:
        raise TcecError(RET_POST_PARAMS, "TimeStamp invalid (yyyyMMddHHmmss)") from None
    if len(text) != 14:
        raise TcecError(RET_POST_PARAMS, "TimeStamp invalid (yyyyMMddHHmmss)")
    return clock.local_to_utc(value)


def check_ip(partner, remote_addr):
    import ipaddress

    allowed = partners.split_allowlist(partner.ip_allowlist)
    if not allowed:
        return
    try:
        ip = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        raise TcecError(RET_TOKEN, "IP address not allowed") from None
    if not any(ip in ipaddress.ip_network(entry, strict=False) for entry in allowed):
        raise TcecError(RET_TOKEN, "IP address not allowed")


def check_fresh(envelope, sent_at):
    window = int(current_app.config["TCEC_TIMESTAMP_WINDOW"])
    if abs((clock.utcnow() - sent_at).total_seconds()) > window:
        raise TcecError(RET_SIG, "TimeStamp outside the accepted window")
    key = SEEN_KEY.format(operator=envelope["OperatorID"], timestamp=envelope["TimeStamp"], seq=envelope["Seq"])
    if not get_redis().set(key, "1", nx=True, ex=2 * window + 1):
        raise TcecError(RET_SIG, "replayed request (OperatorID, TimeStamp and Seq already seen)")


def check_token(partner, authorization):
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise TcecError(RET_TOKEN, "token missing")
    owner = get_redis().get(TOKEN_KEY.format(token=token))
    if owner is None or int(owner) != partner.id:
        raise TcecError(RET_TOKEN, "token invalid or expired")


def issue_token(partner) -> tuple[str, int]:
    seconds = int(current_app.config["TCEC_TOKEN_SECONDS"])
    token = secrets.token_urlsafe(36)
    get_redis().set(TOKEN_KEY.format(token=token), partner.id, ex=seconds)
    return token, seconds


def mask_payload(value):
    """A decrypted body for the log: secrets replaced, personal data masked, numbers JSON-safe."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in SECRET_KEYS:
                out[k] = "******" if v else v
            elif k in PERSONAL_KEYS and isinstance(v, str):
                out[k] = partners.mask(v)
            else:
                out[k] = mask_payload(v)
        return out
    if isinstance(value, list):
        return [mask_payload(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    return value


def _log_exchange(interface, result: Answer, duration_ms):
    partner = result.partner
    try:
        with platform_scope("tcec:log"):
            db.session.add(PushLog(
                operator_id=partner.operator_id, partner_id=partner.id, direction="in", interface=interface,
                seq=(result.seq or "")[:8] or None, order_id=result.order_id,
                business_key=(str(result.business_key)[:64] if result.business_key else None),
                request_body=mask_payload(result.request_body), response_body=mask_payload(result.response_body),
                http_status=200, ret=result.ret, msg=(result.msg or "")[:255],
                status="success" if result.ret == RET_OK else "failed", attempts=1, duration_ms=duration_ms))
            db.session.commit()
    except Exception:  # the log never changes the answer
        db.session.rollback()
        log.exception("could not log the T/CEC exchange %s of partner %s", interface, partner.id)


# --- helpers for handlers ---------------------------------------------------------------------------------


def require(payload, *names):
    for name in names:
        value = payload.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise TcecError(RET_BUSINESS_PARAMS, f"{name} missing")
    return [payload[name] for name in names]


def visible_stations():
    """Our own stations the partner may see (scope in force)."""
    return apply_scope(select(Station).where(Station.source == "local"), Station)


def find_connector(code):
    if not isinstance(code, str):
        return None
    connector = db.session.scalar(select(Connector).where(Connector.code == code))
    if connector is None or not in_scope(connector) or connector.station.source != "local":
        return None
    return connector


def find_partner_order(partner, seq, lock=False):
    stmt = select(ChargeOrder).where(ChargeOrder.partner_id == partner.id, ChargeOrder.partner_order_no == seq)
    if lock:
        stmt = stmt.with_for_update()
    return db.session.scalar(stmt)


def gun_statuses(connectors) -> dict[str, str]:
    """ConnectorID → live status (the gateway's Redis hash), else the database's."""
    live = live_state.live_guns(get_redis(), [c.code for c in connectors])
    return {c.code: (live.get(c.code) or {}).get("status") or c.status for c in connectors}


# --- station info -----------------------------------------------------------------------------------------


def _fee_texts(template):
    if template is None or not template.periods:
        return "", ""
    elec, service = [], []
    for p in sorted(template.periods, key=lambda p: p.start_minute):
        span = f"{p.start_minute // 60:02d}:{p.start_minute % 60:02d}-{p.end_minute // 60:02d}:{p.end_minute % 60:02d}"
        elec.append(f"{span} {q(p.electricity_price, Q4)}元/度")
        service.append(f"{span} {q(p.service_price, Q4)}元/度")
    return ";".join(elec)[:256], ";".join(service)[:100]


def connector_info(pile, c):
    return {"ConnectorID": c.code, "ConnectorName": c.name or c.code,
            "ConnectorType": CONNECTOR_TYPE_TCEC.get(c.interface_type, 6),
            "VoltageUpperLimits": int(c.voltage_upper or 0), "VoltageLowerLimits": int(c.voltage_lower or 0),
            "Current": int(c.current or 0), "Power": q(c.power_kw if c.power_kw is not None else pile.power_kw, Q1),
            "ParkNo": c.park_no or "", "NationalStandard": NATIONAL_STANDARD_TCEC.get(c.national_standard, 2)}


def equipment_info(pile):
    maker = pile.manufacturer or (pile.model.manufacturer if pile.model else None)
    return {"EquipmentID": pile.code, "ManufacturerID": (maker.code if maker else "")[:9],
            "ManufacturerName": (maker.name if maker else "")[:30],
            "EquipmentModel": (pile.model.code if pile.model else "")[:20],
            "ProductionDate": pile.production_date.isoformat() if pile.production_date else "",
            "EquipmentType": PILE_TYPE_TCEC.get(pile.pile_type, 5),
            "EquipmentLng": q(pile.lng if pile.lng is not None else pile.station.lng, Q6),
            "EquipmentLat": q(pile.lat if pile.lat is not None else pile.station.lat, Q6),
            "Power": q(pile.power_kw, Q1), "EquipmentName": (pile.name or pile.code)[:30],
            "ConnectorInfos": [connector_info(pile, c) for c in pile.connectors]}


def station_info(station, partner):
    """StationInfo of our station (query_stations_info; the regulator pushes use it too)."""
    elec_fee, service_fee = _fee_texts(station.price_template)
    return {
        "StationID": station.code, "OperatorID": partner.our_operator_code,
        "EquipmentOwnerID": station.equipment_owner_code or partner.our_operator_code,
        "StationName": station.name[:50], "CountryCode": "CN",
        "AreaCode": station.area_code or station.district_code or station.city_code or "",
        "Address": (station.address or "")[:50], "StationTel": station.station_tel or "",
        "ServiceTel": station.service_tel or station.station_tel or "",
        "StationType": STATION_TYPE_TCEC.get(station.station_type, 255),
        "StationStatus": STATION_STATUS_TCEC.get(station.status, 0), "ParkNums": station.park_nums or 0,
        "StationLng": q(station.lng, Q6), "StationLat": q(station.lat, Q6), "SiteGuide": station.site_guide or "",
        "Construction": SITE_TYPE_TCEC.get(station.site_type, 255), "Pictures": [],
        "MatchCars": station.match_cars or "", "ParkInfo": station.park_info or "",
        "BusineHours": station.business_hours or "", "ElectricityFee": elec_fee, "ServiceFee": service_fee,
        "ParkFee": station.park_fee or "", "Payment": station.payment_methods or "",
        "SupportOrder": 1 if station.support_order else 0, "Remark": station.remark or "",
        "EquipmentInfos": [equipment_info(p) for p in station.piles],
    }


def _int_param(payload, name, default, low, high):
    value = payload.get(name, default)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise TcecError(RET_BUSINESS_PARAMS, f"{name} invalid") from None
    if number != value and str(number) != str(value).strip() or not low <= number <= high:
        raise TcecError(RET_BUSINESS_PARAMS, f"{name} invalid")
    return number


def query_stations_info(partner, payload, state):
    page_no = _int_param(payload, "PageNo", 1, 1, 10**6)
    page_size = _int_param(payload, "PageSize", 10, 1, int(current_app.config["TCEC_PAGE_SIZE_MAX"]))
    stmt = visible_stations()
    since_text = payload.get("LastQueryTime")
    if since_text:
        try:
            since = clock.local_to_utc(datetime.strptime(str(since_text), TIME_FMT))
        except ValueError:
            raise TcecError(RET_BUSINESS_PARAMS, "LastQueryTime invalid (yyyy-MM-dd HH:mm:ss)") from None
        stmt = stmt.where(or_(
            Station.updated_at >= since,
            exists().where(Pile.station_id == Station.id, Pile.updated_at >= since),
            exists().where(Connector.station_id == Station.id, Connector.updated_at >= since)))
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = db.session.scalars(stmt.order_by(Station.id).offset((page_no - 1) * page_size).limit(page_size)
                              .options(selectinload(Station.piles).selectinload(Pile.connectors))).all()
    return {"PageNo": page_no, "PageCount": math.ceil(total / page_size), "ItemSize": total,
            "StationInfos": [station_info(s, partner) for s in rows]}


def _stations_by_code(codes):
    stations = db.session.scalars(visible_stations().where(Station.code.in_(codes))).all()
    found = {s.code: s for s in stations}
    missing = [c for c in codes if c not in found]
    if missing:
        raise TcecError(RET_BUSINESS_PARAMS, f"unknown StationID: {','.join(missing)[:100]}")
    return found


def query_station_status(partner, payload, state):
    codes = payload.get("StationIDs")
    if not isinstance(codes, list) or not codes or not all(isinstance(c, str) and c for c in codes):
        raise TcecError(RET_BUSINESS_PARAMS, "StationIDs missing")
    if len(codes) > 50:
        raise TcecError(RET_BUSINESS_PARAMS, "at most 50 StationIDs")
    codes = list(dict.fromkeys(codes))
    stations = _stations_by_code(codes)
    ids = {s.id: code for code, s in stations.items()}
    connectors = db.session.scalars(select(Connector).where(Connector.station_id.in_(ids))
                                    .order_by(Connector.code)).all()
    statuses = gun_statuses(connectors)
    by_station = {code: [] for code in codes}
    for c in connectors:
        by_station[ids[c.station_id]].append(payloads.connector_status_info(c, statuses[c.code]))
    return {"Total": len(codes),
            "StationStatusInfos": [{"StationID": code, "ConnectorStatusInfos": by_station[code]} for code in codes]}


def _day(payload, name):
    try:
        return datetime.strptime(str(payload.get(name) or ""), "%Y-%m-%d").date()
    except ValueError:
        raise TcecError(RET_BUSINESS_PARAMS, f"{name} invalid (yyyy-MM-dd)") from None


def query_station_stats(partner, payload, state):
    (code,) = require(payload, "StationID")
    first, last = _day(payload, "StartTime"), _day(payload, "EndTime")
    if last < first:
        raise TcecError(RET_BUSINESS_PARAMS, "EndTime before StartTime")
    station = _stations_by_code([code])[code]
    state["key"] = code
    start, end = clock.day_bounds_utc(first)[0], clock.day_bounds_utc(last)[1]
    rows = db.session.execute(
        select(ChargeOrder.connector_id, func.coalesce(func.sum(ChargeOrder.energy), 0))
        .where(ChargeOrder.station_id == station.id, ChargeOrder.status.in_(("finished", "settled")),
               ChargeOrder.ended_at >= start, ChargeOrder.ended_at < end)
        .group_by(ChargeOrder.connector_id)).all()
    energy = {cid: Decimal(total) for cid, total in rows}
    equipment, station_total = [], Decimal(0)
    for pile in station.piles:
        guns = [{"ConnectorID": c.code, "ConnectorElectricity": q(energy.get(c.id, 0), Q2)} for c in pile.connectors]
        pile_total = sum((g["ConnectorElectricity"] for g in guns), Decimal("0.00"))
        station_total += pile_total
        equipment.append({"EquipmentID": pile.code, "EquipmentElectricity": q(pile_total, Q2),
                          "ConnectorStatsInfos": guns})
    return {"StationStats": {"StationID": code, "StartTime": first.isoformat(), "EndTime": last.isoformat(),
                             "StationElectricity": q(station_total, Q2), "EquipmentStatsInfos": equipment}}


# --- device calls -----------------------------------------------------------------------------------------


def _connector_or_4004(payload):
    connector = find_connector(payload.get("ConnectorID"))
    if connector is None:
        raise TcecError(RET_BUSINESS_PARAMS, "unknown ConnectorID")
    return connector


def query_equip_auth(partner, payload, state):
    seq, code = require(payload, "EquipAuthSeq", "ConnectorID")
    state["key"] = seq
    connector = _connector_or_4004(payload)
    status = gun_statuses([connector])[connector.code]
    if connector.enabled and connector.pile.enabled and status == "occupied":
        succ, fail = 0, 0
    elif connector.enabled and connector.pile.enabled and status == "idle":
        succ, fail = 1, 1          # gun not plugged in
    else:
        succ, fail = 1, 2          # device check failed (offline, fault, busy, disabled)
    return {"EquipAuthSeq": seq, "ConnectorID": code, "SuccStat": succ, "FailReason": fail}


def query_equip_business_policy(partner, payload, state):
    seq, code = require(payload, "EquipBizSeq", "ConnectorID")
    state["key"] = seq
    connector = _connector_or_4004(payload)
    template = connector.station.price_template
    periods = sorted(template.periods, key=lambda p: p.start_minute) if template is not None else []
    if not periods:
        return {"EquipBizSeq": seq, "ConnectorID": code, "SuccStat": 1, "FailReason": 1, "SumPeriod": 0,
                "PolicyInfos": []}
    infos = [{"StartTime": f"{p.start_minute // 60:02d}{p.start_minute % 60:02d}00",
              "ElecPrice": q(p.electricity_price, Q4), "SevicePrice": q(p.service_price, Q4)} for p in periods]
    return {"EquipBizSeq": seq, "ConnectorID": code, "SuccStat": 0, "FailReason": 0, "SumPeriod": len(infos),
            "PolicyInfos": infos}


def _start_result(seq, code, succ, fail, order=None):
    return {"StartChargeSeq": seq, "StartChargeSeqStat": SEQ_STAT.get(order.status, 5) if order else 5,
            "ConnectorID": code, "SuccStat": succ, "FailReason": fail}


def _start_failure(exc):
    if isinstance(exc, PileNotOnline):
        return START_FAIL_OFFLINE
    if isinstance(exc, GunNotFree):
        return START_FAIL_BUSY
    if isinstance(exc, GunFault):
        return START_FAIL_FAULT
    if isinstance(exc, GunDisabled):
        return START_FAIL_DISABLED
    return START_FAIL_OTHER


def query_start_charge(partner, payload, state):
    seq, code = require(payload, "StartChargeSeq", "ConnectorID")
    if not isinstance(seq, str) or len(seq) > 64:
        raise TcecError(RET_BUSINESS_PARAMS, "StartChargeSeq invalid")
    state["key"] = seq
    redis = get_redis()
    result_key = START_KEY.format(partner=partner.id, seq=seq)
    lock_key = START_LOCK.format(partner=partner.id, seq=seq)
    first = _first_start_result(partner, seq, result_key, state)
    if first is not None:
        return first
    if not redis.set(lock_key, "1", nx=True, ex=120):
        raise TcecError(RET_BUSY, "this StartChargeSeq is being started, retry later")
    try:
        first = _first_start_result(partner, seq, result_key, state)
        if first is not None:
            return first
        result = _start(partner, seq, code, state)
        redis.set(result_key, json.dumps(result), ex=int(current_app.config["TCEC_START_RESULT_SECONDS"]))
        return result
    finally:
        redis.delete(lock_key)


def _first_start_result(partner, seq, result_key, state):
    stored = get_redis().get(result_key)
    order = find_partner_order(partner, seq)
    if order is not None:
        state["order_id"] = order.id
    if stored is not None:
        result = json.loads(stored)
        if order is not None:   # the state now, not the one of the first answer
            result["StartChargeSeqStat"] = SEQ_STAT.get(order.status, 5)
        return result
    if order is not None:
        failed = order.status == "failed"
        return _start_result(seq, order.connector.code, 1 if failed else 0, START_FAIL_OTHER if failed else 0, order)
    return None


def _start(partner, seq, code, state):
    from app.services import charging

    connector = find_connector(code)
    if connector is None:
        return _start_result(seq, code, 1, START_FAIL_NO_DEVICE)
    try:
        order = charging.start_charge(connector.id, origin="partner", channel_id=partner.channel_id,
                                      partner_id=partner.id, partner_order_no=seq)
    except IntegrityError:             # the same StartChargeSeq raced past the lock: the first one stands
        db.session.rollback()
        order = find_partner_order(partner, seq)
        if order is None:
            raise
        state["order_id"] = order.id
        return _start_result(seq, code, 0 if order.status != "failed" else 1,
                             0 if order.status != "failed" else START_FAIL_OTHER, order)
    except ChargingError as exc:
        db.session.rollback()
        order = find_partner_order(partner, seq)
        if order is not None:
            state["order_id"] = order.id
        return _start_result(seq, code, 1, _start_failure(exc), order)
    state["order_id"] = order.id
    return _start_result(seq, code, 0, 0, order)


def _order_or_4004(partner, payload, state):
    (seq,) = require(payload, "StartChargeSeq")
    state["key"] = seq
    order = find_partner_order(partner, seq)
    if order is None:
        raise TcecError(RET_BUSINESS_PARAMS, "unknown StartChargeSeq")
    state["order_id"] = order.id
    return seq, order


def query_stop_charge(partner, payload, state):
    from app.services import charging

    seq, order = _order_or_4004(partner, payload, state)
    code = payload.get("ConnectorID") or order.connector.code

    def result(succ, fail, current):
        return {"StartChargeSeq": seq, "StartChargeSeqStat": SEQ_STAT.get(current.status, 5), "ConnectorID": code,
                "SuccStat": succ, "FailReason": fail}

    if code != order.connector.code:
        return result(1, STOP_FAIL_NO_DEVICE, order)
    if order.status in ENDED:
        return result(1, STOP_FAIL_STOPPED, order)
    order_id = order.id
    try:
        order = charging.stop_charge(order_id, by="partner")
    except ChargingError as exc:
        db.session.rollback()
        order = db.session.get(ChargeOrder, order_id)
        if order.status in ENDED:
            return result(1, STOP_FAIL_STOPPED, order)
        if "offline" in str(exc):
            return result(1, STOP_FAIL_OFFLINE, order)
        return result(1, STOP_FAIL_OTHER, order)
    return result(0, 0, order)


# --- charging snapshot (the same payload the pushes send: app/services/interconnect_payloads.py) ----------


def query_equip_charge_status(partner, payload, state):
    _, order = _order_or_4004(partner, payload, state)
    snapshot = payloads.charging_snapshot(order, partner.our_operator_code)
    status = gun_statuses([order.connector])[order.connector.code]     # the gun as it is now
    snapshot["ConnectorStatus"] = CONNECTOR_STATUS_TCEC.get(status, 0)
    return snapshot


# --- reconciliation (served side) --------------------------------------------------------------------------


def _money(value, name):
    try:
        return q(Decimal(str(value)), Q2)
    except (ArithmeticError, ValueError, TypeError):
        raise TcecError(RET_BUSINESS_PARAMS, f"{name} invalid") from None


def check_charge_orders(partner, payload, state):
    check_seq, start_text, end_text = require(payload, "CheckOrderSeq", "StartTime", "EndTime")
    state["key"] = check_seq
    orders = payload.get("ChargeOrders")
    if not isinstance(orders, list):
        raise TcecError(RET_BUSINESS_PARAMS, "ChargeOrders missing")
    try:
        period_start = clock.local_to_utc(datetime.strptime(str(start_text), TIME_FMT))
        period_end = clock.local_to_utc(datetime.strptime(str(end_text), TIME_FMT))
    except ValueError:
        raise TcecError(RET_BUSINESS_PARAMS, "StartTime/EndTime invalid (yyyy-MM-dd HH:mm:ss)") from None
    disputes = []
    for item in orders:
        if not isinstance(item, dict) or not isinstance(item.get("StartChargeSeq"), str):
            raise TcecError(RET_BUSINESS_PARAMS, "ChargeOrders item invalid")
        seq = item["StartChargeSeq"]
        their_power, their_money = _money(item.get("TotalPower"), "TotalPower"), _money(item.get("TotalMoney"),
                                                                                       "TotalMoney")
        order = find_partner_order(partner, seq)
        if order is None:
            disputes.append((seq, None, their_power, their_money, None, None, 1))
            continue
        power = payloads.q2(order.energy)           # the figures notification_charge_order_info carries
        money = payloads.order_money(order)[2]
        if money != their_money:
            reason = 2
        elif power != their_power:
            reason = 3
        else:
            continue
        disputes.append((seq, order, their_power, their_money, power, money, reason))
    _record_disputes(partner, check_seq, period_start, period_end, disputes)
    rows = [{"StartChargeSeq": seq, "TotalPower": our_power if our_power is not None else their_power,
             "TotalMoney": our_money if our_money is not None else their_money, "DisputeReason": reason}
            for seq, _, their_power, their_money, our_power, our_money, reason in disputes]
    return {"CheckOrderSeq": check_seq, "StartTime": start_text, "EndTime": end_text,
            "TotalDisputeOrder": len(rows),
            "TotalDisputePower": sum((r["TotalPower"] for r in rows), Decimal("0.00")),
            "TotalDisputeMoney": sum((r["TotalMoney"] for r in rows), Decimal("0.00")),
            "DisputeOrders": rows}


def _record_disputes(partner, check_seq, period_start, period_end, disputes):
    if not disputes:
        return
    seen = set(db.session.scalars(select(ReconciliationDispute.start_charge_seq).where(
        ReconciliationDispute.partner_id == partner.id, ReconciliationDispute.direction == "in",
        ReconciliationDispute.check_order_seq == check_seq)).all())
    for seq, order, their_power, their_money, our_power, our_money, reason in disputes:
        if seq in seen:                   # the same check sent again: recorded once
            continue
        db.session.add(ReconciliationDispute(
            operator_id=partner.operator_id, partner_id=partner.id, direction="in", check_order_seq=check_seq[:32],
            start_charge_seq=seq[:64], order_id=order.id if order else None, period_start=period_start,
            period_end=period_end, their_power=their_power, their_money=their_money, our_power=our_power,
            our_money=our_money, reason=reason))
    db.session.commit()


# --- query_token --------------------------------------------------------------------------------------------


def query_token(partner, payload, state):
    operator_id, secret = payload.get("OperatorID"), payload.get("OperatorSecret")
    if operator_id != partner.partner_operator_code:
        succ, fail = 1, 1          # no such operator
    elif not isinstance(secret, str) or not hmac.compare_digest(secret.encode(), partner.our_operator_secret.encode()):
        succ, fail = 1, 2          # wrong secret
    else:
        succ, fail = 0, 0
    token, seconds = issue_token(partner) if succ == 0 else ("", 0)
    return {"OperatorID": partner.partner_operator_code, "SuccStat": succ, "AccessToken": token,
            "TokenAvailableTime": seconds, "FailReason": fail}


HANDLERS = {
    "query_token": query_token,
    "query_stations_info": query_stations_info,
    "query_station_status": query_station_status,
    "query_station_stats": query_station_stats,
    "query_equip_auth": query_equip_auth,
    "query_equip_business_policy": query_equip_business_policy,
    "query_start_charge": query_start_charge,
    "query_equip_charge_status": query_equip_charge_status,
    "query_stop_charge": query_stop_charge,
    "check_charge_orders": check_charge_orders,
}
