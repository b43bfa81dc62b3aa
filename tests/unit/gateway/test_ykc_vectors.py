"""YKC codec against the test vectors of docs/ykc-protocol.md §1.11 (numbers as in the doc)."""

from datetime import datetime
from decimal import Decimal

import pytest

from app.gateway.ykc import (
    CRC_HIGH_FIRST,
    CRC_LOW_FIRST,
    DECODE_ERROR,
    BillingModelReply,
    BillingModelRequest,
    BillingModelVerify,
    BillingModelVerifyAck,
    BmsAbort,
    BmsErrorFrame,
    BmsHandshake,
    BmsInfo,
    BmsParameterConfig,
    DecodeError,
    ErrorEvent,
    FrameEvent,
    FrameReader,
    Heartbeat,
    HeartbeatAck,
    Login,
    LoginAck,
    QrCodePrefix,
    RealtimeData,
    RemoteReboot,
    RemoteRebootReply,
    RemoteStart,
    RemoteStartReply,
    RemoteUpdate,
    RemoteUpdateReply,
    TimeSync,
    TransactionRecord,
    TransactionRecordAck,
    crc16_modbus,
    decode_frame,
    encode_frame,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text)


PILE = "20231212000010"
TRADE_34 = "00000000000012345678901234567890"
TRADE_3B = "20231212000010323239000000000000"
TRADE_BMS = "32010200000000111511161555350260"

