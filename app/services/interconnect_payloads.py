"""T/CEC 102 payloads built from our data (standard CEC spellings; the client maps them to a partner's
dialect): ConnectorStatusInfo, the charging snapshot, ChargeOrderInfo, StartChargeSeq of our own orders.

Numbers are ``Decimal`` quantized to the places the standard gives (money and energy 2 decimals,
prices 4); the client writes them as JSON numbers. Times are local ``yyyy-MM-dd HH:mm:ss``.

Channel (issue 10 §9): a partner order keeps the partner's channel; ChargeOrderInfo and the charging
snapshot carry it as the extra field ``ChannelID`` (our Channel id, absent when the order has none)
so the 互联互通活动 discount of that channel can be matched later. Partners ignore unknown fields.
"""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from app.extensions import db
from app.models import ChargeOrder, Connector, OrderPeriod
from app.models.pile import CONNECTOR_STATUS_TCEC, LOCK_STATUS_TCEC, PARK_STATUS_TCEC
from app.services import clock
from app.services.money import quantize

TWO = Decimal("0.01")
FOUR = Decimal("0.0001")
ZERO = Decimal("0")

# StartChargeSeqStat: 1 starting · 2 charging · 3 stopping · 4 finished · 5 unknown
SEQ_STAT = {"pending": 1, "starting": 1, "charging": 2, "stopping": 3, "finished": 4, "settled": 4,
            "failed": 4, "abnormal": 4}
# StopReason: 0 user · 1 the customer's platform · 2 BMS · 3 charger fault · 4 connector disconnected
STOP_BY_PARTNER = 1


def q2(value) -> Decimal:
    """Money/energy on the wire: 2 decimals, half up (app.services.money)."""
    return quantize(value or 0, TWO)


def q4(value) -> Decimal:
    return quantize(value or 0, FOUR)


def tcec_time(value) -> str:
    return clock.format_local(value, "%Y-%m-%d %H:%M:%S") if value else ""


def start_charge_seq(order: ChargeOrder, our_operator_code: str) -> str:
    """The partner's StartChargeSeq of a partner order; for our own orders (regulators, reconciliation)
    our OperatorID + the order number left-padded with zeros to 18 characters (27 in all)."""
    if order.partner_order_no:
        return order.partner_order_no
    return f"{our_operator_code}{order.order_no:0>18}"[:27]


def connector_status_info(connector: Connector, status: str | None = None) -> dict:
    return {
        "ConnectorID": connector.code,
        "Status": CONNECTOR_STATUS_TCEC.get(status or connector.status, 0),
        "ParkStatus": PARK_STATUS_TCEC.get(connector.park_status, 0),
        "LockStatus": LOCK_STATUS_TCEC.get(connector.lock_status, 0),
    }


def _channel(order, payload):
    if order.channel_id:
        payload["ChannelID"] = str(order.channel_id)
    return payload


def order_money(order: ChargeOrder) -> tuple[Decimal, Decimal, Decimal]:
    """(TotalElecMoney, TotalSeviceMoney, TotalMoney) of an order on the wire: the fees *after* the
    order's discounts (campaign, coupon; :mod:`app.services.discounts`), what the user pays. Each fee is
    rounded to 2 decimals and TotalMoney is their sum — the one definition for ChargeOrderInfo and
    check_charge_orders (both directions), so the figures a partner reconciles are the ones pushed."""
    elec = q2((order.electricity_fee or ZERO) - (order.discount_electricity or ZERO))
    service = q2((order.service_fee or ZERO) - (order.discount_service or ZERO))
    return elec, service, elec + service


def charge_details(order: ChargeOrder, total_elec: Decimal, total_service: Decimal) -> list[dict]:
    """ChargeDetails of the order's periods (fees after each period's discounts); money rounded to 2
    decimals with the rounding difference put on the last period, so the details add up to the order's
    totals exactly."""
    periods = db.session.scalars(select(OrderPeriod).where(OrderPeriod.order_id == order.id)
                                 .order_by(OrderPeriod.seq)).all()
    details = [{
        "DetailStartTime": tcec_time(p.start_at), "DetailEndTime": tcec_time(p.end_at),
        "ElecPrice": q4(p.electricity_price), "SevicePrice": q4(p.service_price), "DetailPower": q2(p.energy),
        "DetailElecMoney": q2((p.electricity_fee or ZERO) - (p.discount_electricity or ZERO)),
        "DetailSeviceMoney": q2((p.service_fee or ZERO) - (p.discount_service or ZERO)),
    } for p in periods]
    if details:
        details[-1]["DetailElecMoney"] += total_elec - sum(d["DetailElecMoney"] for d in details)
        details[-1]["DetailSeviceMoney"] += total_service - sum(d["DetailSeviceMoney"] for d in details)
        if details[-1]["DetailElecMoney"] < 0 or details[-1]["DetailSeviceMoney"] < 0:
            return []          # figures replaced by staff after pricing: send the totals only
    return details[:32]


def charge_order_info(order: ChargeOrder, our_operator_code: str) -> dict:
    """notification_charge_order_info Data (ChargeOrderInfo fields at the top level, as the standard).
    Money is after discounts (:func:`order_money`); the extra field ``DiscountMoney`` (2 decimals) says
    how much the order's campaign and coupon took off (0 without)."""
    elec, service, total = order_money(order)
    details = charge_details(order, elec, service)
    payload = {
        "StartChargeSeq": start_charge_seq(order, our_operator_code),
        "ConnectorID": order.connector.code,
        "StartTime": tcec_time(order.started_at or order.created_at),
        "EndTime": tcec_time(order.ended_at or order.started_at or order.created_at),
        "TotalPower": q2(order.energy),
        "TotalElecMoney": elec,
        "TotalSeviceMoney": service,
        "TotalMoney": total,
        "DiscountMoney": q2(order.discount_total),
        "StopReason": stop_reason(order),
        "SumPeriod": len(details),
        "ChargeDetails": details,
    }
    return _channel(order, payload)


def stop_reason(order: ChargeOrder) -> int:
    if order.stop_reason_code is None:
        return STOP_BY_PARTNER if order.partner_id else 0
    # YKC stop reasons 0x40-0x4A: normal stops (user, app, full); 0x6x-0x9x: faults
    return 0 if order.stop_reason_code < 0x50 else 3


def charging_snapshot(order: ChargeOrder, our_operator_code: str, now=None) -> dict:
    """query_equip_charge_status answer / notification_equip_charge_status Data."""
    now = now or clock.utcnow()
    total = q2(order.live_amount if order.live_amount is not None else order.total_amount)
    service = q2(order.service_fee) if order.service_fee else q2(0)
    service = min(service, total)
    payload = {
        "StartChargeSeq": start_charge_seq(order, our_operator_code),
        "StartChargeSeqStat": SEQ_STAT.get(order.status, 5),
        "ConnectorID": order.connector.code,
        "ConnectorStatus": 3 if order.status == "charging" else 2,
        "CurrentA": q2(order.live_current), "VoltageA": q2(order.live_voltage), "Soc": q2(order.live_soc),
        "StartTime": tcec_time(order.started_at or order.created_at),
        "EndTime": tcec_time(max(now, order.started_at or order.created_at)),
        "TotalPower": q2(order.live_energy if order.live_energy is not None else order.energy),
        "ElecMoney": total - service,
        "SeviceMoney": service,
        "TotalMoney": total,
    }
    return _channel(order, payload)
