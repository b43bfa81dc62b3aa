"""The test partner platform (``partner_platform.py``) proven against the public vectors of
``docs/tcec-protocol.md`` §2.8 and against itself over real HTTP — independently of our codec."""
from decimal import Decimal

import pytest

from tests.interconnect.partner_platform import (
    Keys,
    PartnerClient,
    PartnerPlatform,
    decrypt,
    encrypt,
    request_sig,
    response_sig,
)

VEC = Keys("123456789", "1234567890abcdef", "1234567890abcdef", "1234567890abcdef", "1234567890abcdef")
REQ_PLAIN = '{"OperatorID":"123456789",\n"OperatorSecret":"1234567890abcdef"}'
REQ_DATA = "mYvffpNoFf4E/ZTC1tOw41TC5OlkEobfAYCm5N8hEusaLUaUIqOrXtdbMrSck0DSmfM7mRuOGMoCQzH0nWPGuw=="
REQ_SIG = "D2D584A14F3F284445DF85D0E8C0697C"
RESP_DATA = ("uxeKP0ezR5yL8xSg4/ZCDh/N91/u86NXFxd2DrwZVW8zCPYcpl59Twz/yQZ3RaO4rDDrGmkvQignmNEJ+k4PGxdmIC+4fpJ8"
             "rU6osSobY+AeA0uueuQ5+eQiWBL6p6v5XMMm91brtK8yfFELYUWQzVcxABnAwK/+dyxtUhqLIxUpkwTEU/4ktN40df9Izz"
             "lLO5uvUknPGYu9yL0pp5w9vdRxmA1RiiTDNCysz6klr9bunGV3VJa2qpLcgeZMf/oG")
RESP_SIG = "58E52010C7DEE87FE183B0AFA5B2BE30"
RESP_PLAIN = ('{\r\n  "OperatorID": "123456789",\r\n  "SuccStat": 0,\r\n  "AccessToken": '
              '"kVnStIRknCCOBdXgJrmu8rb3pcccifKW2NcQrysKKIzb7iQBxkkjeq3WoGdjgrIL",\r\n  "TokenAvailableTime": 7200,'
              '\r\n  "FailReason": 0\r\n}')


def test_vector_1_query_token_request_data():
    assert encrypt(VEC, REQ_PLAIN) == REQ_DATA
    assert decrypt(VEC, REQ_DATA) == REQ_PLAIN


def test_vector_2_query_token_request_sig():
    assert request_sig(VEC, "123456789", REQ_DATA, "20180120165755", "0001") == REQ_SIG


def test_vector_3_query_token_response():
    assert response_sig(VEC, 0, "", RESP_DATA) == RESP_SIG
    assert decrypt(VEC, RESP_DATA) == RESP_PLAIN
    assert encrypt(VEC, RESP_PLAIN) == RESP_DATA


def test_chinese_round_trip_pads_by_bytes():
    text = '{"StationName":"南京新街口充电站","Address":"江苏省南京市"}'
    enc = encrypt(VEC, text)
    assert decrypt(VEC, enc) == text
    assert len(__import__("base64").b64decode(enc)) % 16 == 0


US = Keys("MA1234567", "partner-secret-01", "abcdefghijklmnop", "ponmlkjihgfedcba", "sig-secret-0001")
THEM = Keys("MA7654321", "caller-secret-02", "0123456789abcdef", "fedcba9876543210", "sig-secret-0002")


@pytest.fixture
def partner():
    with PartnerPlatform("MA7654321", THEM, US) as p:
        yield p


def test_partner_over_http_token_and_notification(partner):
    # we (the CPO) call the partner with the key set it expects from us
    client = PartnerClient(partner.url, US)
    client.token()
    ret, msg, data = client.call("notification_stationStatus",
                                 {"ConnectorStatusInfo": {"ConnectorID": "7700000000000101", "Status": 1}})
    assert (ret, msg, data) == (0, "", {"Status": 0})
    assert partner.requests_for("notification_stationStatus") == [
        {"ConnectorStatusInfo": {"ConnectorID": "7700000000000101", "Status": 1}}]
    interface, _, headers = partner.received[-1]
    assert headers["Authorization"] == f"Bearer {client.access_token}"


def test_partner_refuses_like_a_strict_partner(partner):
    client = PartnerClient(partner.url, US)
    info = {"ConnectorStatusInfo": {"ConnectorID": "7700000000000101", "Status": 1}}
    assert client.call("notification_stationStatus", info)[0] == 4002           # no token yet
    client.token()
    assert client.call("notification_stationStatus", info, bad_sig=True)[0] == 4001
    assert client.call("notification_stationStatus", info, omit=("Seq",))[0] == 4003
    assert client.call("notification_stationStatus", info, timestamp="20180120165755")[0] == 4003
    assert client.call("notification_stationStatus", info)[0] == 0
    assert client.call("notification_stationStatus", replay=True)[0] == 4003
    assert client.call("notification_stationStatus", {"ConnectorStatusInfo": [info["ConnectorStatusInfo"]]})[0] == 4004
    bad_status = {"ConnectorStatusInfo": {"ConnectorID": "x", "Status": 9}}
    assert client.call("notification_stationStatus", bad_status)[0] == 4004
    partner.expire_tokens()
    assert client.call("notification_stationStatus", info)[0] == 4002
    client.token()
    assert client.call("notification_stationStatus", info)[0] == 0
    # a single changed character of Data: signature error, nothing decrypted
    assert client.call("notification_stationStatus", info,
                       tamper_data=lambda d: ("A" if d[0] != "A" else "B") + d[1:])[0] == 4001
    assert len(partner.requests_for("notification_stationStatus")) == 2