V1 = h("68 0C 00 00 00 02 55 03 14 12 78 23 05 00 DA 4C")
V2 = h("68 0E CE 04 00 06 55 03 14 12 78 23 05 00 00 00 8E 2F")
V5 = h(
    "68 22 00 19 00 01 20 23 12 12 00 00 10 01 01 10 47 56 2E 39 35 72 31 33 00 89 86 04 D1 17 22 D0 34"
    " 86 06 02 87 4E"
)
V6 = h("68 0C 00 19 00 02 20 23 12 12 00 00 10 00 A1 55")
V7 = h("68 12 01 00 00 56 20 23 12 12 00 00 10 30 75 0F 11 12 0C 18 04 7D")
V8 = h("68 0d 25 d3 00 03 20 23 12 12 00 00 10 01 00 D1 AC")
V9 = h("68 09 25 D3 00 04 20 23 12 12 00 00 10 01 00 1D 0B")
V10 = h("68 0d 71 ad 00 05 20 23 12 12 00 00 10 00 00 22 2B")
V11 = h("68 0E AD 71 00 06 20 23 12 12 00 00 10 00 00 00 9E 1A")
V12 = h("68 0B 00 07 00 09 20 23 12 12 00 00 10 72 ED")
V13 = h(
    "68 5A 00 07 00 0A 20 23 12 12 00 00 10 00 01"
    + " F8 24 01 00 C8 AF 00 00" * 4
    + " 00"
    + " 00" * 12 + " 01" * 12 + " 02" * 12 + " 03" * 12
    + " FE 63"
)
V14 = h(
    "68 40 bb bd 00 13 20 23 12 12 00 00 10 00 00 00 00 10 05 71 36 00 32 01 06 00 39 56 00 02 03 02 01"
    " 94 0e f4 03 54 00 00 00 00 00 00 00 00 4e 55 10 00 20 00 c0 57 01 00 00 00 00 00 60 6c 01 00 00 00"
    " 93 73"
)
V15 = h(
    "68 4d 00 15 00 15 32 01 02 00 00 00 00 11 15 11 16 15 55 35 02 60 20 23 12 12 00 00 10 01"
    + " 00" * 49 + " b8 a1"
)
V16 = h(
    "68 30 01 00 00 34 00 00 00 00 00 00 12 34 56 78 90 12 34 56 78 90 20 23 12 12 00 00 10 01 56 78 90 12"
    " 34 56 78 90 56 78 90 12 34 56 78 90 10 27 00 00 5f d9"
)
V17 = h(
    "68 1E 00 02 00 33 00 00 00 00 00 00 12 34 56 78 90 12 34 56 78 90 20 23 12 12 00 00 10 01 01 00 41 1D"
)
V18 = h(
    "68 a2 00 46 00 3b 20 23 12 12 00 00 10 32 32 39 00 00 00 00 00 00 20 23 12 12 00 00 10 01"
    " b0 36 04 11 6d 0c 17 a0 8c 09 11 6d 0c 17"
    " f0 49 02 00 00 00 00 00 00 00 00 00 00 00 00 00"
    " d0 fb 01 00 00 00 00 00 00 00 00 00 00 00 00 00"
    " b0 ad 01 00 00 00 00 00 00 00 00 00 00 00 00 00"
    " 90 5f 01 00 72 06 00 00 72 06 00 00 78 05 00 00"
    " 00 00 00 00 00 00 00 00 00 00 72 06 00 00 72 06 00 00 78 05 00 00"
    " 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 a0 8c 09 11 6d 0c 17 40"
    " 00 00 00 00 00 00 00 00 03 E0"
)
V19 = h("68 15 46 00 00 40 20 23 12 12 00 00 10 32 32 39 00 00 00 00 00 00 00 9D 7B")
V20 = h(
    "68 31 00 16 00 17 32 01 02 00 00 00 00 11 15 11 16 15 55 35 02 60 20 23 12 12 00 00 10 01"
    + " 00" * 21 + " BB 78"
)
V21 = h(
    "68 24 00 17 00 1B 32 01 02 00 00 00 00 11 15 11 16 15 55 35 02 06 20 23 12 12 00 00 10 01"
    " 00 00 00 00 00 00 00 00 79 00"
)
V22 = h(
    "68 31 01 00 00 25 32 01 02 00 00 00 00 11 15 11 16 15 55 35 02 60 20 23 12 12 00 00 10 01"
    " 01 01 01 01 01 01 00 01 00 01 00 01 00 01 00 01 00 01 00 00 00 BE C8"
)
V23 = h(
    "68 20 00 18 00 1D 20 23 12 12 00 00 01 01 11 51 11 61 55 53 50 26 20 23 12 12 00 00 10 01"
    " 00 00 00 00 5a 23"
)
V24 = h("68 0f 03 00 00 92 20 23 12 12 00 00 10 00 00 00 01 37 2b")
V25 = h("68 0C 00 11 00 91 20 23 12 12 00 00 10 01 F2 03")
V26 = h(
    "68 62 03 00 00 94 20 23 12 12 00 00 10 01 c8 00 68 74 74 70 3a 2f 2f 31 32 37 2e 30 2e 30 2e 31 90 00"
    " 62 61 77 61 6e 00 00 00 00 00 00 00 00 00 00 00 31 32 33 31 32 33 00 00 00 00 00 00 00 00 00 00"
    " 2f 75 73 65 72 2f 64 61 74 61" + " 00" * 22 + " 01 01 53 b6"
)
V27 = h("68 0C 03 00 00 93 20 23 12 12 00 00 10 00 7E 9B")
V28 = h("68 15 00 46 00 06 20 23 12 12 00 00 10 32 32 39 00 00 00 00 00 00 00 C6 2D")
V29 = h(
    "68 5E 00 06 00 F0 36 10 00 95 12 40 32 01 51 68 74 74 70 73 3a 2f 2f 63 68 61 72 67 69 6e 67 2e 66 7a"
    " 63 73 6e 79 2e 63 6f 6d 2f 63 6f 64 65 2f 67 75 6e 44 65 74 61 69 6c 3f 6f 72 67 4e 6f 3d 4d 41 33"
    " 38 36 31 37 59 38 26 69 64 3d 31 38 36 30 26 63 61 72 53 63 6f 70 65 3d 31 26 6e 6f 3d d8 c9"
)

