"""Campaigns and coupons end to end (issue 13): real gateway, web and RQ worker processes, a scripted YKC
pile over real TCP (it answers the remote start, reports charging, 10 kWh, and sends its bill), the T/CEC
partner platform of ``tests/interconnect/partner_platform.py``.

1. A member starts through the member app API with a coupon (``POST /api/app/v1/charging/start``): the
   coupon is locked with the order, and the settlement applies the operation campaign (electricity 8折,
   service 5折, the test station only) and then the coupon 抵1 (deduction 1 yuan on the total).
2. A partner starts through ``query_start_charge``: the interconnect campaign of its channel
   (electricity 7折, service 6折) applies, and ``notification_charge_order_info`` pushes the figures
   after discount.

The session is 10.0000 kWh within one tariff period (the test waits past a boundary when one is near), so
the figures depend only on the period the test runs in (the gateway tests' TOU template):

Member order (campaign, then coupon 抵1 spread pro rata to the fees left, electricity first):

=======  ==============  =================  ========================  =================  ========  =======
period   fees e / s      campaign e / s     left e / s (T)            coupon e / s       discount  payable
=======  ==============  =================  ========================  =================  ========  =======
valley   3.1000/5.0000   0.6200/2.5000      2.4800/2.5000 (4.9800)    0.4980/0.5020      4.1200    3.9800
flat     6.2000/6.0000   1.2400/3.0000      4.9600/3.0000 (7.9600)    0.6231/0.3769      5.2400    6.9600
peak     10.5000/7.0000  2.1000/3.5000      8.4000/3.5000 (11.9000)   0.7059/0.2941      6.6000    10.9000
sharp    12.5000/8.0000  2.5000/4.0000      10.0000/4.0000 (14.0000)  0.7143/0.2857      7.5000    13.0000
=======  ==============  =================  ========================  =================  ========  =======

(coupon e share = 1 × left e / T rounded: 2.48/4.98 = 0.497992 → 0.4980, 4.96/7.96 = 0.623116 → 0.6231,
8.4/11.9 = 0.705882 → 0.7059, 10/14 = 0.714286 → 0.7143; the service share is the rest.)

Partner order (interconnect campaign 7折/6折, no coupon) and what is pushed (2 decimals):

=======  ==============  =================  ========  =======  ==========================================
period   fees e / s      discount e / s     discount  payable  TotalElecMoney/TotalSeviceMoney/TotalMoney
=======  ==============  =================  ========  =======  ==========================================
valley   3.1000/5.0000   0.9300/2.0000      2.9300    5.1700   2.17 / 3.00 / 5.17, DiscountMoney 2.93
flat     6.2000/6.0000   1.8600/2.4000      4.2600    7.9400   4.34 / 3.60 / 7.94, DiscountMoney 4.26
peak     10.5000/7.0000  3.1500/2.8000      5.9500    11.5500  7.35 / 4.20 / 11.55, DiscountMoney 5.95
sharp    12.5000/8.0000  3.7500/3.2000      6.9500    13.5500  8.75 / 4.80 / 13.55, DiscountMoney 6.95
=======  ==============  =================  ========  =======  ==========================================
"""
from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.extensions import db
from app.gateway.ykc import RealtimeData, RemoteStartReply, TransactionRecord, encode_reply, utcnow
from app.models import (
    Campaign,
    Channel,
    ChargeOrder,
    Connector,
    Coupon,
    CouponTemplate,
    Member,
    Partner,
    Station,
    WalletEntry,
)
from app.security.scope import platform_scope
from tests.integration.gateway.conftest import TOU, GatewayProcess, WorkerProcess, fetch, wait_until
from tests.integration.gateway.ykc_client import PileClient
from tests.interconnect.e2e_support import WebProcess, keys_for, partner_keys
from tests.interconnect.partner_platform import PartnerPlatform
from tests.member_api.support import headers_for

pytestmark = pytest.mark.usefixtures("money_invariants")

