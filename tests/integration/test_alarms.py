"""告警 (issue 12 §4): alarms a pile raises over TCP (through a real gateway process) show the YKC
fault code's meaning in the user's language, their duration, open/closed and the other filters;
staff acknowledge an alarm once with a note (who, when, note recorded); the data scope holds
(operator B neither sees nor acknowledges operator A's alarms); alarms are never deleted."""

from __future__ import annotations

import io
import re
import uuid
from datetime import timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import delete, select

from app.extensions import db, get_redis
from app.gateway.ykc import RealtimeData
from app.models import Alarm, Connector, ConnectorStatusLog, Operator, Pile, Station
from app.services import clock, fault_codes
from tests.conftest import ADMIN_PASSWORD, csrf_token
from tests.integration.gateway.conftest import GatewayProcess, fetch, wait_until
from tests.integration.gateway.ykc_client import PileClient

STAFF_PASSWORD = "staff-pass-1"
PREFIX = "7813"                   # test piles 7813xxxxxxxxxx


def new_pile(app, operator_code) -> dict:
    with app.app_context():
        op = db.session.scalar(select(Operator).where(Operator.code == operator_code))
        station = db.session.scalar(select(Station).where(Station.operator_id == op.id).order_by(Station.id))
        code = f"{PREFIX}{uuid.uuid4().int % 10**10:010d}"
        pile = Pile(operator_id=op.id, station=station, code=code, name=f"告警测试桩{code[-4:]}", protocol="ykc15",
                    gun_count=2)
        for gun in (1, 2):
            pile.connectors.append(Connector(operator_id=op.id, station=station, gun_no=gun, code=f"{code}{gun:02d}",
                                             name=f"{code}-{gun}"))
        db.session.add(pile)
        db.session.commit()
        return {"code": code, "id": pile.id, "station_id": station.id, "operator_id": op.id,
                "guns": {c.gun_no: c.id for c in pile.connectors}}


def add_alarm(app, pile, code="HW07", started_ago=timedelta(hours=2), ended_ago=None) -> int:
    """An alarm row as the gateway writes it (English description of the fault-code table)."""
    now = clock.utcnow()
    with app.app_context():
        alarm = Alarm(operator_id=pile["operator_id"], station_id=pile["station_id"], pile_id=pile["id"],
                      connector_id=pile["guns"][1], pile_code=pile["code"], gun_no=1, fault_code=code,
                      description=fault_codes.english(code), started_at=now - started_ago,
                      ended_at=now - ended_ago if ended_ago is not None else None)
        db.session.add(alarm)
        db.session.commit()
        return alarm.id


def alarm_row(app, alarm_id) -> Alarm:
    return fetch(app, select(Alarm).where(Alarm.id == alarm_id))[0][0]


@pytest.fixture(scope="module")
def gateway(app):
    with app.app_context():
        redis = get_redis()
    node = GatewayProcess(app, "gw-alarms").wait_ready(redis)
    yield node
    node.stop()


@pytest.fixture(scope="module")
def piles(app):
    out = {"a": new_pile(app, "MA1NJ0001"), "b": new_pile(app, "MA1NJ0002")}
    yield out
    with app.app_context():
        ids = [p["id"] for p in out.values()]
        for model in (Alarm, ConnectorStatusLog):
            db.session.execute(delete(model).where(model.pile_id.in_(ids)))
        db.session.execute(delete(Connector).where(Connector.pile_id.in_(ids)))
        db.session.execute(delete(Pile).where(Pile.id.in_(ids)))
        db.session.commit()


def listed_ids(client, **args) -> set[int]:
    rv = client.get("/alarmview/list/", query_string={"psize_AlarmView": 100, **args})
    assert rv.status_code == 200, rv.get_data(as_text=True)[:300]
    return {int(i) for i in re.findall(r"/alarmview/show/(\d+)", rv.get_data(as_text=True))}