#: every frame that decodes cleanly: (vector, expected CRC order, L byte wrong)
GOOD = {
    1: (V1, CRC_LOW_FIRST, False), 2: (V2, CRC_LOW_FIRST, False), 5: (V5, CRC_LOW_FIRST, False),
    6: (V6, CRC_LOW_FIRST, False), 7: (V7, CRC_LOW_FIRST, False), 8: (V8, CRC_HIGH_FIRST, False),
    9: (V9, CRC_LOW_FIRST, True), 10: (V10, CRC_HIGH_FIRST, False), 11: (V11, CRC_LOW_FIRST, False),
    12: (V12, CRC_HIGH_FIRST, False), 13: (V13, CRC_LOW_FIRST, True), 14: (V14, CRC_HIGH_FIRST, False),
    15: (V15, CRC_LOW_FIRST, False), 16: (V16, CRC_LOW_FIRST, False), 17: (V17, CRC_HIGH_FIRST, False),
    18: (V18, CRC_HIGH_FIRST, False), 19: (V19, CRC_LOW_FIRST, False), 20: (V20, CRC_LOW_FIRST, False),
    21: (V21, CRC_HIGH_FIRST, False), 23: (V23, CRC_HIGH_FIRST, False), 24: (V24, CRC_LOW_FIRST, False),
    25: (V25, CRC_LOW_FIRST, False), 26: (V26, CRC_LOW_FIRST, False), 27: (V27, CRC_LOW_FIRST, False),
    29: (V29, CRC_LOW_FIRST, False),
}
#: platform-side frames (S->P) that the encoder must reproduce byte for byte (L fixed where documented wrong)
PLATFORM = [1, 2, 6, 7, 9, 11, 13, 16, 19, 26, 29]
#: pile-side frames: re-encoding with the received seq bytes and CRC order reproduces them too
PILE_SIDE = [5, 8, 10, 12, 14, 15, 17, 20, 21, 23, 25, 27]


def decode(vector: bytes):
    return decode_frame(vector)[1]


def test_crc_check_value():
    assert crc16_modbus(b"123456789") == 0x4B37


@pytest.mark.parametrize("number", sorted(GOOD))
def test_vector_envelope(number):
    vector, order, wrong_length = GOOD[number]
    header, _ = decode_frame(vector)
    assert header.crc_order == order
    assert header.length_mismatch is wrong_length
    assert header.frame_type == vector[5]
    assert header.seq_bytes == vector[2:4]
    assert header.body_size == len(vector) - 8


def test_spec_samples_login_ack_and_verify_ack():
    assert decode(V1) == LoginAck(pile_code="55031412782305", result=0)
    header, msg = decode_frame(V2)
    assert header.seq_bytes == b"\xce\x04"
    assert msg == BillingModelVerifyAck(pile_code="55031412782305", billing_model_id="0000", result=0)


def test_login():
    msg = decode(V5)
    assert msg == Login(
        pile_code=PILE, pile_type=1, gun_count=1, protocol_version=0x10, firmware_version="GV.95r13",
        network_type=0, sim="898604D11722D0348606", carrier=2,
    )


def test_login_ack_echoes_seq():
    header, msg = decode_frame(V6)
    assert msg == LoginAck(pile_code=PILE, result=0)
    assert header.seq_bytes == b"\x00\x19"


def test_time_sync_is_utc():
    # 2024-12-18 17:15:30.000 Beijing time
    assert decode(V7) == TimeSync(pile_code=PILE, current_time=datetime(2024, 12, 18, 9, 15, 30))


def test_heartbeat_and_ack():
    assert decode(V8) == Heartbeat(pile_code=PILE, gun="01", gun_state=0)
    header, msg = decode_frame(V9)
    assert msg == HeartbeatAck(pile_code=PILE, gun="01", reply=0)
    assert header.length == 0x09 and header.length_mismatch


def test_billing_model_verify():
    assert decode(V10) == BillingModelVerify(pile_code=PILE, billing_model_id="0000")
    header, msg = decode_frame(V11)
    assert msg == BillingModelVerifyAck(pile_code=PILE, billing_model_id="0000", result=0)
    assert header.seq_bytes == b"\xad\x71" and header.seq_big_endian == 0xAD71


def test_billing_model_request_and_reply():
    assert decode(V12) == BillingModelRequest(pile_code=PILE)
    msg = decode(V13)
    assert isinstance(msg, BillingModelReply)
    assert msg.billing_model_id == "0001"
    for period in ("sharp", "peak", "flat", "valley"):
        assert getattr(msg, f"{period}_electricity_rate") == Decimal("0.75")
        assert getattr(msg, f"{period}_service_rate") == Decimal("0.45")
    assert isinstance(msg.sharp_electricity_rate, Decimal)
    assert msg.loss_ratio == 0
    assert msg.rate_indexes == [0] * 12 + [1] * 12 + [2] * 12 + [3] * 12