D = Decimal
ENERGY = D("10.0000")
PARTNER_CODE = "MADISCPT1"
ENV = {"CHARGING_HOOKS": "app.services.charging:OrderHooks", "CHARGING_SAMPLE_FLUSH_INTERVAL": "0.2",
       "GATEWAY_COMMAND_TIMEOUT": "10", "TCEC_PUSH_RETRY_INTERVAL": "1", "TCEC_PARTNER_CACHE_SECONDS": "0",
       "TCEC_HTTP_TIMEOUT": "5"}

# level: (period discount e, s, order discount total, payable) — the module doc's tables
MEMBER = {"valley": (D("1.1180"), D("3.0020"), D("4.1200"), D("3.9800")),
          "flat": (D("1.8631"), D("3.3769"), D("5.2400"), D("6.9600")),
          "peak": (D("2.8059"), D("3.7941"), D("6.6000"), D("10.9000")),
          "sharp": (D("3.2143"), D("4.2857"), D("7.5000"), D("13.0000"))}
MEMBER_CAMPAIGN = {"valley": D("3.1200"), "flat": D("4.2400"), "peak": D("5.6000"), "sharp": D("6.5000")}
PARTNER = {"valley": (D("0.9300"), D("2.0000"), D("2.9300"), D("5.1700"), (D("2.17"), D("3.00"), D("5.17"))),
           "flat": (D("1.8600"), D("2.4000"), D("4.2600"), D("7.9400"), (D("4.34"), D("3.60"), D("7.94"))),
           "peak": (D("3.1500"), D("2.8000"), D("5.9500"), D("11.5500"), (D("7.35"), D("4.20"), D("11.55"))),
           "sharp": (D("3.7500"), D("3.2000"), D("6.9500"), D("13.5500"), (D("8.75"), D("4.80"), D("13.55")))}
FEES = {"valley": (D("3.1000"), D("5.0000")), "flat": (D("6.2000"), D("6.0000")),
        "peak": (D("10.5000"), D("7.0000")), "sharp": (D("12.5000"), D("8.0000"))}


def local_minute(at=None):
    local = (at or utcnow()) + timedelta(hours=8)
    return local.hour * 60 + local.minute + local.second / 60


def level_now():
    minute = local_minute()
    for begin, stop, level, _, _ in TOU:
        if begin <= minute < stop:
            return level
    raise AssertionError(minute)


def away_from_a_boundary(margin=2.0):
    """Wait until the next tariff boundary is more than ``margin`` minutes away (the session stays in
    one period) and return that period's level."""
    while True:
        minute = local_minute()
        if all(not (0 <= (b - minute) % 1440 < margin) for b, *_ in TOU):
            return level_now()
        time.sleep(5)


