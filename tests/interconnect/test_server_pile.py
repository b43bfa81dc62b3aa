"""A partner starts and stops a real session: query_start_charge → the charging service → a gateway
process → a simulated YKC pile over TCP starts charging → query_equip_charge_status says charging (2)
→ query_stop_charge → the pile stops and bills → finished (4). One order, carrying the partner, its
channel and the StartChargeSeq; the repeated StartChargeSeq starts nothing."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.gateway.registry import Registry
from app.models import ChargeOrder, Connector, Pile
from app.services import clock
from tests.integration.gateway.conftest import ROOT, GatewayProcess, fetch, wait_until
from tests.interconnect.tcec_support import Caller, flask_post, tcec_partners  # noqa: F401 (fixture)

HOOKS = {"CHARGING_HOOKS": "app.services.charging:OrderHooks", "CHARGING_SAMPLE_FLUSH_INTERVAL": "0.2",
         "GATEWAY_COMMAND_TIMEOUT": "5"}


@pytest.fixture(scope="module")
def order_gateway(app, redis, gw_station):  # noqa: F811
    node = GatewayProcess(app, "gw-h1-tcec", **HOOKS).wait_ready(redis)
    yield node
    node.stop()


def test_partner_start_charging_stop_with_a_simulated_pile(app, redis, order_gateway, piles, tcec_partners):  # noqa: F811
    partner = tcec_partners["a"]
    code = piles()
    gun_code = f"{code}01"
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.gateway.simulator", "--port", str(order_gateway.port), "--codes", code,
         "--guns", "2", "--heartbeat", "1", "--realtime-charging", "0.3", "--realtime-idle", "5",
         "--bill-retry", "2", "--duration", "120", "--progress", "0"],
        cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    caller = Caller(flask_post(app.test_client()), partner["keys"])
    seq = "H1TSTA001" + f"{clock.utcnow():%m%d%H%M%S%f}"[:18]
    try:
        wait_until(lambda: Registry(redis).owner(code), timeout=20, message="simulated pile online")
        wait_until(lambda: fetch(app, select(Connector.status, Pile.online).join(Pile).where(
            Connector.code == gun_code))[0] == ("idle", True), timeout=15, message="gun idle, pile online")
        ret, _, data = caller.call("query_start_charge", {"StartChargeSeq": seq, "ConnectorID": gun_code,
                                                          "QRCode": ""})
        assert ret == 0 and (data["SuccStat"], data["FailReason"]) == (0, 0), data
        assert data["StartChargeSeqStat"] in (1, 2)

        def stat():
            ret, _, snap = caller.call("query_equip_charge_status", {"StartChargeSeq": seq})
            assert ret == 0
            return snap["StartChargeSeqStat"]

        wait_until(lambda: stat() == 2, timeout=20, interval=0.3, message="StartChargeSeqStat 2")

        # real speed (a faster simulated meter makes the bill exceed what the session could deliver);
        # stop only once some energy is on the meter (else the order is rightly abnormal: zero energy)
        def energy():
            ret, _, snap = caller.call("query_equip_charge_status", {"StartChargeSeq": seq})
            return snap["TotalPower"]

        wait_until(lambda: Decimal(str(energy())) > 0, timeout=20, interval=0.3, message="energy delivered")
        again = caller.call("query_start_charge", {"StartChargeSeq": seq, "ConnectorID": gun_code, "QRCode": ""})
        assert again[0] == 0 and again[2]["SuccStat"] == 0 and again[2]["StartChargeSeqStat"] == 2
        orders = fetch(app, select(ChargeOrder).where(ChargeOrder.partner_order_no == seq))
        assert len(orders) == 1
        order = orders[0][0]
        assert (order.partner_id, order.channel_id, order.start_method) == (partner["id"], partner["channel_id"],
                                                                           "partner")
        ret, _, data = caller.call("query_stop_charge", {"StartChargeSeq": seq, "ConnectorID": gun_code})
        assert ret == 0 and (data["SuccStat"], data["FailReason"]) == (0, 0), data
        assert data["StartChargeSeqStat"] in (3, 4)
        wait_until(lambda: stat() == 4, timeout=40, interval=0.3, message="StartChargeSeqStat 4")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert fetch(app, select(func.count()).select_from(ChargeOrder).where(
        ChargeOrder.partner_order_no == seq))[0][0] == 1
    ret, _, snap = caller.call("query_equip_charge_status", {"StartChargeSeq": seq})
    assert ret == 0 and snap["ConnectorID"] == gun_code
    order = fetch(app, select(ChargeOrder).where(ChargeOrder.partner_order_no == seq))[0][0]
    assert order.status in ("finished", "settled") and order.energy > 0, (order.status, order.abnormal_reason)
    assert snap["TotalPower"] == str(order.energy.quantize(Decimal("0.01")))