def test_realtime_data():
    msg = decode(V14)
    assert msg == RealtimeData(
        transaction_serial="20231212000010000000001005713600", pile_code="32010600395600", gun="02",
        status=3, gun_homed=2, gun_plugged=1, output_voltage=Decimal("373.2"),
        output_current=Decimal("101.2"), gun_temperature=34, gun_line_code=0, soc=78,
        battery_max_temperature=35, charged_minutes=16, remaining_minutes=32, energy=Decimal("8.8"),
        lossy_energy=Decimal(0), amount=Decimal("9.328"), hardware_faults=0,
    )
    assert str(msg.energy) == "8.8000" and str(msg.amount) == "9.3280"


def test_bms_handshake_zero():
    msg = decode(V15)
    assert isinstance(msg, BmsHandshake)
    assert (msg.transaction_serial, msg.pile_code, msg.gun) == (TRADE_BMS, PILE, "01")
    assert msg.bms_protocol_version == bytes(3) and msg.vin == "" and msg.battery_maker == ""
    assert msg.rated_capacity == 0 and msg.pack_serial == 0 and msg.production_year == 1985


def test_remote_start():
    assert decode(V16) == RemoteStart(
        transaction_serial=TRADE_34, pile_code=PILE, gun="01", logical_card="5678901234567890",
        physical_card=h("5678901234567890"), balance=Decimal("100.00"),
    )


def test_remote_start_reply():
    assert decode(V17) == RemoteStartReply(
        transaction_serial=TRADE_34, pile_code=PILE, gun="01", result=1, failure_reason=0
    )


def test_transaction_record():
    msg = decode(V18)
    assert isinstance(msg, TransactionRecord)
    assert (msg.transaction_serial, msg.pile_code, msg.gun) == (TRADE_3B, PILE, "01")
    # Beijing 2023-12-13 17:04:14 and 17:09:36 (weekday bits set on the wire)
    assert msg.start_time == datetime(2023, 12, 13, 9, 4, 14)
    assert msg.end_time == datetime(2023, 12, 13, 9, 9, 36)
    assert msg.transaction_time == datetime(2023, 12, 13, 9, 9, 36)
    prices = [msg.sharp_price, msg.peak_price, msg.flat_price, msg.valley_price]
    assert prices == [Decimal("1.5"), Decimal("1.3"), Decimal("1.1"), Decimal("0.9")]
    for period in ("sharp", "peak", "flat"):
        for part in ("energy", "lossy_energy", "amount"):
            assert getattr(msg, f"{period}_{part}") == 0
    assert msg.valley_energy == Decimal("0.1650") and msg.valley_lossy_energy == Decimal("0.1650")
    assert msg.valley_amount == Decimal("0.1400")
    assert msg.meter_start == 0 and msg.meter_stop == 0
    assert (msg.total_energy, msg.total_lossy_energy, msg.total_amount) == (
        Decimal("0.165"), Decimal("0.165"), Decimal("0.14"))
    assert msg.vin == "" and msg.transaction_flag == 0x01 and msg.stop_reason == 0x40
    assert msg.physical_card == bytes(8)


def test_transaction_record_ack():
    header, msg = decode_frame(V19)
    assert msg == TransactionRecordAck(transaction_serial=TRADE_3B, result=0)
    assert header.seq_bytes == b"\x46\x00"


def test_bms_parameter_config_zero():
    msg = decode(V20)
    assert isinstance(msg, BmsParameterConfig)
    assert (msg.transaction_serial, msg.pile_code, msg.gun) == (TRADE_BMS, PILE, "01")
    assert msg.max_current == Decimal(-400) and msg.max_temperature == -50 and msg.soc == 0


def test_bms_error_frame_zero():
    msg = decode(V21)
    serial = "32010200000000111511161555350206"
    assert msg == BmsErrorFrame(transaction_serial=serial, pile_code=PILE, gun="01")


def test_bms_abort_zero():
    msg = decode(V23)
    assert msg == BmsAbort(transaction_serial="20231212000001011151116155535026", pile_code=PILE, gun="01")


def test_remote_reboot_legacy_four_byte_control():
    assert decode(V24) == RemoteReboot(pile_code=PILE, control=1)
    spec_form = encode_frame(RemoteReboot(pile_code=PILE, control=1), b"\x03\x00")
    assert spec_form[:14] == h("68 0C 03 00 00 92 20 23 12 12 00 00 10 01")
    assert decode_frame(spec_form)[1] == RemoteReboot(pile_code=PILE, control=1)


