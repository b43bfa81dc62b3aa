"""GatewayState without sockets: realtime frames change nothing in the database until the batch
flush; one flush writes the status changes, their log and the alarms in order; bills once."""

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import delete, func, select

from app.extensions import db, get_redis
from app.gateway.metrics import Metrics
from app.gateway.state_writer import DbBatch, GatewayState, StateSettings
from app.gateway.ykc import Login, RealtimeData, TransactionRecord, encode_frame, utcnow
from app.models import Alarm, Connector, ConnectorStatusLog, Pile, PileBill, Station
from app.services.live_state import live_guns, live_pile

CODE = "76000000000001"


@pytest.fixture
def state(app):
    with app.app_context():
        station = db.session.scalar(select(Station).order_by(Station.id))
        pile = Pile(operator_id=station.operator_id, station=station, code=CODE, name="batch test", gun_count=2)
        for gun in (1, 2):
            pile.connectors.append(Connector(operator_id=station.operator_id, station=station, gun_no=gun,
                                             code=f"{CODE}{gun:02d}", name=str(gun)))
        db.session.add(pile)
        db.session.commit()
        pile_id = pile.id
        yield GatewayState(app, get_redis(), StateSettings(node="unit-batch"), Metrics())
        for model in (Alarm, ConnectorStatusLog):
            db.session.execute(delete(model).where(model.pile_id == pile_id))
        db.session.execute(delete(PileBill).where(PileBill.pile_code == CODE))
        db.session.execute(delete(Connector).where(Connector.pile_id == pile_id))
        db.session.execute(delete(Pile).where(Pile.id == pile_id))
        db.session.commit()


def rows(statement):
    result = db.session.execute(statement).all()
    db.session.rollback()
    return result


def frame(gun="01", status=2, faults=0):
    return RealtimeData(transaction_serial="0" * 32, pile_code=CODE, gun=gun, status=status, hardware_faults=faults,
                        energy=Decimal("1.5"))


def test_realtime_is_batched_and_flushed_in_order(state):
    info = state.lookup_pile(CODE)
    assert sorted(info.connectors) == [1, 2] and state.accepts(info)
    state.pile_online(info, Login(pile_code=CODE, protocol_version=0x10, firmware_version="F1", carrier=0),
                      "c1", "peer", 0.0)
    gun = info.connectors[1]
    for _ in range(20):                                   # many frames, few changes
        state.realtime(info, gun, frame(status=2))
    state.realtime(info, gun, frame(status=1, faults=1))  # fault opens FAULT + HW01
    state.realtime(info, gun, frame(status=2))            # cleared
    state.realtime(info, gun, frame(status=2, faults=1))  # HW01 again
    for _ in range(20):
        state.realtime(info, gun, frame(status=3, faults=1))
    assert rows(select(Connector.status).where(Connector.code == f"{CODE}01"))[0][0] == "offline"
    assert rows(select(func.count()).select_from(ConnectorStatusLog).where(ConnectorStatusLog.pile_id == info.id)
                )[0][0] == 0                              # nothing written per frame

    written = state.batch.flush()
    assert written > 0 and not state.batch.pending()
    logs = rows(select(ConnectorStatusLog.previous_status, ConnectorStatusLog.status)
                .where(ConnectorStatusLog.pile_id == info.id).order_by(ConnectorStatusLog.id))
    assert [tuple(r) for r in logs] == [("offline", "idle"), ("idle", "fault"), ("fault", "idle"),
                                        ("idle", "charging")]
    assert rows(select(Connector.status).where(Connector.code == f"{CODE}01"))[0][0] == "charging"
    alarms = rows(select(Alarm.fault_code, Alarm.ended_at.is_(None)).where(Alarm.pile_id == info.id)
                  .order_by(Alarm.id))
    assert [tuple(a) for a in alarms] == [("FAULT", False), ("HW01", False), ("HW01", True)]
    pile = rows(select(Pile).where(Pile.code == CODE))[0][0]
    assert pile.online and pile.protocol_version == "1.6" and pile.carrier == "cmcc"

    state.live.flush()
    assert live_guns(state.redis, [f"{CODE}01"])[f"{CODE}01"]["status"] == "charging"
    assert live_pile(state.redis, CODE)["online"] is False            # node "unit-batch" never announced

    assert state.pile_offline(info, "c1", "test")
    state.batch.flush()
    assert {r[0] for r in rows(select(Connector.status).where(Connector.pile_id == info.id))} == {"offline"}
    assert not state.pile_offline(info, "c1", "test")                # no longer the owner: nothing to do


def test_a_failed_flush_keeps_the_batch(state, monkeypatch):
    info = state.lookup_pile(CODE)
    state.realtime(info, info.connectors[2], frame(gun="02", status=2))
    monkeypatch.setattr(DbBatch, "_write", staticmethod(lambda *a: (_ for _ in ()).throw(RuntimeError("db down"))))
    assert state.batch.flush() == 0 and state.batch.pending() and state.batch.failures == 1
    state.realtime(info, info.connectors[2], frame(gun="02", status=3))
    monkeypatch.undo()
    state.batch.flush()
    logs = rows(select(ConnectorStatusLog.status).where(ConnectorStatusLog.pile_id == info.id)
                .order_by(ConnectorStatusLog.id))
    assert [r[0] for r in logs] == ["idle", "charging"]


def test_bills_are_stored_once(state):
    info = state.lookup_pile(CODE)
    bill = TransactionRecord(transaction_serial=f"{CODE}012405010000000009", pile_code=CODE, gun="01",
                             start_time=utcnow() - timedelta(hours=1), end_time=utcnow(),
                             total_energy=Decimal("3.2"), total_amount=Decimal("2.5"), vin="LSVAU2180N2183294",
                             physical_card=bytes.fromhex("00000000D14B0A54"))
    raw = encode_frame(bill, 1)
    first = state.store_bill(info, raw, bill)
    second = state.store_bill(info, raw, bill)
    assert first.id == second.id
    stored = rows(select(PileBill).where(PileBill.serial == bill.transaction_serial))
    assert len(stored) == 1
    row = stored[0][0]
    assert (row.vin, row.physical_card_no, row.gun_no, row.operator_id) == (
        "LSVAU2180N2183294", "00000000D14B0A54", 1, info.operator_id)
    assert state.metrics.value("ykc_gateway_bills_total", outcome="stored") == 1
    assert state.metrics.value("ykc_gateway_bills_total", outcome="duplicate") == 1