def test_pile_faults_open_and_close_alarms_with_their_meaning(app, client, login, gateway, piles):
    pile = piles["a"]
    code = pile["code"]
    with PileClient(gateway.port, code) as p:
        assert p.login().result == 0
        p.send(RealtimeData(transaction_serial="0" * 32, pile_code=code, gun="01", status=1,
                            hardware_faults=0b1000000000001))
        rows = wait_until(lambda: len(r := fetch(app, select(Alarm).where(Alarm.pile_id == pile["id"]))) == 3 and r,
                          message="alarms opened")
        ids = {a.fault_code: a.id for (a,) in rows}
        assert set(ids) == {"FAULT", "HW01", "HW13"}

        login("staff_a", STAFF_PASSWORD, lang="en")
        html = client.get("/alarmview/list/", query_string={"_flt_0_pile_code": code}).get_data(as_text=True)
        assert "Emergency stop button pressed" in html and "Cabinet door open" in html
        assert "Connector reports fault status" in html
        assert set(ids.values()) <= listed_ids(client, _flt_0_pile_code=code, _flt_0_ended_at="1"), "open"
        assert not set(ids.values()) & listed_ids(client, _flt_0_pile_code=code, _flt_1_ended_at="1")

        login("staff_a", STAFF_PASSWORD, lang="zh")
        html = client.get("/alarmview/list/", query_string={"_flt_0_pile_code": code}).get_data(as_text=True)
        assert "急停按钮动作故障" in html and "柜门打开" in html and "Emergency stop" not in html
        html = client.get(f"/alarmview/show/{ids['HW01']}").get_data(as_text=True)
        assert "急停按钮动作故障" in html and "HW01" in html

        p.send(RealtimeData(transaction_serial="0" * 32, pile_code=code, gun="01", status=2))
        wait_until(lambda: all(a.ended_at for (a,) in fetch(app, select(Alarm).where(Alarm.pile_id == pile["id"]))),
                   message="alarms closed")
    login("staff_a", STAFF_PASSWORD, lang="en")
    assert set(ids.values()) <= listed_ids(client, _flt_0_pile_code=code, _flt_1_ended_at="1"), "closed"
    assert not set(ids.values()) & listed_ids(client, _flt_0_pile_code=code, _flt_0_ended_at="1")


def test_duration_open_to_now_or_to_closed(app, client, login, piles):
    closed = add_alarm(app, piles["a"], "HW02", started_ago=timedelta(hours=3), ended_ago=timedelta(hours=2))
    opened = add_alarm(app, piles["a"], "HW03", started_ago=timedelta(minutes=90))
    with app.app_context():
        assert db.session.get(Alarm, closed).duration_seconds() == 3600
        assert 5400 <= db.session.get(Alarm, opened).duration_seconds() < 5460
    login("staff_a", STAFF_PASSWORD)
    html = client.get(f"/alarmview/show/{closed}").get_data(as_text=True)
    assert "1:00:00" in html and "No usable rectifier module" in html
    html = client.get(f"/alarmview/show/{opened}").get_data(as_text=True)
    assert re.search(r"1:30:\d\d", html) and "Air outlet over-temperature" in html
    rv = client.get("/alarmview/export/", query_string={"_flt_0_pile_code": piles["a"]["code"]})
    rows = list(load_workbook(io.BytesIO(rv.data)).worksheets[0].iter_rows(values_only=True))
    header = list(rows[0])
    by_code = {r[header.index("Fault code")]: r for r in rows[1:]}
    assert by_code["HW02"][header.index("Duration")] == "1:00:00"
    assert by_code["HW02"][header.index("Fault description")] == "No usable rectifier module"


