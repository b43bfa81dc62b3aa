"""Every Ret code of our T/CEC endpoints, and the refusals: expired token, replayed request, an IP outside
the allow-list, a station (and a gun) of another operator."""
from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from app.extensions import db, get_redis
from app.interconnect import codec
from app.models import Connector, Partner, PushLog, Station
from app.security.scope import platform_scope
from app.services import clock
from app.services.interconnect import START_LOCK, TOKEN_KEY
from tests.interconnect.tcec_support import Caller, flask_post, tcec_partners, timestamp  # noqa: F401 (fixture)


@pytest.fixture
def caller(app, tcec_partners):  # noqa: F811
    return Caller(flask_post(app.test_client()), tcec_partners["a"]["keys"])


def station_of(app, operator_id):
    with app.app_context():
        return db.session.scalar(select(Station).where(Station.operator_id == operator_id, Station.source == "local")
                                 .order_by(Station.id))


def connector_of(app, operator_id):
    with app.app_context():
        return db.session.scalar(select(Connector.code).where(Connector.operator_id == operator_id)
                                 .order_by(Connector.id))


# --- 4003 -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["OperatorID", "Data", "TimeStamp", "Seq", "Sig"])
def test_4003_when_an_envelope_field_is_missing(caller, missing):
    envelope = caller.envelope({"PageNo": 1})
    envelope.pop(missing)
    answer = caller.raw("query_stations_info", envelope, token=caller.login())
    assert answer["Ret"] == 4003 and answer["Data"] == ""


def test_4003_on_a_body_that_is_not_json_and_on_a_bad_timestamp(caller):
    answer = caller.raw("query_token", None, body=b"OperatorID=1&Data=x")
    assert answer["Ret"] == 4003
    ret, _, data = caller.call("query_stations_info", {"PageNo": 1}, ts="2026-01-01 10:00")
    assert ret == 4003 and data is None           # answered signed: the partner is known


# --- 4001 -----------------------------------------------------------------------------------------------------


def test_4001_bad_signature_is_answered_before_anything_is_decrypted(caller):
    envelope = caller.envelope({"PageNo": 1})
    envelope["Data"] = "not base64 at all!"      # would be a 4004 if it were decrypted first
    envelope["Sig"] = "0" * 32
    ret, msg, data = caller.open(caller.raw("query_stations_info", envelope, token=caller.login()))
    assert ret == 4001 and data is None


def test_4001_when_one_byte_of_data_changes(caller):
    envelope = caller.envelope({"PageNo": 1})
    envelope["Data"] = ("A" if envelope["Data"][0] != "A" else "B") + envelope["Data"][1:]
    ret, _, _ = caller.open(caller.raw("query_stations_info", envelope, token=caller.login()))
    assert ret == 4001


def test_4001_unknown_operator_is_unsigned(caller):
    keys = caller.keys._replace(operator_id="ZZ9999999")
    envelope = codec.build_request(keys, {"PageNo": 1}, timestamp(), "0001")
    answer = caller.raw("query_stations_info", envelope)
    assert answer == {"Ret": 4001, "Msg": answer["Msg"], "Data": "", "Sig": ""}


def test_4001_replayed_request(caller):
    envelope = caller.envelope({"PageNo": 1, "PageSize": 1})
    token = caller.login()
    assert caller.open(caller.raw("query_stations_info", envelope, token=token))[0] == 0
    ret, msg, _ = caller.open(caller.raw("query_stations_info", envelope, token=token))
    assert ret == 4001 and "replay" in msg


def test_4001_timestamp_outside_the_window(app, caller):
    window = app.config["TCEC_TIMESTAMP_WINDOW"]
    for shift in (-(window + 60), window + 60):
        old = timestamp(clock.utcnow() + timedelta(seconds=shift))
        ret, _, _ = caller.call("query_stations_info", {"PageNo": 1}, ts=old)
        assert ret == 4001


# --- 4002 -----------------------------------------------------------------------------------------------------


def test_4002_without_or_with_a_wrong_token(caller):
    assert caller.call("query_stations_info", {"PageNo": 1}, token=None)[0] == 4002
    assert caller.call("query_stations_info", {"PageNo": 1}, token="forged-token")[0] == 4002


