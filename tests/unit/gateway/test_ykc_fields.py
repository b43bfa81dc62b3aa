"""YKC field encodings (§1.4), envelope errors and helpers."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from app.gateway.ykc import (
    BEIJING_TZ,
    CRC_HIGH_FIRST,
    MESSAGE_TYPES,
    BmsDemandOutput,
    DecodeError,
    EncodeError,
    FrameError,
    Header,
    Heartbeat,
    HeartbeatAck,
    OfflineCard,
    OfflineCardClearReply,
    OfflineCardClearResult,
    OfflineCardSync,
    PileStartRequest,
    QrCodePrefix,
    RawFrame,
    RemoteStart,
    TimeSync,
    beijing_to_utc,
    codes,
    crc16_modbus,
    decode_frame,
    encode_frame,
    encode_reply,
    expected_frame_size,
    message_class,
    to_naive_utc,
    transaction_serial,
    utc_to_beijing,
)
from app.gateway.ykc.fields import BCD, Ascii, CP56Time, Raw, Scaled

PILE = "32010600019236"


def test_cp56_spec_example_and_masked_bits():
    # 98 B7 0E 11 10 03 14 = 2020-03-16 17:14:47 Beijing
    assert CP56Time().read(bytes.fromhex("98B70E11100314"), 0) == (datetime(2020, 3, 16, 9, 14, 47), 7)
    # IV, reserved, SU, weekday (Monday = 1) and reserved month/year bits set: same time
    noisy = bytes.fromhex("98B7CE9130F394")
    assert CP56Time().read(noisy, 0)[0] == datetime(2020, 3, 16, 9, 14, 47)


def test_cp56_encode():
    codec = CP56Time()
    when = datetime(2020, 3, 16, 9, 14, 47)
    assert codec.encode(when) == bytes.fromhex("98B70E11100314")
    assert codec.encode(datetime(2020, 3, 16, 17, 14, 47, tzinfo=BEIJING_TZ)) == codec.encode(when)
    assert codec.encode(None) == bytes(7)
    with_millis = datetime(2021, 1, 1, 0, 0, 1, 234999)
    assert codec.read(codec.encode(with_millis), 0)[0] == datetime(2021, 1, 1, 0, 0, 1, 234000)
    with pytest.raises(EncodeError):
        codec.encode(datetime(1999, 12, 31, 15, 0))
    with pytest.raises(EncodeError):
        codec.encode("2020-01-01")


def test_cp56_zero_and_impossible_dates_decode_to_none():
    codec = CP56Time()
    assert codec.read(bytes(7), 0)[0] is None
    assert codec.read(bytes.fromhex("00000000000114"), 0)[0] is None      # day 0
    assert codec.read(bytes.fromhex("60EA0000010114"), 0)[0] is None      # 60000 ms
    assert codec.read(bytes.fromhex("0000001F010114"), 0)[0] is None      # hour 31
    with pytest.raises(DecodeError):
        codec.read(bytes(5), 0)


def test_time_helpers():
    utc = datetime(2023, 12, 13, 9, 4, 14)
    assert utc_to_beijing(utc) == datetime(2023, 12, 13, 17, 4, 14)
    assert beijing_to_utc(datetime(2023, 12, 13, 17, 4, 14)) == utc
    assert beijing_to_utc(datetime(2023, 12, 13, 17, 4, 14, tzinfo=BEIJING_TZ)) == utc
    aware = datetime(2023, 12, 13, 11, 4, 14, tzinfo=timezone(timedelta(hours=2)))
    assert to_naive_utc(aware) == utc and to_naive_utc(utc) is utc
    assert transaction_serial(PILE, "01", datetime(2020, 1, 6, 10, 3, 42), 3060) == (
        "32010600019236012001061803423060")
    with pytest.raises(ValueError):
        transaction_serial("x", "01", utc, 1)


@pytest.mark.parametrize(
    ("raw", "decimals", "value"),
    [
        ("400D0300", 5, "2.00000"),      # electricity rate 2 yuan/kWh
        ("D0FB0100", 5, "1.30000"),
        ("A0860100", 2, "1000.00"),      # balance
        ("9C400000", 5, "0.16540"),      # errata 3: annotated "0.4" in the spec
        ("409C0000", 5, "0.40000"),
    ],
)
def test_decimal_scaling_examples(raw, decimals, value):
    codec = Scaled(4, decimals)
    decoded = codec.read(bytes.fromhex(raw), 0)[0]
    assert isinstance(decoded, Decimal) and str(decoded) == value
    assert codec.encode(Decimal(value)) == bytes.fromhex(raw)


def test_decimal_encoding_is_strict():
    rate = Scaled(4, 5)
    assert rate.encode(2) == bytes.fromhex("400D0300")
    for bad in (2.0, Decimal("0.000001"), Decimal(-1), Decimal("42949.67296"), Decimal("NaN"), True, "1"):
        with pytest.raises(EncodeError):
            rate.encode(bad)
    current = Scaled(2, 1, -400)
    assert current.read(b"\x00\x00", 0)[0] == Decimal(-400)
    assert current.encode(Decimal("-399.9")) == b"\x01\x00"
    with pytest.raises(EncodeError):
        current.encode(Decimal("-400.1"))


def test_bcd():
    codec = BCD(7)
    assert codec.encode("123") == bytes.fromhex("00000000000123")
    assert codec.read(bytes.fromhex("898604D11722D0"), 0)[0] == "898604D11722D0"
    assert codec.encode("898604d11722d0") == bytes.fromhex("898604D11722D0")
    for bad in ("1" * 15, "12 34", "12G4", 1234, "+1"):
        with pytest.raises(EncodeError):
            codec.encode(bad)


def test_ascii_and_reversed_vin():
    assert Ascii(8).encode("GV.95") == b"GV.95\0\0\0"
    assert Ascii(8).read(b"GV.95\0\0\0", 0)[0] == "GV.95"
    vin = "LSVAU2180N2183294"
    codec = Ascii(17, reverse=True)
    assert codec.encode(vin) == vin[::-1].encode()
    assert codec.read(vin[::-1].encode(), 0)[0] == vin
    assert codec.read(bytes(17), 0)[0] == ""
    with pytest.raises(EncodeError):
        Ascii(4).encode("12345")
    with pytest.raises(EncodeError):
        Ascii(4).encode("电")


def test_physical_card_is_raw_and_right_aligned():
    codec = Raw(8, align_right=True)
    assert codec.encode(bytes.fromhex("D14B0A54")) == bytes.fromhex("00000000D14B0A54")
    with pytest.raises(EncodeError):
        codec.encode(bytes(9))
    with pytest.raises(EncodeError):
        Raw(4).encode(b"\x01")


def test_bit_group_cell_voltage_and_group():
    msg = BmsDemandOutput(transaction_serial="1" * 32, pile_code=PILE, gun="01",
                          max_cell_voltage=Decimal("4.15"), max_cell_group=3)
    body = msg.encode()
    assert body[24 + 9:24 + 11] == bytes.fromhex("9F31")        # 415 | 3 << 12, little-endian
    assert BmsDemandOutput.decode(body) == msg


def test_reversed_vin_in_pile_start_request():
    msg = PileStartRequest(pile_code=PILE, gun="01", start_mode=3, vin="LSVAU2180N2183294")
    body = msg.encode()
    assert body[-17:] == b"4923812N0812UAVSL"
    assert PileStartRequest.decode(body) == msg


def test_registry():
    assert len(MESSAGE_TYPES) == 53
    for frame_type, cls in MESSAGE_TYPES.items():
        assert cls.FRAME_TYPE == frame_type and message_class(frame_type) is cls
        assert cls.DIRECTION == ("pile->platform" if frame_type % 2 else "platform->pile")
        assert cls().frame_type == frame_type
        assert cls.decode(cls().encode()) == cls()
    assert message_class(0x99) is None
    assert expected_frame_size(0x13) == 68 and expected_frame_size(0x44) is None


def test_variable_length_frames():
    cards = [OfflineCard("1" * 16, bytes.fromhex("00000000D14B0A54")), OfflineCard("2" * 16, bytes(8))]
    msg = OfflineCardSync(pile_code=PILE, cards=cards)
    body = msg.encode()
    assert len(body) == 8 + 16 * 2 and body[7] == 2
    assert OfflineCardSync.decode(body) == msg
    with pytest.raises(DecodeError):
        OfflineCardSync.decode(body[:-1])
    with pytest.raises(DecodeError):
        OfflineCardSync.decode(body + b"\x00")
    assert OfflineCardSync.decode(body + b"\x00", strict=False) == msg
    with pytest.raises(EncodeError):
        OfflineCardSync(pile_code=PILE, cards=cards * 8).encode()        # more than 15
    reply = OfflineCardClearReply(pile_code=PILE, results=[OfflineCardClearResult(bytes(8), 1, 0)])
    assert OfflineCardClearReply.decode(reply.encode()) == reply
    with pytest.raises(DecodeError):
        OfflineCardClearReply.decode(reply.encode()[:-1])


def test_encode_frame_errors():
    msg = HeartbeatAck(pile_code=PILE, gun="01")
    for seq in (-1, 0x10000, b"\x01", "01"):
        with pytest.raises(EncodeError):
            encode_frame(msg, seq)
    with pytest.raises(EncodeError):
        encode_frame(msg, 0, crc_order="middle")
    with pytest.raises(EncodeError):
        encode_frame(QrCodePrefix(pile_code=PILE, prefix="x" * 243), 0)     # body 252 > 251
    assert len(encode_frame(QrCodePrefix(pile_code=PILE, prefix="x" * 242), 0)) == 259
    with pytest.raises(EncodeError) as info:
        encode_frame(RemoteStart(pile_code=PILE, balance=1.5), 0)
    assert "RemoteStart.balance" in str(info.value)


def test_encode_reply_echoes_seq_and_crc_order():
    request = encode_frame(Heartbeat(pile_code=PILE, gun="01"), 0xD325, crc_order=CRC_HIGH_FIRST)
    header, _ = decode_frame(request)
    assert header.seq == 0xD325 and header.seq_bytes == b"\x25\xd3" and header.crc_order == CRC_HIGH_FIRST
    reply = encode_reply(HeartbeatAck(pile_code=PILE, gun="01"), header)
    assert reply[2:4] == b"\x25\xd3"
    assert decode_frame(reply)[0].crc_order == "low_first"


def test_decode_frame_errors():
    good = encode_frame(TimeSync(pile_code=PILE, current_time=datetime(2024, 1, 1)), 5)
    with pytest.raises(FrameError):
        decode_frame(good[:7])
    with pytest.raises(FrameError):
        decode_frame(b"\x69" + good[1:])
    with pytest.raises(FrameError):
        decode_frame(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(FrameError):
        decode_frame(good + b"\x00")
    sync = encode_frame(OfflineCardSync(pile_code=PILE), 1)
    bad_length = sync[:1] + b"\x20" + sync[2:]              # wrong L on a variable-size type
    with pytest.raises(FrameError):
        decode_frame(bad_length)


def test_unknown_and_encrypted_frames_are_raw():
    frame = encode_frame(RawFrame(0x99, b"\x01\x02\x03"), 7)
    header, msg = decode_frame(frame)
    assert msg == RawFrame(0x99, b"\x01\x02\x03") and header.frame_type == 0x99
    unsigned = bytearray(encode_frame(HeartbeatAck(pile_code=PILE, gun="01"), 7)[:-2])
    unsigned[4] = 1                                           # 3DES flag
    encrypted = bytes(unsigned) + crc16_modbus(unsigned, 2).to_bytes(2, "little")
    header, msg = decode_frame(encrypted)
    assert header.encryption == 1 and isinstance(msg, RawFrame) and msg.frame_type == 0x04


def test_header_is_immutable():
    header, _ = decode_frame(encode_frame(HeartbeatAck(pile_code=PILE, gun="01"), 1))
    assert isinstance(header, Header)
    with pytest.raises(AttributeError):
        header.seq = 2


def test_code_tables():
    assert codes.hardware_faults(0b1_0000_0000_0001) == ["emergency_stop", "door_open"]
    assert codes.hardware_faults(1 << 15) == ["bit15"]
    assert codes.stop_reason_category(0x40) == "finished"
    assert codes.stop_reason_category(0x5A) == "start_failed"
    assert codes.stop_reason_category(0x84) == "abnormal"
    assert codes.stop_reason_category(0x90) == "unknown"
    assert codes.stop_reason_text(0x41) == "finished: SOC 100%"
    assert codes.stop_reason_text(0x47) == "finished (0x47)"
    assert codes.GunStatus(3) is codes.GunStatus.CHARGING


def test_flat_reader_decodes_exactly_like_the_field_codecs():
    """Layouts of flat fields are read with one struct call (the 0x13 hot path); for random bodies of
    every such message type the result equals the field-by-field reading."""
    import random

    from app.gateway.ykc import fields
    from app.gateway.ykc.messages import MESSAGE_TYPES

    rng = random.Random(13)
    flat_types = 0
    for cls in MESSAGE_TYPES.values():
        layout = cls._layout
        if fields._flat_reader(layout) is None or cls.BODY_SIZE is None:
            continue
        flat_types += 1
        for _ in range(50):
            body = bytes(rng.randrange(256) for _ in range(cls.BODY_SIZE))
            fast, end = fields._read_layout(layout, body, 0)
            key = id(layout)
            saved = fields._FLAT[key]
            fields._FLAT[key] = None                      # the field-by-field path
            try:
                slow, slow_end = fields._read_layout(layout, body, 0)
            finally:
                fields._FLAT[key] = saved
            assert (fast, end) == (slow, slow_end), cls.__name__
    assert flat_types >= 5                                # heartbeat, 0x13 and the other flat frames
