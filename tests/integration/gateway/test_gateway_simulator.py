"""The pile simulator (a separate process) against the gateway: it logs in, takes the billing model,
charges on a remote start, reports realtime data, stops on a remote stop, sends its bill (split by
the billing model's periods), answers every command and reconnects after a reboot."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.gateway.registry import Registry
from app.models import PileBill
from app.services import pile_commands
from app.services.live_state import live_guns, live_pile
from tests.integration.gateway.conftest import ROOT, fetch, wait_until


@pytest.fixture(scope="module")
def simulated(app, gateway, piles, redis, tmp_path_factory):
    codes = [piles(), piles()]
    stats = tmp_path_factory.mktemp("sim") / "stats.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.gateway.simulator", "--port", str(gateway.port), "--codes", ",".join(codes),
         "--guns", "2", "--heartbeat", "1", "--realtime-charging", "0.5", "--realtime-idle", "5",
         "--bill-retry", "2", "--speed", "60", "--duration", "120", "--progress", "0", "--stats-file", str(stats)],
        cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    registry = Registry(redis)
    wait_until(lambda: all(registry.owner(c) for c in codes), timeout=20, message="simulated piles online")
    wait_until(lambda: all(live_pile(redis, c).get("billing_model") for c in codes), message="billing model")
    yield {"codes": codes, "proc": proc, "stats": stats}
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def test_charge_cycle_with_the_simulator(app, simulated, redis):
    code = simulated["codes"][0]
    gun_code = f"{code}01"
    serial = f"{gun_code}2405011200000042"
    with app.app_context():
        reply = pile_commands.remote_start(gun_code, serial, Decimal("500"))
        assert (reply.result, reply.failure_reason) == (1, 0)
        again = pile_commands.remote_start(gun_code, f"{gun_code}2405011200000043", Decimal("500"))
        assert (again.result, again.failure_reason) == (0, 2)              # already charging
        wait_until(lambda: Decimal(live_guns(redis, [gun_code])[gun_code].get("energy", "0")) > 0,
                   message="energy reported")
        live = live_guns(redis, [gun_code])[gun_code]
        assert live["status"] == "charging" and live["serial"] == serial and Decimal(live["power"]) > 0
        data = pile_commands.read_realtime(gun_code)
        assert (data.status, data.transaction_serial) == (3, serial)
        stop = pile_commands.remote_stop(gun_code)
        assert stop.result == 1
    rows = wait_until(lambda: fetch(app, select(PileBill).where(PileBill.serial == serial)), message="bill stored")
    bill = rows[0][0]
    parsed = bill.parsed
    assert bill.total_energy > 0 and bill.stop_reason_code == 0x40 and bill.trade_flag == 1
    periods = ("sharp", "peak", "flat", "valley")
    assert sum(Decimal(parsed[f"{p}_energy"]) for p in periods) == bill.total_energy
    assert sum(Decimal(parsed[f"{p}_amount"]) for p in periods) == bill.total_amount
    unit_prices = {Decimal(parsed[f"{p}_price"]) for p in periods}
    assert unit_prices <= {Decimal("0.81"), Decimal("0.76"), Decimal("1.22"), Decimal("1.75"), Decimal("2.05")}
    assert bill.meter_stop - bill.meter_start == bill.total_energy


def test_the_simulator_answers_every_command(app, simulated):
    code = simulated["codes"][1]
    gun_code = f"{code}02"
    card = "00000000D14B0A54"
    with app.app_context():
        assert pile_commands.time_sync(code).pile_code == code
        assert pile_commands.work_parameters(code, power_limit=60).result == 1
        assert pile_commands.set_billing_model(code).result == 1
        assert pile_commands.ground_lock(gun_code, up=True).result == 1
        assert pile_commands.balance_update(gun_code, Decimal("12.34")).result == 0
        assert pile_commands.offline_card_sync(code, [("1234567890123456", card)]).result == 1
        query = pile_commands.offline_card_query(code, [card, "0000000000000001"])
        assert [r.exists for r in query.results] == [1, 0]
        assert [r.result for r in pile_commands.offline_card_clear(code, [card]).results] == [1]


def test_simulator_reconnects_after_reboot_and_reports(app, simulated, redis):
    code = simulated["codes"][1]
    before = live_pile(redis, code).get("login_at")
    with app.app_context():
        assert pile_commands.reboot(code).result == 1
    wait_until(lambda: live_pile(redis, code)["online"] and live_pile(redis, code).get("login_at") != before,
               timeout=15, message="pile back after reboot")
    proc = simulated["proc"]
    proc.send_signal(signal.SIGTERM)
    proc.wait(20)
    summary = json.loads(simulated["stats"].read_text())
    assert summary["dropped"] == 0 and summary["errors"] == 0 and summary["refused"] == 0
    assert summary["bills_acked"] >= 1 and summary["reboots"] >= 1
    assert summary["heartbeat_ack"]["count"] > 0