def test_filters_station_pile_time_status(app, client, login, piles):
    a, b = piles["a"], piles["b"]
    old = add_alarm(app, a, "HW08", started_ago=timedelta(days=20), ended_ago=timedelta(days=19))
    recent = add_alarm(app, a, "HW09", started_ago=timedelta(hours=1))
    other = add_alarm(app, b, "HW09", started_ago=timedelta(hours=1))
    login("admin", ADMIN_PASSWORD)
    assert {old, recent} <= listed_ids(client, _flt_0_pile_code=a["code"])
    assert other not in listed_ids(client, _flt_0_pile_code=a["code"])
    assert recent in listed_ids(client, _flt_0_station=a["station_id"])
    assert other not in listed_ids(client, _flt_0_station=a["station_id"])
    since = clock.local_date(clock.utcnow() - timedelta(days=2)).isoformat()
    assert recent in listed_ids(client, _flt_0_pile_code=a["code"], _flt_0_started_at=since)
    assert old not in listed_ids(client, _flt_0_pile_code=a["code"], _flt_0_started_at=since)
    until = clock.local_date(clock.utcnow() - timedelta(days=10)).isoformat()
    assert old in listed_ids(client, _flt_0_pile_code=a["code"], _flt_1_started_at=until)
    assert recent not in listed_ids(client, _flt_0_pile_code=a["code"], _flt_1_started_at=until)
    assert recent in listed_ids(client, _flt_0_pile_code=a["code"], _flt_3_handle_status="pending")
    html = client.get("/alarmview/list/").get_data(as_text=True)
    assert "/alarmview/list/?_flt_0_ended_at=1" in html and "/alarmview/list/?_flt_1_ended_at=1" in html


def test_acknowledge_records_who_when_and_note(app, client, login, piles):
    alarm_id = add_alarm(app, piles["a"], "HW11")
    login("staff_a", STAFF_PASSWORD)
    html = client.get(f"/alarmview/show/{alarm_id}").get_data(as_text=True)
    assert f"/alarmview/ack/{alarm_id}" in html
    form = client.get(f"/alarmview/ack/{alarm_id}").get_data(as_text=True)
    token = csrf_token(form)
    rv = client.post(f"/alarmview/ack/{alarm_id}", data={"csrf_token": token, "handle_status": "handled", "note": " "})
    assert rv.status_code == 200 and alarm_row(app, alarm_id).acknowledged_at is None, "a note is required"
    before = clock.utcnow()
    rv = client.post(f"/alarmview/ack/{alarm_id}",
                     data={"csrf_token": token, "handle_status": "handled", "note": "已派运维更换熔断器"})
    assert rv.status_code == 302 and rv.headers["Location"].endswith(f"/alarmview/show/{alarm_id}")
    row = alarm_row(app, alarm_id)
    with app.app_context():
        staff_a = app.appbuilder.sm.find_user(username="staff_a")
        assert row.acknowledged_by_id == staff_a.id == row.handled_by_id
    assert row.acknowledged_by_name == "staff_a" and row.ack_note == "已派运维更换熔断器"
    assert before - timedelta(seconds=1) <= row.acknowledged_at <= clock.utcnow()
    assert row.handle_status == "handled" and row.ended_at is None, "acknowledging does not close the alarm"
    html = client.get(f"/alarmview/show/{alarm_id}").get_data(as_text=True)
    assert "已派运维更换熔断器" in html and "staff_a" in html
    assert clock.format_local(row.acknowledged_at) in html, "local time to the second"

    # once only: a second acknowledgement changes nothing
    login("admin", ADMIN_PASSWORD)
    other = add_alarm(app, piles["a"], "HW04")
    token = csrf_token(client.get(f"/alarmview/ack/{other}").get_data(as_text=True))
    assert "already acknowledged" not in client.get(f"/alarmview/ack/{other}").get_data(as_text=True)
    assert "Acknowledged by staff_a" in client.get(f"/alarmview/ack/{alarm_id}").get_data(as_text=True)
    client.post(f"/alarmview/ack/{alarm_id}", data={"csrf_token": token, "handle_status": "ignored", "note": "x"})
    again = alarm_row(app, alarm_id)
    assert (again.acknowledged_by_name, again.ack_note, again.handle_status) == ("staff_a", row.ack_note, "handled")