@pytest.fixture(scope="module")
def site(app, redis, gw_station, piles):
    """Processes, a partner with its own interconnect channel, and the operator's other campaigns
    running now switched off for the module (restored afterwards), so the figures are the tables'."""
    with app.app_context(), platform_scope("discounts-e2e"):
        operator = db.session.get(Station, gw_station["station_id"]).operator
        channel = Channel(operator=operator, code=f"DISC-{uuid.uuid4().hex[:6]}", name="优惠测试渠道",
                          channel_type="interconnect")
        db.session.add(channel)
        db.session.flush()
        now = utcnow()
        paused = list(db.session.scalars(select(Campaign.id).where(
            Campaign.operator_id == operator.id, Campaign.enabled.is_(True),
            Campaign.start_at <= now + timedelta(hours=2), Campaign.end_at > now)))
        for cid in paused:
            db.session.get(Campaign, cid).enabled = False
        fields = partner_keys(PARTNER_CODE, operator.code, "DISC")
        ids = {"operator_id": operator.id, "channel_id": channel.id, "station_id": gw_station["station_id"],
               "paused": paused}
        db.session.commit()
    calling_us, being_called = keys_for(fields)
    partner = PartnerPlatform(PARTNER_CODE, calling_us, being_called).start()
    with app.app_context(), platform_scope("discounts-e2e"):
        row = Partner(operator_id=ids["operator_id"], name="优惠测试平台", partner_type="platform",
                      base_url=partner.root_url, ip_allowlist="127.0.0.1", channel_id=ids["channel_id"], **fields)
        db.session.add(row)
        db.session.commit()
        ids["partner_id"] = row.id
    procs = []
    try:
        gateway = GatewayProcess(app, "gw-discounts", **ENV).wait_ready(redis)
        procs.append(gateway)
        procs.append(WorkerProcess(app, "discounts", **ENV))
        web = WebProcess(app, "web-discounts", **ENV).wait_ready()
        procs.append(web)
        yield {**ids, "gateway": gateway, "partner": partner, "client": partner.client(f"{web.url}/evcs/v1.0"),
               "code": piles(), "web_url": web.url, "procs": procs}
    finally:
        for proc in reversed(procs):
            proc.stop()
        partner.stop()
        with app.app_context(), platform_scope("discounts-e2e"):
            for cid in ids["paused"]:
                db.session.get(Campaign, cid).enabled = True
            partner_row = db.session.get(Partner, ids.get("partner_id"))
            if partner_row is not None:
                partner_row.enabled = False
            db.session.commit()


def campaign(app, site, **kw):
    now = utcnow()
    with app.app_context():
        c = Campaign(operator_id=site["operator_id"], name=f"E2E{uuid.uuid4().hex[:6]}", description="e2e",
                     start_at=now - timedelta(hours=1), end_at=now + timedelta(hours=2), enabled=True,
                     all_stations=False, **kw)
        c.stations = [db.session.get(Station, site["station_id"])]
        db.session.add(c)
        db.session.commit()
        return c.id


def disable(app, campaign_id):
    with app.app_context():
        db.session.get(Campaign, campaign_id).enabled = False
        db.session.commit()


def order_row(app, order_id):
    with app.app_context(), platform_scope("discounts-e2e"):
        order = db.session.get(ChargeOrder, order_id)
        periods = [(p.level, p.electricity_fee, p.service_fee, p.discount_electricity, p.discount_service)
                   for p in order.periods]
        db.session.expunge(order)
        return order, periods


def realtime(code, serial, energy, status=3):
    return RealtimeData(transaction_serial=serial, pile_code=code, gun="01", status=status, gun_plugged=1,
                        output_voltage=D("400.0"), output_current=D("100.0"), soc=50, energy=energy)