def test_4002_token_of_another_partner(app, tcec_partners):  # noqa: F811
    a = Caller(flask_post(app.test_client()), tcec_partners["a"]["keys"])
    b = Caller(flask_post(app.test_client()), tcec_partners["b"]["keys"])
    assert a.call("query_stations_info", {"PageNo": 1}, token=b.login())[0] == 4002


def test_4002_expired_token(app, caller):
    app.config["TCEC_TOKEN_SECONDS"] = 1
    try:
        ret, _, data = caller.call("query_token", {"OperatorID": caller.keys.operator_id,
                                                   "OperatorSecret": caller.keys.operator_secret})
        assert ret == 0 and data["TokenAvailableTime"] == 1
        token = data["AccessToken"]
        assert caller.call("query_stations_info", {"PageNo": 1}, token=token)[0] == 0
        with app.app_context():
            redis = get_redis()
        deadline = time.monotonic() + 5
        while redis.exists(TOKEN_KEY.format(token=token)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert caller.call("query_stations_info", {"PageNo": 1}, token=token)[0] == 4002
    finally:
        app.config["TCEC_TOKEN_SECONDS"] = 7200


def test_4002_ip_outside_the_allow_list(app, caller, tcec_partners):  # noqa: F811
    with app.app_context(), platform_scope("test"):
        db.session.get(Partner, tcec_partners["a"]["id"]).ip_allowlist = "10.1.0.0/16\n192.168.5.7"
        db.session.commit()
    try:
        ret, _, data = caller.call("query_token", {"OperatorID": caller.keys.operator_id,
                                                   "OperatorSecret": caller.keys.operator_secret}, ip="10.1.2.3")
        assert ret == 0 and data["SuccStat"] == 0
        token = data["AccessToken"]
        assert caller.call("query_stations_info", {"PageNo": 1}, token=token, ip="192.168.5.7")[0] == 0
        ret, msg, _ = caller.call("query_stations_info", {"PageNo": 1}, token=token, ip="127.0.0.1")
        assert ret == 4002 and "IP" in msg
        assert caller.call("query_token", {"OperatorID": caller.keys.operator_id,
                                           "OperatorSecret": caller.keys.operator_secret}, ip="10.2.0.1")[0] == 4002
    finally:
        with app.app_context(), platform_scope("test"):
            db.session.get(Partner, tcec_partners["a"]["id"]).ip_allowlist = None
            db.session.commit()


# --- 4004 -----------------------------------------------------------------------------------------------------


def test_4004_signed_data_that_is_not_json(caller):
    data = codec.encrypt(caller.keys, "{not json")
    ts, seq = timestamp(), "7777"
    envelope = {"OperatorID": caller.keys.operator_id, "Data": data, "TimeStamp": ts, "Seq": seq,
                "Sig": codec.sign(caller.keys, caller.keys.operator_id, data, ts, seq)}
    assert caller.open(caller.raw("query_stations_info", envelope, token=caller.login()))[0] == 4004


def test_4004_missing_business_fields(caller):
    assert caller.call("query_station_status", {})[0] == 4004
    assert caller.call("query_station_status", {"StationIDs": [f"S{i}" for i in range(51)]})[0] == 4004
    assert caller.call("query_equip_auth", {"ConnectorID": "x"})[0] == 4004
    assert caller.call("query_equip_charge_status", {"StartChargeSeq": "H1TSTA001000000000000000404"})[0] == 4004
    assert caller.call("query_stations_info", {"PageSize": "many"})[0] == 4004


def test_4004_station_of_another_operator(app, caller, tcec_partners):  # noqa: F811
    other = station_of(app, tcec_partners["b"]["operator_id"])
    own = station_of(app, tcec_partners["a"]["operator_id"])
    assert caller.call("query_station_status", {"StationIDs": [own.code]})[0] == 0
    if other.code != own.code:
        ret, msg, _ = caller.call("query_station_status", {"StationIDs": [own.code, other.code]})
        assert ret == 4004 and other.code in msg
    today = clock.local_today().isoformat()
    b = Caller(flask_post(app.test_client()), tcec_partners["b"]["keys"])
    # the same code may exist at both operators: ask B for a code only A has
    codes_b = {s for s in station_codes(app, tcec_partners["b"]["operator_id"])}
    only_a = next(c for c in station_codes(app, tcec_partners["a"]["operator_id"]) if c not in codes_b)
    assert b.call("query_station_stats", {"StationID": only_a, "StartTime": today, "EndTime": today})[0] == 4004
    assert b.call("query_station_status", {"StationIDs": [only_a]})[0] == 4004


def station_codes(app, operator_id):
    with app.app_context():
        return db.session.scalars(select(Station.code).where(Station.operator_id == operator_id,
                                                             Station.source == "local")).all()


def test_gun_of_another_operator(app, caller, tcec_partners):  # noqa: F811
    gun = connector_of(app, tcec_partners["b"]["operator_id"])
    assert caller.call("query_equip_auth", {"EquipAuthSeq": "H1TSTA001000000000000000005",
                                            "ConnectorID": gun})[0] == 4004
    assert caller.call("query_equip_business_policy", {"EquipBizSeq": "H1TSTA001000000000000000006",
                                                       "ConnectorID": gun})[0] == 4004
    ret, _, data = caller.call("query_start_charge", {"StartChargeSeq": "H1TSTA001000000000000000007",
                                                      "ConnectorID": gun, "QRCode": ""})
    assert ret == 0 and (data["SuccStat"], data["FailReason"]) == (1, 1)      # device does not exist


# --- -1 and 500 ------------------------------------------------------------------------------------------------


def test_minus_1_while_the_same_start_charge_seq_is_being_started(app, caller, tcec_partners):  # noqa: F811
    seq = "H1TSTA001000000000000000008"
    with app.app_context():
        redis = get_redis()
    lock = START_LOCK.format(partner=tcec_partners["a"]["id"], seq=seq)
    redis.set(lock, "1", ex=30)
    try:
        ret, msg, data = caller.call("query_start_charge", {"StartChargeSeq": seq, "QRCode": "",
                                                            "ConnectorID": connector_of(app, tcec_partners["a"]
                                                                                        ["operator_id"])})
    finally:
        redis.delete(lock)
    assert ret == -1 and data is None and "retry" in msg


def test_500_when_the_database_fails_mid_request(app, caller, tcec_partners):  # noqa: F811
    token = caller.login()
    with app.app_context():
        db.session.remove()
        with db.engine.begin() as conn:
            conn.execute(text("ALTER TABLE ev_station RENAME TO ev_station_h1_broken"))
        try:
            ret, msg, data = caller.call("query_stations_info", {"PageNo": 1}, token=token)
        finally:
            db.session.remove()
            with db.engine.begin() as conn:
                conn.execute(text("ALTER TABLE ev_station_h1_broken RENAME TO ev_station"))
    assert ret == 500 and data is None and msg == "system error"
    with app.app_context():
        row = db.session.scalar(select(PushLog).where(PushLog.partner_id == tcec_partners["a"]["id"])
                                .order_by(PushLog.id.desc()))
        assert (row.interface, row.ret, row.status) == ("query_stations_info", 500, "failed")
        assert json.dumps(row.request_body) == '{"PageNo": 1}'


def test_allow_list_behind_a_reverse_proxy(app, tcec_partners):  # noqa: F811
    """TCEC_PROXY_HOPS=1: the partner's address is the last X-Forwarded-For entry (what our proxy saw)."""
    client = app.test_client()

    def post(path, body, headers, ip):
        headers = dict(headers, **{"X-Forwarded-For": f"6.6.6.6, {ip}"})
        rv = client.post(path, data=body, headers=headers, environ_base={"REMOTE_ADDR": "127.0.0.1"})
        return rv.status_code, rv.get_json()

    caller = Caller(post, tcec_partners["a"]["keys"])
    with app.app_context(), platform_scope("test"):
        db.session.get(Partner, tcec_partners["a"]["id"]).ip_allowlist = "10.9.0.0/16"
        db.session.commit()
    app.config["TCEC_PROXY_HOPS"] = 1
    try:
        login = {"OperatorID": caller.keys.operator_id, "OperatorSecret": caller.keys.operator_secret}
        assert caller.call("query_token", login, ip="10.9.8.7")[0] == 0
        assert caller.call("query_token", login, ip="6.6.6.6")[0] == 4002
    finally:
        app.config["TCEC_PROXY_HOPS"] = 0
        with app.app_context(), platform_scope("test"):
            db.session.get(Partner, tcec_partners["a"]["id"]).ip_allowlist = None
            db.session.commit()