def test_read_only_staff_cannot_acknowledge(app, client, login, piles):
    alarm_id = add_alarm(app, piles["a"], "HW10")
    login("viewer_a", STAFF_PASSWORD)
    assert alarm_id in listed_ids(client, _flt_0_pile_code=piles["a"]["code"])
    html = client.get(f"/alarmview/show/{alarm_id}").get_data(as_text=True)
    assert f"/alarmview/ack/{alarm_id}" not in html
    rv = client.post(f"/alarmview/ack/{alarm_id}", data={"handle_status": "handled", "note": "x"})
    assert rv.status_code in (302, 403)
    assert alarm_row(app, alarm_id).acknowledged_at is None


def test_data_scope_b_neither_sees_nor_acknowledges_a(app, client, login, piles):
    a_alarm = add_alarm(app, piles["a"], "HW12")
    b_alarm = add_alarm(app, piles["b"], "HW12")
    login("staff_b", STAFF_PASSWORD)
    seen = listed_ids(client, _flt_0_pile_code=PREFIX)
    assert b_alarm in seen and a_alarm not in seen
    assert client.get(f"/alarmview/show/{a_alarm}").status_code == 404
    assert client.get(f"/alarmview/ack/{a_alarm}").status_code == 404
    token = csrf_token(client.get(f"/alarmview/ack/{b_alarm}").get_data(as_text=True))
    rv = client.post(f"/alarmview/ack/{a_alarm}", data={"csrf_token": token, "handle_status": "handled",
                                                        "note": "not mine"})
    assert rv.status_code == 404 and alarm_row(app, a_alarm).acknowledged_at is None
    rv = client.post(f"/alarmview/ack/{b_alarm}", data={"csrf_token": token, "handle_status": "ignored",
                                                        "note": "误报"})
    assert rv.status_code == 302
    row = alarm_row(app, b_alarm)
    assert (row.acknowledged_by_name, row.handle_status, row.ack_note) == ("staff_b", "ignored", "误报")


def test_alarms_are_never_deleted(app, admin_client, piles):
    alarm_id = add_alarm(app, piles["a"], "HW05")
    assert admin_client.get(f"/alarmview/delete/{alarm_id}").status_code in (404, 405)
    assert admin_client.post(f"/alarmview/delete/{alarm_id}").status_code in (404, 405)
    assert admin_client.get(f"/alarmview/edit/{alarm_id}").status_code in (404, 405)
    html = admin_client.get("/alarmview/list/").get_data(as_text=True)
    assert "muldelete" not in html
    assert alarm_row(app, alarm_id) is not None


def test_fault_code_table_in_one_place():
    assert fault_codes.english("HW01") == "Emergency stop button pressed"
    assert fault_codes.english("HW16") == "Unknown hardware fault (bit 16)"
    assert fault_codes.english("NOPE") is None
    assert fault_codes.realtime_faults(1, 0b101) == {"FAULT": "Connector reports fault status",
                                                     "HW01": "Emergency stop button pressed",
                                                     "HW03": "Air outlet over-temperature"}
    assert fault_codes.realtime_faults(2, 0) == {}


def test_alarm_screens_are_chinese(app, client, login, piles):
    from tests.integration.test_chinese_everywhere import problems

    open_id = add_alarm(app, piles["a"], "HW06", started_ago=timedelta(minutes=5))
    acked = add_alarm(app, piles["a"], "FAULT", started_ago=timedelta(hours=1), ended_ago=timedelta(minutes=30))
    login("staff_a", STAFF_PASSWORD, lang="zh")
    token = csrf_token(client.get(f"/alarmview/ack/{acked}").get_data(as_text=True))
    client.post(f"/alarmview/ack/{acked}", data={"csrf_token": token, "handle_status": "handled", "note": "已复位"})
    for url in ("/alarmview/list/", "/alarmview/list/?_flt_0_ended_at=1", f"/alarmview/show/{open_id}",
                f"/alarmview/show/{acked}", f"/alarmview/ack/{open_id}", f"/alarmview/ack/{acked}"):
        rv = client.get(url)
        assert rv.status_code == 200, url
        html = rv.get_data(as_text=True)
        assert not problems(html), (url, problems(html))
    html = client.get(f"/alarmview/show/{acked}").get_data(as_text=True)
    assert "充电枪上报故障状态" in html and "0:30:00" in html and "已复位" in html
