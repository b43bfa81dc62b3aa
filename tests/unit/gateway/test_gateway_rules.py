"""Gateway rules without I/O: status mapping, alarms, JSON form of frames, hooks, metrics text."""

from datetime import datetime
from decimal import Decimal

from app.gateway.metrics import Metrics
from app.gateway.state_writer import (
    connector_status,
    fault_alarms,
    gun_number,
    protocol_version_text,
    realtime_fields,
    to_jsonable,
)
from app.gateway.ykc import (
    ParallelPileStartReply,
    ParallelPileStartRequest,
    PileStartReply,
    PileStartRequest,
    RealtimeData,
    TransactionRecord,
)
from app.services.charging_hooks import ChargingHooks, load_hooks, overrides


def test_connector_status_from_ykc():
    assert [connector_status(s, 0) for s in range(4)] == ["offline", "fault", "idle", "charging"]
    assert connector_status(2, 1) == "occupied"
    assert connector_status(9, 0) is None


def test_fault_alarms_from_status_and_bits():
    assert fault_alarms(2, 0) == {}
    alarms = fault_alarms(1, 0b1_0000_0000_0101)
    assert set(alarms) == {"FAULT", "HW01", "HW03", "HW13"}
    assert alarms["HW13"] == "Cabinet door open" and alarms["FAULT"] == "Connector reports fault status"
    assert fault_alarms(2, 1 << 15) == {"HW16": "Unknown hardware fault (bit 16)"}


def test_small_conversions():
    assert protocol_version_text(0x0F) == "1.5" and protocol_version_text(0x10) == "1.6"
    assert gun_number("02") == 2 and gun_number("0A") is None


def test_realtime_fields_and_json_form():
    msg = RealtimeData(transaction_serial="1" * 32, pile_code="2" * 14, gun="01", status=3, gun_plugged=1,
                       output_voltage=Decimal("373.2"), output_current=Decimal("101.2"), soc=78,
                       energy=Decimal("8.8"), amount=Decimal("9.328"))
    fields = realtime_fields(msg, "charging", datetime(2024, 5, 1, 1, 2, 3))
    assert fields["power"] == "37.77" and fields["status"] == "charging" and fields["soc"] == 78
    assert fields["updated_at"] == "2024-05-01T01:02:03"
    data = to_jsonable(TransactionRecord(physical_card=bytes.fromhex("00000000D14B0A54"),
                                         start_time=datetime(2024, 5, 1), total_amount=Decimal("1.5")))
    assert data["physical_card"] == "00000000D14B0A54" and data["start_time"] == "2024-05-01T00:00:00"
    assert data["total_amount"] == "1.5"


def test_default_hooks_refuse_pile_starts():
    hooks = ChargingHooks()
    reply = hooks.on_pile_start_request(PileStartRequest(pile_code="1" * 14, gun="02"))
    assert isinstance(reply, PileStartReply) and (reply.auth_result, reply.failure_reason, reply.gun) == (0, 1, "02")
    parallel = hooks.on_pile_start_request(ParallelPileStartRequest(pile_code="1" * 14, gun="01",
                                                                    parallel_serial="240501120000"))
    assert isinstance(parallel, ParallelPileStartReply) and parallel.parallel_serial == "240501120000"
    assert hooks.on_realtime(None, None, None) is None


class Orders(ChargingHooks):
    def on_realtime(self, pile, gun, msg):
        return "seen"


def test_hooks_are_loaded_from_the_setting():
    assert type(load_hooks(None)) is ChargingHooks
    hooks = load_hooks(f"{__name__}:Orders")
    assert isinstance(hooks, Orders)
    assert overrides(hooks, "on_realtime") and not overrides(hooks, "on_bms")


def test_metrics_text_format():
    m = Metrics()
    m.gauge("ykc_gateway_connections", lambda: 3)
    m.inc("ykc_gateway_frames_in_total", type="0x03")
    m.inc("ykc_gateway_frames_in_total", 2, type="0x03")
    m.observe("ykc_gateway_command_seconds", 0.004, type="0x34")
    m.observe("ykc_gateway_command_seconds", 0.2, type="0x34")
    text = m.render()
    assert "# TYPE ykc_gateway_connections gauge\nykc_gateway_connections 3" in text
    assert 'ykc_gateway_frames_in_total{type="0x03"} 3' in text
    assert 'ykc_gateway_command_seconds_bucket{type="0x34",le="0.005"} 1' in text
    assert 'ykc_gateway_command_seconds_bucket{type="0x34",le="+Inf"} 2' in text
    assert 'ykc_gateway_command_seconds_count{type="0x34"} 2' in text
    assert m.value("ykc_gateway_frames_in_total", type="0x03") == 3