def charge(app, pile, code, start, seconds=20, procs=None):
    """Run ``start()`` (blocks until the pile answers) in a thread, answer the remote start, charge
    ENERGY, send the bill; return (what start returned, the order id)."""
    out = {}

    def run():
        with app.app_context():
            try:
                out["result"] = start()
            except Exception as exc:  # noqa: BLE001 - reported below
                out["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    header, command = pile.expect(0x34, timeout=20)
    serial = command.transaction_serial
    pile.send_bytes(encode_reply(RemoteStartReply(transaction_serial=serial, pile_code=code, gun="01", result=1,
                                                  failure_reason=0), header))
    thread.join(30)
    assert "error" not in out, out
    order_id = fetch(app, select(ChargeOrder.id).where(ChargeOrder.serial == serial))[0][0]
    begin = utcnow()
    pile.send(realtime(code, serial, D("0.0000")))
    wait_until(lambda: order_row(app, order_id)[0].status == "charging", timeout=20, message="charging")
    time.sleep(1)
    pile.send(realtime(code, serial, ENERGY))
    wait_until(lambda: order_row(app, order_id)[0].live_energy == ENERGY, timeout=20, message="live energy")
    time.sleep(0.5)                                              # the sample batch reaches the database
    level = level_now()
    price = {lv: D(ep) + D(sp) for _, _, lv, ep, sp in TOU}[level]
    amount = ENERGY * price
    end = utcnow()
    pile.send(TransactionRecord(transaction_serial=serial, pile_code=code, gun="01", start_time=begin, end_time=end,
                                flat_price=price, flat_energy=ENERGY, flat_lossy_energy=ENERGY, flat_amount=amount,
                                meter_start=D("100"), meter_stop=D("100") + ENERGY, total_energy=ENERGY,
                                total_lossy_energy=ENERGY, total_amount=amount, transaction_flag=1,
                                transaction_time=end, stop_reason=0x40))
    assert pile.expect(0x40, transaction_serial=serial)[1].result == 0
    try:
        wait_until(lambda: order_row(app, order_id)[0].status == "settled", timeout=40, message="settled")
    except AssertionError as exc:
        order = order_row(app, order_id)[0]
        raise AssertionError(f"{exc}: order {order.status}/{order.pay_status} {order.abnormal_reason!r}\n"
                             f"{process_logs(procs)}") from exc
    return out.get("result"), order_id


def process_logs(procs) -> str:
    """The exception lines and the tail of each process's log (a failure's diagnosis)."""
    parts = []
    for proc in procs or ():
        try:
            text = proc.log_path.read_text(errors="replace")
        except OSError:  # a process without a readable log
            continue
        errors = [line for line in text.splitlines() if re.match(r"^[\w.]*(Error|Exception)\b", line)]
        parts.append(f"--- {proc.log_path} (errors: {errors[-5:]}):\n{text[-1500:]}")
    return "\n".join(parts)


def new_member_with_coupon(app, site):
    from app.services.wallet import post_entry

    with app.app_context():
        m = Member(operator_id=site["operator_id"], member_no=f"E{uuid.uuid4().hex[:12]}", nickname="e2e",
                   status="active")
        db.session.add(m)
        db.session.flush()
        post_entry(m.id, D("100"), "recharge", idempotency_key=f"test:recharge:{m.member_no}")
        t = CouponTemplate(operator_id=site["operator_id"], name="抵1元", coupon_type="deduction", target="total",
                           face_value=D("1"), threshold=D("0"), validity_mode="fixed", valid_from=datetime(2020, 1, 1),
                           valid_to=datetime(2040, 1, 1), all_stations=True)
        db.session.add(t)
        db.session.flush()
        c = Coupon(operator_id=site["operator_id"], code=f"E2E{uuid.uuid4().hex[:16]}", template_id=t.id,
                   member_id=m.id, coupon_type="deduction", target="total", face_value=D("1"), threshold=D("0"),
                   valid_from=t.valid_from, valid_to=t.valid_to)
        db.session.add(c)
        db.session.commit()
        return m.id, c.id


def idle(pile, code):
    pile.send(RealtimeData(transaction_serial="0" * 32, pile_code=code, gun="01", status=2, gun_plugged=1))


def free(app, code):
    return fetch(app, select(Connector.status).where(Connector.code == f"{code}01"))[0][0] in ("idle", "occupied")


def test_member_charge_with_campaign_and_coupon(app, site):
    code = site["code"]
    cid = campaign(app, site, kind="operation", discount_mode="fixed", electricity_rate=D("0.8"),
                   service_rate=D("0.5"))
    member_id, coupon_id = new_member_with_coupon(app, site)
    try:
        with PileClient(site["gateway"].port, code) as pile:
            assert pile.login().result == 0
            pile.start_heartbeats(2)
            idle(pile, code)
            connector_id = fetch(app, select(Connector.id).where(Connector.code == f"{code}01"))[0][0]
            wait_until(lambda: free(app, code), timeout=15, message="gun free")
            level = away_from_a_boundary()

            def start():      # through the member app API of the web process, with the chosen coupon
                body = json.dumps({"connector_id": connector_id, "coupon_id": coupon_id}).encode()
                req = urllib.request.Request(f"{site['web_url']}/api/app/v1/charging/start", data=body, method="POST",
                                             headers={**headers_for(app, member_id),
                                                      "Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=60) as resp:
                    started = json.loads(resp.read())
                with app.app_context():
                    locked = db.session.get(Coupon, coupon_id)
                    return started["id"], locked.status, locked.order_id

            (started_id, status, locked_by), order_id = charge(app, pile, code, start, procs=site["procs"])
            pile.stop_heartbeats()
    finally:
        disable(app, cid)
    assert started_id == order_id and (status, locked_by) == ("locked", order_id)
    order, periods = order_row(app, order_id)
    e_disc, s_disc, total, payable = MEMBER[level]
    assert periods == [(level, *FEES[level], e_disc, s_disc)]
    assert (order.energy, order.total_amount) == (ENERGY, sum(FEES[level]))
    assert (order.discount_electricity, order.discount_service, order.discount_total) == (e_disc, s_disc, total)
    assert (order.payable_amount, order.paid_amount) == (payable, payable)
    assert (order.campaign_id, order.coupon_id) == (cid, coupon_id)
    with app.app_context():
        coupon = db.session.get(Coupon, coupon_id)
        assert (coupon.status, coupon.order_id, coupon.discount_amount) == ("used", order_id, D("1.0000"))
        debit = db.session.scalar(select(WalletEntry).where(WalletEntry.idempotency_key == f"settle:{order_id}"))
        assert debit.amount == -payable
        assert total - D("1.0000") == MEMBER_CAMPAIGN[level]


def test_partner_charge_with_interconnect_campaign_and_the_pushed_figures(app, site):
    code = site["code"]
    cid = campaign(app, site, kind="interconnect", channel_id=site["channel_id"], discount_mode="fixed",
                   electricity_rate=D("0.7"), service_rate=D("0.6"))
    client, partner = site["client"], site["partner"]
    client.token()
    seq = PARTNER_CODE + f"{int(time.time() * 1000) % 10 ** 18:018d}"
    try:
        with PileClient(site["gateway"].port, code) as pile:
            assert pile.login().result == 0
            pile.start_heartbeats(2)
            idle(pile, code)
            wait_until(lambda: free(app, code), timeout=15, message="gun free")
            level = away_from_a_boundary()

            def start():
                return client.call("query_start_charge", {"StartChargeSeq": seq, "ConnectorID": f"{code}01",
                                                          "QRCode": ""})

            (ret, msg, data), order_id = charge(app, pile, code, start, procs=site["procs"])
            pile.stop_heartbeats()
    finally:
        disable(app, cid)
    assert ret == 0 and data["SuccStat"] == 0, (ret, msg, data)
    order, periods = order_row(app, order_id)
    assert (order.partner_order_no, order.channel_id, order.member_id) == (seq, site["channel_id"], None)
    e_disc, s_disc, total, payable, wire = PARTNER[level]
    assert periods == [(level, *FEES[level], e_disc, s_disc)]
    assert (order.discount_total, order.payable_amount, order.paid_amount, order.pay_type) == (
        total, payable, payable, "partner")
    assert (order.campaign_id, order.coupon_id) == (cid, None)

    def pushed():
        return [d for d in partner.requests_for("notification_charge_order_info") if d.get("StartChargeSeq") == seq]

    wait_until(pushed, timeout=40, message="notification_charge_order_info")
    info = pushed()[0]
    assert (info["TotalElecMoney"], info["TotalSeviceMoney"], info["TotalMoney"]) == wire
    assert info["DiscountMoney"] == total.quantize(D("0.01"))
    assert info["TotalPower"] == ENERGY.quantize(D("0.01"))
    assert [(d["DetailElecMoney"], d["DetailSeviceMoney"]) for d in info["ChargeDetails"]] == [wire[:2]]
    # reconciliation counts the same money (check_charge_orders, our side)
    from app.services import interconnect_payloads

    with app.app_context():
        assert interconnect_payloads.order_money(db.session.get(ChargeOrder, order_id)) == wire