def test_reboot_and_update_replies():
    assert decode(V25) == RemoteRebootReply(pile_code=PILE, result=1)
    assert decode(V27) == RemoteUpdateReply(pile_code=PILE, status=0)


def test_remote_update():
    assert decode(V26) == RemoteUpdate(
        pile_code=PILE, pile_model=1, pile_power=200, server_address="http://127.0.0.1", server_port=144,
        username="bawan", password="123123", file_path="/user/data", control=1, download_timeout=1,
    )


def test_qr_code_prefix():
    assert decode(V29) == QrCodePrefix(
        pile_code="36100095124032", prefix_kind=1,
        prefix="https://charging.fzcsny.com/code/gunDetail?orgNo=MA38617Y8&id=1860&carScope=1&no=",
    )


def test_bms_info_sample_has_extra_bytes():
    with pytest.raises(DecodeError) as info:
        decode_frame(V22)
    assert info.value.header.frame_type == 0x25 and info.value.header.body_size == 45
    msg = decode_frame(V22, strict=False)[1]
    assert isinstance(msg, BmsInfo) and msg.transaction_serial == TRADE_BMS
    assert msg.max_cell_voltage_index == 2 and msg.max_temperature == -49


def test_mislabelled_type_is_a_decode_error():
    with pytest.raises(DecodeError) as info:
        decode_frame(V28)
    assert info.value.header.frame_type == 0x06


@pytest.mark.parametrize("number", PLATFORM)
def test_encoder_reproduces_platform_frames(number):
    vector, _, wrong_length = GOOD[number]
    header, msg = decode_frame(vector)
    encoded = encode_frame(msg, header.seq_bytes)
    expected = vector
    if wrong_length:
        expected = vector[:1] + bytes([len(vector) - 4]) + vector[2:]
    assert encoded == expected


def test_encoder_with_integer_seq():
    # platform counters are written little-endian: JCPP's 0x56 uses seq 1 -> "01 00"
    assert encode_frame(decode(V7), 1) == V7
    assert encode_frame(decode(V16), 1) == V16
    assert encode_frame(decode(V11), 0x71AD) == V11


@pytest.mark.parametrize("number", PILE_SIDE)
def test_encoder_reproduces_pile_frames(number):
    vector, order, _ = GOOD[number]
    header, msg = decode_frame(vector)
    assert encode_frame(msg, header.seq_bytes, crc_order=order) == vector


def test_transaction_record_reencodes_without_weekday_bits():
    header, msg = decode_frame(V18)
    encoded = encode_frame(msg, header.seq_bytes, crc_order=CRC_HIGH_FIRST)
    assert decode_frame(encoded)[1] == msg
    masked = bytearray(V18)
    for offset in (24, 31, 142):                       # CP56 day bytes: drop the weekday bits
        masked[6 + offset + 4] &= 0x1F
    assert encoded[:-2] == bytes(masked[:-2])


def test_all_vectors_through_the_reader():
    stream = b"".join([V1, V2, V5, V6, V7, V8, V9, V10, V11, V12, V13, V14, V15, V16, V17, V18, V19, V20,
                       V21, V22, V23, V24, V25, V26, V27, V28, V29])
    reader = FrameReader()
    events = []
    for i in range(0, len(stream), 7):
        events += reader.feed(stream[i:i + 7])
    frames = [e for e in events if isinstance(e, FrameEvent)]
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert [f.header.frame_type for f in frames] == [
        0x02, 0x06, 0x01, 0x02, 0x56, 0x03, 0x04, 0x05, 0x06, 0x09, 0x0A, 0x13, 0x15, 0x34, 0x33, 0x3B, 0x40,
        0x17, 0x1B, 0x1D, 0x92, 0x91, 0x94, 0x93, 0xF0,
    ]
    assert [(e.kind, e.header.frame_type) for e in errors] == [(DECODE_ERROR, 0x25), (DECODE_ERROR, 0x06)]
    assert reader.garbage_bytes == 0 and reader.buffered == 0
    assert reader.length_mismatches == 2 and reader.decode_errors == 2
    assert [f.raw for f in frames if f.header.frame_type == 0x0A] == [V13]
