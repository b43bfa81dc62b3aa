"""T/CEC 102 codec: the public vectors of docs/tcec-protocol.md §2.8, properties, dialects."""
import json
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.interconnect import codec, dialect
from app.interconnect.codec import Keys, TcecError

KEYS = Keys("123456789", "1234567890abcdef", "1234567890abcdef", "1234567890abcdef", "1234567890abcdef")

V1_PLAIN = '{"OperatorID":"123456789",\n"OperatorSecret":"1234567890abcdef"}'
V1_DATA = "mYvffpNoFf4E/ZTC1tOw41TC5OlkEobfAYCm5N8hEusaLUaUIqOrXtdbMrSck0DSmfM7mRuOGMoCQzH0nWPGuw=="
V1_SIG = "D2D584A14F3F284445DF85D0E8C0697C"
V2_DATA = (
    "uxeKP0ezR5yL8xSg4/ZCDh/N91/u86NXFxd2DrwZVW8zCPYcpl59Twz/yQZ3RaO4rDDrGmkvQignmNEJ+k4PGxdmIC+4fpJ8"
    "rU6osSobY+AeA0uueuQ5+eQiWBL6p6v5XMMm91brtK8yfFELYUWQzVcxABnAwK/+dyxtUhqLIxUpkwTEU/4ktN40df9IzzlL"
    "O5uvUknPGYu9yL0pp5w9vdRxmA1RiiTDNCysz6klr9bunGV3VJa2qpLcgeZMf/oG"
)
V2_SIG = "58E52010C7DEE87FE183B0AFA5B2BE30"
V2_PAYLOAD = {
    "OperatorID": "123456789",
    "SuccStat": 0,
    "AccessToken": "kVnStIRknCCOBdXgJrmu8rb3pcccifKW2NcQrysKKIzb7iQBxkkjeq3WoGdjgrIL",
    "TokenAvailableTime": 7200,
    "FailReason": 0,
}


def test_vector_1_query_token_request_data_and_sig():
    assert codec.encrypt(KEYS, V1_PLAIN) == V1_DATA
    assert codec.decrypt(KEYS, V1_DATA) == V1_PLAIN
    assert codec.sign(KEYS, "123456789", V1_DATA, "20180120165755", "0001") == V1_SIG
    envelope = {"OperatorID": "123456789", "Data": V1_DATA, "TimeStamp": "20180120165755",
                "Seq": "0001", "Sig": V1_SIG}
    assert codec.open_request(KEYS, envelope) == {"OperatorID": "123456789",
                                                  "OperatorSecret": "1234567890abcdef"}


def test_vector_2_query_token_response_decrypt_and_reencrypt():
    plain = codec.decrypt(KEYS, V2_DATA)
    assert json.loads(plain) == V2_PAYLOAD
    # the exact bytes: CRLF line breaks and a two-space indent
    exact = json.dumps(V2_PAYLOAD, indent=2).replace("\n", "\r\n")
    assert plain == exact
    assert codec.encrypt(KEYS, exact) == V2_DATA


def test_vector_3_query_token_response_sig_and_open():
    assert codec.sign(KEYS, 0, "", V2_DATA) == V2_SIG
    envelope = {"Ret": 0, "Msg": "", "Data": V2_DATA, "Sig": V2_SIG}
    assert codec.open_response(KEYS, envelope) == V2_PAYLOAD
    with pytest.raises(TcecError) as err:
        codec.open_response(KEYS, dict(envelope, Sig="0" * 32))
    assert err.value.ret == 4001


def test_build_request_reproduces_vector_1_envelope():
    envelope = codec.build_request(KEYS, {"OperatorID": "123456789", "OperatorSecret": "x"},
                                   "20180120165755", "0001")
    assert set(envelope) == {"OperatorID", "Data", "TimeStamp", "Seq", "Sig"}
    assert envelope["Sig"] == codec.sign(KEYS, "123456789", envelope["Data"], "20180120165755", "0001")
    assert envelope["Sig"] == envelope["Sig"].upper() and len(envelope["Sig"]) == 32


def test_error_response_has_empty_data_signed_over_ret_msg():
    env = codec.build_response(KEYS, 4002, "token error", None)
    assert env == {"Ret": 4002, "Msg": "token error", "Data": "",
                   "Sig": codec.sign(KEYS, "4002", "token error", "")}
    with pytest.raises(TcecError) as err:
        codec.open_response(KEYS, env)
    assert (err.value.ret, err.value.msg) == (4002, "token error")