def test_partner_order_info_dialect_decimals_and_dispute(partner):
    client = PartnerClient(partner.url, US)
    client.token()
    seq = "MA1234567" + "000000000000000001"
    order = {"StartChargeSeq": seq, "ConnectorID": "7700000000000101", "StartTime": "2026-11-28 10:00:00",
             "EndTime": "2026-11-28 10:30:00", "TotalPower": Decimal("10.00"), "TotalElecMoney": Decimal("6.20"),
             "TotalSeviceMoney": Decimal("6.00"), "TotalMoney": Decimal("12.20"), "StopReason": 0, "SumPeriod": 1,
             "ChargeDetails": [{"DetailStartTime": "2026-11-28 10:00:00", "DetailEndTime": "2026-11-28 10:30:00",
                                "ElecPrice": Decimal("0.6200"), "SevicePrice": Decimal("0.6000"),
                                "DetailPower": Decimal("10.00"), "DetailElecMoney": Decimal("6.20"),
                                "DetailSeviceMoney": Decimal("6.00")}]}
    assert client.call("notification_charge_order_info", order)[2]["ConfirmResult"] == 0
    partner.dispute(seq)
    assert client.call("notification_charge_order_info", order)[2]["ConfirmResult"] == 1
    wrong = dict(order, TotalServiceMoney=order["TotalSeviceMoney"])
    del wrong["TotalSeviceMoney"]
    assert client.call("notification_charge_order_info", wrong)[0] == 4004
    assert client.call("notification_charge_order_info", dict(order, TotalMoney=Decimal("12.201")))[0] == 4004
    assert client.call("notification_charge_order_info", dict(order, TotalMoney="12.20"))[0] == 4004
    received = partner.requests_for("notification_charge_order_info")[0]
    assert received["TotalMoney"] == Decimal("12.20") and received["ChargeDetails"][0]["ElecPrice"] == Decimal("0.62")


def test_partner_check_orders_and_station_paging(partner):
    client = PartnerClient(partner.url, US)
    client.token()
    seq1, seq2 = "MA1234567" + "0" * 17 + "1", "MA1234567" + "0" * 17 + "2"
    partner.plant_dispute(seq2, Decimal("9.00"), Decimal("10.00"), reason=3)
    ret, _, data = client.call("check_charge_orders", {
        "CheckOrderSeq": "MA1234567" + "9" * 18, "StartTime": "2026-11-27 00:00:00", "EndTime": "2026-11-27 23:59:59",
        "OrderCount": 2, "TotalOrderPower": Decimal("20.50"), "TotalOrderMoney": Decimal("22.00"),
        "ChargeOrders": [{"StartChargeSeq": seq1, "TotalPower": Decimal("10.50"), "TotalMoney": Decimal("11.00")},
                         {"StartChargeSeq": seq2, "TotalPower": Decimal("10.00"), "TotalMoney": Decimal("11.00")}]})
    assert ret == 0 and data["TotalDisputeOrder"] == 1
    assert data["DisputeOrders"] == [{"StartChargeSeq": seq2, "TotalPower": Decimal("9.00"),
                                      "TotalMoney": Decimal("10.00"), "DisputeReason": 3}]
    partner.stations = [{"StationID": f"S{i:03d}", "StationName": f"站{i}"} for i in range(23)]
    pages = [client.call("query_stations_info", {"PageNo": n, "PageSize": 10})[2] for n in (1, 2, 3)]
    assert [p["PageCount"] for p in pages] == [3, 3, 3] and pages[0]["ItemSize"] == 23
    assert [s["StationID"] for p in pages for s in p["StationInfos"]] == [f"S{i:03d}" for i in range(23)]


def test_partner_down_answers_503_and_refuses(partner):
    client = PartnerClient(partner.url, US)
    partner.down = True
    with pytest.raises(AssertionError, match="HTTP 503"):
        client.token()
    partner.down = False
    partner.refuse_connections()
    with pytest.raises(OSError):
        client.token()
    partner.accept_connections()
    assert client.token()


def test_partner_dialect_service_array_and_elect_money():
    with PartnerPlatform("MA7654321", THEM, US, dialect="Service", status_shape="array",
                         elec_money="ElectMoney") as partner:
        client = PartnerClient(partner.url, US)
        client.token()
        info = {"ConnectorID": "7700000000000101", "Status": 3}
        assert client.call("notification_stationStatus", {"ConnectorStatusInfo": [info]})[0] == 0
        assert client.call("notification_stationStatus", {"ConnectorStatusInfo": info})[0] == 4004
        seq = "MA1234567" + "0" * 17 + "3"
        snapshot = {"StartChargeSeq": seq, "StartChargeSeqStat": 2, "ConnectorID": "7700000000000101",
                    "ConnectorStatus": 3, "CurrentA": Decimal("100.5"), "VoltageA": Decimal("400.0"),
                    "Soc": Decimal("55"), "StartTime": "2026-11-28 10:00:00", "EndTime": "2026-11-28 10:00:50",
                    "TotalPower": Decimal("1.25"), "ElectMoney": Decimal("0.78"), "ServiceMoney": Decimal("0.75"),
                    "TotalMoney": Decimal("1.53")}
        assert client.call("notification_equip_charge_status", snapshot)[0] == 0
        standard = {k.replace("Service", "Sevice"): v for k, v in snapshot.items()}
        assert client.call("notification_equip_charge_status", standard)[0] == 4004
        elec = dict(snapshot, ElecMoney=snapshot["ElectMoney"])
        del elec["ElectMoney"]
        assert client.call("notification_equip_charge_status", elec)[0] == 4004