@pytest.mark.parametrize("missing", codec.REQUEST_FIELDS)
def test_missing_field_is_4003(missing):
    env = codec.build_request(KEYS, {"a": 1}, "20180120165755", "0001")
    env.pop(missing)
    with pytest.raises(TcecError) as err:
        codec.open_request(KEYS, env)
    assert err.value.ret == 4003


def test_signed_garbage_is_4004_not_decrypted_blindly():
    data = codec.encrypt(KEYS, "not json {")
    env = {"OperatorID": "123456789", "Data": data, "TimeStamp": "20180120165755", "Seq": "0001",
           "Sig": codec.sign(KEYS, "123456789", data, "20180120165755", "0001")}
    with pytest.raises(TcecError) as err:
        codec.open_request(KEYS, env)
    assert err.value.ret == 4004


CHINESE = st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5), max_size=40)


@settings(max_examples=150, deadline=None)
@given(text=st.one_of(CHINESE, st.text(max_size=80)))
def test_round_trip_any_text(text):
    assert codec.decrypt(KEYS, codec.encrypt(KEYS, text)) == text


@settings(max_examples=100, deadline=None)
@given(name=CHINESE, money=st.decimals(min_value=0, max_value=10**6, places=2).map(str))
def test_request_round_trip_chinese(name, money):
    payload = {"StationName": name, "Address": f"南京市{name}路", "TotalMoney": money}
    env = codec.build_request(KEYS, payload, "20260101120000", "0001")
    assert codec.open_request(KEYS, env) == payload
    resp = codec.build_response(KEYS, 0, "", payload)
    assert codec.open_response(KEYS, resp) == payload


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_single_byte_change_of_data_is_4001(data):
    env = codec.build_request(KEYS, {"StationIDs": ["S1", "南京"]}, "20260101120000", "0002")
    raw = bytearray(env["Data"].encode("ascii"))
    pos = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    new = data.draw(st.integers(min_value=0, max_value=255).filter(lambda b: b != raw[pos]))
    raw[pos] = new
    tampered = dict(env, Data=raw.decode("latin-1"))
    with pytest.raises(TcecError) as err:
        codec.open_request(KEYS, tampered)
    assert err.value.ret == 4001


def _partner(**kw):
    base = dict(partner_operator_code="MA1234567", operator_secret="os", data_secret="d" * 16,
                data_secret_iv="i" * 16, sig_secret="ss", our_operator_code="MA7654321",
                our_operator_secret="oos", our_data_secret="D" * 16, our_data_secret_iv="I" * 16,
                our_sig_secret="oss", field_spelling="sevice", money_field="ElecMoney", status_as_array=False)
    base.update(kw)
    return SimpleNamespace(**base)


def test_key_sets_by_direction():
    p = _partner()
    assert codec.partner_keys_ours(p) == Keys("MA1234567", "oos", "D" * 16, "I" * 16, "oss")
    assert codec.partner_keys_theirs(p) == Keys("MA7654321", "os", "d" * 16, "i" * 16, "ss")


def test_dialect_renames_both_ways():
    ours = {"SevicePrice": "0.8000", "ElecMoney": 1, "TotalElecMoney": 2,
            "ChargeDetails": [{"DetailSeviceMoney": 1, "SevicePrice": 2}]}
    xiaoju = _partner(field_spelling="service", money_field="ElectMoney")
    wire = dialect.to_wire(xiaoju, ours)
    assert wire == {"ServicePrice": "0.8000", "ElectMoney": 1, "TotalElecMoney": 2,
                    "ChargeDetails": [{"DetailServiceMoney": 1, "ServicePrice": 2}]}
    assert dialect.from_wire(xiaoju, wire) == ours
    assert dialect.to_wire(_partner(), ours) == ours
    assert dialect.from_wire(_partner(), ours) == ours


def test_station_status_payload_object_or_array():
    info = {"ConnectorID": "1", "Status": 1}
    assert dialect.station_status_payload(_partner(), [info]) == {"ConnectorStatusInfo": info}
    assert dialect.station_status_payload(_partner(status_as_array=True), [info, info]) == {
        "ConnectorStatusInfo": [info, info]}
    with pytest.raises(ValueError):
        dialect.station_status_payload(_partner(), [info, info])
