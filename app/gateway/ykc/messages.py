"""Typed YKC frame bodies (one dataclass per frame type) and the frame-type registry.

Field names are English renderings of the spec (see docs/ykc-protocol.md §1.7). Money, energy and
prices are ``Decimal``; times are naive UTC ``datetime`` (None when the pile sent zeros).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

from .fields import (
    BCD,
    Ascii,
    Bits,
    Codec,
    CountedList,
    CP56Time,
    FixedList,
    Offset,
    PrefixedAscii,
    Raw,
    Record,
    RemainderList,
    Scaled,
    Struct,
    UInt,
    field,
    record,
)

__all__ = [
    "MESSAGE_TYPES",
    "PILE_TO_PLATFORM",
    "PLATFORM_TO_PILE",
    "BalanceUpdate",
    "BalanceUpdateReply",
    "BillingModelReply",
    "BillingModelRequest",
    "BillingModelSet",
    "BillingModelSetReply",
    "BillingModelVerify",
    "BillingModelVerifyAck",
    "BmsAbort",
    "BmsChargeEnd",
    "BmsDemandOutput",
    "BmsErrorFrame",
    "BmsHandshake",
    "BmsInfo",
    "BmsParameterConfig",
    "ChargerAbort",
    "GroundLockCommand",
    "GroundLockReply",
    "GroundLockReport",
    "Heartbeat",
    "HeartbeatAck",
    "Login",
    "LoginAck",
    "Message",
    "OfflineCard",
    "OfflineCardClear",
    "OfflineCardClearReply",
    "OfflineCardClearResult",
    "OfflineCardQuery",
    "OfflineCardQueryReply",
    "OfflineCardQueryResult",
    "OfflineCardSync",
    "OfflineCardSyncReply",
    "ParallelPileStartReply",
    "ParallelPileStartRequest",
    "ParallelRemoteStart",
    "ParallelRemoteStartReply",
    "PileStartReply",
    "PileStartRequest",
    "QrCodePrefix",
    "QrCodePrefixReply",
    "RawFrame",
    "ReadRealtimeData",
    "RealtimeData",
    "RemoteReboot",
    "RemoteRebootReply",
    "RemoteStart",
    "RemoteStartReply",
    "RemoteStop",
    "RemoteStopReply",
    "RemoteUpdate",
    "RemoteUpdateReply",
    "TimeSync",
    "TimeSyncReply",
    "TransactionRecord",
    "TransactionRecordAck",
    "WorkParameters",
    "WorkParametersReply",
    "message",
    "message_class",
]

M = TypeVar("M", bound="Message")

PILE_TO_PLATFORM = "pile->platform"
PLATFORM_TO_PILE = "platform->pile"


class Message(Record):
    """Base class of every typed frame body."""

    FRAME_TYPE: ClassVar[int] = -1
    DIRECTION: ClassVar[str] = ""

    @property
    def frame_type(self) -> int:
        return self.FRAME_TYPE


@dataclass
class RawFrame:
    """A frame of an unknown type, or an encrypted one: the body is kept as received."""

    frame_type: int
    body: bytes = b""

    def encode(self) -> bytes:
        return bytes(self.body)


#: frame type -> message class
MESSAGE_TYPES: dict[int, type[Message]] = {}


def message(frame_type: int, direction: str) -> Callable[[type[M]], type[M]]:
    """Class decorator: lay out the dataclass and register it under ``frame_type``."""

    def register(cls: type[M]) -> type[M]:
        if frame_type in MESSAGE_TYPES:
            raise ValueError(f"frame type 0x{frame_type:02X} registered twice")
        cls.FRAME_TYPE = frame_type
        cls.DIRECTION = direction
        cls = record(cls)
        MESSAGE_TYPES[frame_type] = cls
        return cls

    return register


# --- field shorthands -------------------------------------------------------------------------------


def _f(codec: Codec) -> Callable[[], Any]:
    return lambda: field(codec)


_pile = _f(BCD(7))                        # pile code, 14 digits
_gun = _f(BCD(1))                         # gun number "01"
_serial = _f(BCD(16))                     # transaction serial, 32 digits
_model_id = _f(BCD(2))                    # billing model id
_logical_card = _f(BCD(8))
_card = _f(Raw(8, align_right=True))      # physical card: 8 raw bytes
_u8 = _f(UInt(1))
_u16 = _f(UInt(2))
_u32 = _f(UInt(4))
_rate = _f(Scaled(4, 5))                  # yuan/kWh, 5 decimals
_kwh = _f(Scaled(4, 4))                   # energy, 4 decimals
_yuan4 = _f(Scaled(4, 4))                 # money, 4 decimals
_balance = _f(Scaled(4, 2))               # account balance, 2 decimals
_timestamp = _f(CP56Time())
_celsius = _f(Offset(1, -50))             # temperature, -50 offset
_index1 = _f(Offset(1, 1))                # GB/T 27930 "1 offset" index
_decivolt = _f(Scaled(2, 1))              # 0.1 V
_centivolt = _f(Scaled(2, 2))             # 0.01 V
_deciamp_bms = _f(Scaled(2, 1, -400))     # 0.1 A with -400 A offset
_deciunit = _f(Scaled(2, 1))              # 0.1 kWh / 0.1 % / 0.1 Ah
_flag2 = _f(Bits(2))
_reserved4 = _f(Raw(4))


# --- shared layouts -----------------------------------------------------------------------------------


@record
class _Pile(Message):
    pile_code: str = _pile()


@record
class _PileGun(_Pile):
    gun: str = _gun()


@record
class _PileResult(_Pile):
    result: int = _u8()


@record
class _Charging(Message):
    transaction_serial: str = _serial()
    pile_code: str = _pile()
    gun: str = _gun()


# --- login, heartbeat, billing model ------------------------------------------------------------------


@message(0x01, PILE_TO_PLATFORM)
class Login(_Pile):
    pile_type: int = _u8()                 # 0 DC, 1 AC
    gun_count: int = _u8()
    protocol_version: int = _u8()          # version x 10: 0x0F = 1.5, 0x10 = 1.6
    firmware_version: str = field(Ascii(8))
    network_type: int = _u8()              # 0 SIM, 1 LAN, 2 WAN, 3 other
    sim: str = field(BCD(10))             # ICCID, may hold A-F
    carrier: int = _u8()                   # 0 Mobile, 2 Telecom, 3 Unicom, 4 other


@message(0x02, PLATFORM_TO_PILE)
class LoginAck(_PileResult):
    """result: 0 success, 1 failure."""


@message(0x03, PILE_TO_PLATFORM)
class Heartbeat(_PileGun):
    gun_state: int = _u8()                 # 0 normal, 1 fault


@message(0x04, PLATFORM_TO_PILE)
class HeartbeatAck(_PileGun):
    reply: int = _u8()                     # always 0


@message(0x05, PILE_TO_PLATFORM)
class BillingModelVerify(_Pile):
    billing_model_id: str = _model_id()


@message(0x06, PLATFORM_TO_PILE)
class BillingModelVerifyAck(_Pile):
    billing_model_id: str = _model_id()
    result: int = _u8()                    # 0 same model, 1 differs


@message(0x09, PILE_TO_PLATFORM)
class BillingModelRequest(_Pile):
    pass


@record
class _BillingModel(_Pile):
    billing_model_id: str = _model_id()
    sharp_electricity_rate: Decimal = _rate()
    sharp_service_rate: Decimal = _rate()
    peak_electricity_rate: Decimal = _rate()
    peak_service_rate: Decimal = _rate()
    flat_electricity_rate: Decimal = _rate()
    flat_service_rate: Decimal = _rate()
    valley_electricity_rate: Decimal = _rate()
    valley_service_rate: Decimal = _rate()
    loss_ratio: int = _u8()
    #: rate index (0 sharp, 1 peak, 2 flat, 3 valley) per half hour, 00:00-00:30 first
    rate_indexes: list[int] = field(FixedList(UInt(1), 48))


@message(0x0A, PLATFORM_TO_PILE)
class BillingModelReply(_BillingModel):
    pass


@message(0x58, PLATFORM_TO_PILE)
class BillingModelSet(_BillingModel):
    pass


@message(0x57, PILE_TO_PLATFORM)
class BillingModelSetReply(_PileResult):
    """result: 0 failure, 1 success."""


# --- realtime data --------------------------------------------------------------------------------


@message(0x12, PLATFORM_TO_PILE)
class ReadRealtimeData(_PileGun):
    pass


@message(0x13, PILE_TO_PLATFORM)
class RealtimeData(_Charging):
    status: int = _u8()                    # 0 offline, 1 fault, 2 idle, 3 charging
    gun_homed: int = _u8()                 # 0 no, 1 yes, 2 unknown
    gun_plugged: int = _u8()               # 0 no, 1 yes
    output_voltage: Decimal = _decivolt()
    output_current: Decimal = field(Scaled(2, 1))
    gun_temperature: int = _celsius()
    gun_line_code: int = field(UInt(8))
    soc: int = _u8()
    battery_max_temperature: int = _celsius()
    charged_minutes: int = _u16()
    remaining_minutes: int = _u16()
    energy: Decimal = _kwh()
    lossy_energy: Decimal = _kwh()
    amount: Decimal = _yuan4()
    hardware_faults: int = _u16()          # bit mask, see codes.HARDWARE_FAULTS


# --- BMS frames (GB/T 27930 values) -------------------------------------------------------------------


@message(0x15, PILE_TO_PLATFORM)
class BmsHandshake(_Charging):
    bms_protocol_version: bytes = field(Raw(3))
    battery_type: int = _u8()
    rated_capacity: Decimal = _deciunit()          # Ah
    rated_voltage: Decimal = _decivolt()
    battery_maker: str = field(Ascii(4))
    pack_serial: int = _u32()
    production_year: int = field(Offset(1, 1985))
    production_month: int = _u8()
    production_day: int = _u8()
    charge_cycles: int = field(UInt(3))
    ownership: int = _u8()                          # 0 leased, 1 owned
    reserved: int = _u8()
    vin: str = field(Ascii(17))
    bms_software_version: bytes = field(Raw(8))


@message(0x17, PILE_TO_PLATFORM)
class BmsParameterConfig(_Charging):
    max_cell_voltage: Decimal = _centivolt()
    max_current: Decimal = _deciamp_bms()
    nominal_energy: Decimal = _deciunit()           # kWh
    max_total_voltage: Decimal = _decivolt()
    max_temperature: int = _celsius()
    soc: Decimal = _deciunit()                      # %
    battery_voltage: Decimal = _decivolt()
    pile_max_voltage: Decimal = _decivolt()
    pile_min_voltage: Decimal = _decivolt()
    pile_max_current: Decimal = _deciamp_bms()
    pile_min_current: Decimal = _deciamp_bms()


@message(0x19, PILE_TO_PLATFORM)
class BmsChargeEnd(_Charging):
    final_soc: int = _u8()
    min_cell_voltage: Decimal = _centivolt()
    max_cell_voltage: Decimal = _centivolt()
    min_temperature: int = _celsius()
    max_temperature: int = _celsius()
    charge_minutes: int = _u16()
    output_energy: Decimal = _deciunit()            # kWh
    charger_number: int = _u32()


@message(0x1B, PILE_TO_PLATFORM)
class BmsErrorFrame(_Charging):
    """2-bit flags: 0 normal, 1 timeout, 2 untrusted."""

    crm_00_timeout: int = _flag2()
    crm_aa_timeout: int = _flag2()
    reserved_0: int = field(Bits(4))
    cts_cml_timeout: int = _flag2()
    cro_timeout: int = _flag2()
    reserved_1: int = field(Bits(4))
    ccs_timeout: int = _flag2()
    cst_timeout: int = _flag2()
    reserved_2: int = field(Bits(4))
    csd_timeout: int = _flag2()
    bms_other: int = field(Bits(6))
    brm_timeout: int = _flag2()
    reserved_4: int = field(Bits(6))
    bcp_timeout: int = _flag2()
    bro_timeout: int = _flag2()
    reserved_5: int = field(Bits(4))
    bcs_timeout: int = _flag2()
    bcl_timeout: int = _flag2()
    bst_timeout: int = _flag2()
    reserved_6: int = _flag2()
    bsd_timeout: int = _flag2()
    charger_other: int = field(Bits(6))


@message(0x1D, PILE_TO_PLATFORM)
class BmsAbort(_Charging):
    """Abort reasons reported by the BMS (2-bit flags)."""

    soc_target_reached: int = _flag2()
    total_voltage_reached: int = _flag2()
    cell_voltage_reached: int = _flag2()
    charger_stopped: int = _flag2()
    insulation_fault: int = _flag2()
    connector_over_temperature: int = _flag2()
    bms_over_temperature: int = _flag2()
    connector_fault: int = _flag2()
    pack_over_temperature: int = _flag2()
    hv_relay_fault: int = _flag2()
    cc2_fault: int = _flag2()
    other_fault: int = _flag2()
    over_current: int = _flag2()
    voltage_abnormal: int = _flag2()
    error_reserved: int = field(Bits(4))


@message(0x21, PILE_TO_PLATFORM)
class ChargerAbort(_Charging):
    """Abort reasons reported by the charger (2-bit flags)."""

    condition_reached: int = _flag2()
    manual_stop: int = _flag2()
    abnormal_stop: int = _flag2()
    bms_stopped: int = _flag2()
    charger_over_temperature: int = _flag2()
    connector_fault: int = _flag2()
    internal_over_temperature: int = _flag2()
    energy_not_deliverable: int = _flag2()
    emergency_stop: int = _flag2()
    other_fault: int = _flag2()
    fault_reserved: int = field(Bits(4))
    current_mismatch: int = _flag2()
    voltage_abnormal: int = _flag2()
    error_reserved: int = field(Bits(4))


@message(0x23, PILE_TO_PLATFORM)
class BmsDemandOutput(_Charging):
    voltage_demand: Decimal = _decivolt()
    current_demand: Decimal = _deciamp_bms()
    charge_mode: int = _u8()                        # 1 constant voltage, 2 constant current
    measured_voltage: Decimal = _decivolt()
    measured_current: Decimal = _deciamp_bms()
    max_cell_voltage: Decimal = field(Bits(12, decimals=2))
    max_cell_group: int = field(Bits(4))
    soc: int = _u8()
    remaining_minutes: int = _u16()
    output_voltage: Decimal = _decivolt()
    output_current: Decimal = _deciamp_bms()
    charged_minutes: int = _u16()


@message(0x25, PILE_TO_PLATFORM)
class BmsInfo(_Charging):
    max_cell_voltage_index: int = _index1()
    max_temperature: int = _celsius()
    max_temperature_probe: int = _index1()
    min_temperature: int = _celsius()
    min_temperature_probe: int = _index1()
    cell_voltage_state: int = _flag2()              # 0 normal, 1 high, 2 low
    soc_state: int = _flag2()
    over_current: int = _flag2()
    over_temperature: int = _flag2()
    insulation_fault: int = _flag2()
    output_connector_fault: int = _flag2()
    charge_allowed: int = _flag2()                  # 0 forbidden, 1 allowed
    reserved: int = _flag2()


# --- starting and stopping ---------------------------------------------------------------------------


@record
class _PileStartRequest(_PileGun):
    start_mode: int = _u8()                         # 1 card, 2 account, 3 VIN
    password_required: int = _u8()
    account_or_card: bytes = _card()
    password: str = field(Ascii(16))
    vin: str = field(Ascii(17, reverse=True))      # sent byte-reversed


@message(0x31, PILE_TO_PLATFORM)
class PileStartRequest(_PileStartRequest):
    pass


@message(0xA1, PILE_TO_PLATFORM)
class ParallelPileStartRequest(_PileStartRequest):
    parallel_role: int = _u8()                      # 0 main, 1 auxiliary
    parallel_serial: str = field(BCD(6))


@record
class _PileStartReply(_Charging):
    logical_card: str = _logical_card()
    balance: Decimal = _balance()
    auth_result: int = _u8()                        # 0 fail, 1 success
    failure_reason: int = _u8()                     # codes.AuthFailure


@message(0x32, PLATFORM_TO_PILE)
class PileStartReply(_PileStartReply):
    pass


@message(0xA2, PLATFORM_TO_PILE)
class ParallelPileStartReply(_PileStartReply):
    parallel_serial: str = field(BCD(6))


@record
class _RemoteStartReply(_Charging):
    result: int = _u8()                             # 0 fail, 1 success
    failure_reason: int = _u8()                     # codes.RemoteStartFailure


@message(0x33, PILE_TO_PLATFORM)
class RemoteStartReply(_RemoteStartReply):
    pass


@message(0xA3, PILE_TO_PLATFORM)
class ParallelRemoteStartReply(_RemoteStartReply):
    parallel_role: int = _u8()
    parallel_serial: str = field(BCD(6))


@record
class _RemoteStart(_Charging):
    logical_card: str = _logical_card()
    physical_card: bytes = _card()
    balance: Decimal = _balance()


@message(0x34, PLATFORM_TO_PILE)
class RemoteStart(_RemoteStart):
    pass


@message(0xA4, PLATFORM_TO_PILE)
class ParallelRemoteStart(_RemoteStart):
    parallel_serial: str = field(BCD(6))


@message(0x35, PILE_TO_PLATFORM)
class RemoteStopReply(_PileGun):
    result: int = _u8()
    failure_reason: int = _u8()                     # codes.RemoteStopFailure


@message(0x36, PLATFORM_TO_PILE)
class RemoteStop(_PileGun):
    pass


# --- transaction record, balance ----------------------------------------------------------------------


@message(0x3B, PILE_TO_PLATFORM)
class TransactionRecord(_Charging):
    start_time: datetime | None = _timestamp()
    end_time: datetime | None = _timestamp()
    sharp_price: Decimal = _rate()
    sharp_energy: Decimal = _kwh()
    sharp_lossy_energy: Decimal = _kwh()
    sharp_amount: Decimal = _yuan4()
    peak_price: Decimal = _rate()
    peak_energy: Decimal = _kwh()
    peak_lossy_energy: Decimal = _kwh()
    peak_amount: Decimal = _yuan4()
    flat_price: Decimal = _rate()
    flat_energy: Decimal = _kwh()
    flat_lossy_energy: Decimal = _kwh()
    flat_amount: Decimal = _yuan4()
    valley_price: Decimal = _rate()
    valley_energy: Decimal = _kwh()
    valley_lossy_energy: Decimal = _kwh()
    valley_amount: Decimal = _yuan4()
    meter_start: Decimal = field(Scaled(5, 4))
    meter_stop: Decimal = field(Scaled(5, 4))
    total_energy: Decimal = _kwh()
    total_lossy_energy: Decimal = _kwh()
    total_amount: Decimal = _yuan4()
    vin: str = field(Ascii(17))
    transaction_flag: int = _u8()                   # 1 app, 2 card, 4 offline card, 5 VIN
    transaction_time: datetime | None = _timestamp()
    stop_reason: int = _u8()                        # codes.STOP_REASONS
    physical_card: bytes = _card()


@message(0x40, PLATFORM_TO_PILE)
class TransactionRecordAck(Message):
    transaction_serial: str = _serial()
    result: int = _u8()                             # 0 accepted, 1 illegal record


@message(0x42, PLATFORM_TO_PILE)
class BalanceUpdate(_PileGun):
    physical_card: bytes = _card()                  # all zero: do not check the card
    balance: Decimal = _balance()


@message(0x41, PILE_TO_PLATFORM)
class BalanceUpdateReply(_Pile):
    physical_card: bytes = _card()
    result: int = _u8()                             # 0 ok, 1 wrong pile, 2 wrong card


# --- offline cards ------------------------------------------------------------------------------------


@record
class OfflineCard(Record):
    logical_card: str = _logical_card()
    physical_card: bytes = _card()


@record
class OfflineCardClearResult(Record):
    physical_card: bytes = _card()
    result: int = _u8()                             # 0 fail, 1 cleared
    failure_reason: int = _u8()                     # 1 card format error


@record
class OfflineCardQueryResult(Record):
    physical_card: bytes = _card()
    exists: int = _u8()


@message(0x44, PLATFORM_TO_PILE)
class OfflineCardSync(_Pile):
    cards: list[OfflineCard] = field(CountedList(Struct(OfflineCard), max_items=15))


@message(0x43, PILE_TO_PLATFORM)
class OfflineCardSyncReply(_Pile):
    result: int = _u8()                             # 0 fail, 1 saved
    failure_reason: int = _u8()                     # 1 card format error, 2 storage full


@message(0x46, PLATFORM_TO_PILE)
class OfflineCardClear(_Pile):
    physical_cards: list[bytes] = field(CountedList(Raw(8, align_right=True), max_items=24))


@message(0x45, PILE_TO_PLATFORM)
class OfflineCardClearReply(_Pile):
    results: list[OfflineCardClearResult] = field(RemainderList(Struct(OfflineCardClearResult), 24))


@message(0x48, PLATFORM_TO_PILE)
class OfflineCardQuery(_Pile):
    physical_cards: list[bytes] = field(CountedList(Raw(8, align_right=True), max_items=26))


@message(0x47, PILE_TO_PLATFORM)
class OfflineCardQueryReply(_Pile):
    results: list[OfflineCardQueryResult] = field(RemainderList(Struct(OfflineCardQueryResult), 26))


# --- settings and maintenance -------------------------------------------------------------------------


@message(0x52, PLATFORM_TO_PILE)
class WorkParameters(_Pile):
    disabled: int = _u8()                           # 0 allowed to work, 1 disabled (locked)
    max_output_power: int = _u8()                   # percent, 30-100


@message(0x51, PILE_TO_PLATFORM)
class WorkParametersReply(_PileResult):
    """result: 0 failure, 1 success."""


@message(0x56, PLATFORM_TO_PILE)
class TimeSync(_Pile):
    current_time: datetime | None = _timestamp()


@message(0x55, PILE_TO_PLATFORM)
class TimeSyncReply(_Pile):
    current_time: datetime | None = _timestamp()


@message(0x61, PILE_TO_PLATFORM)
class GroundLockReport(_Pile):
    gun_number: int = _u8()                         # BIN here, not BCD
    lock_state: int = _u8()                         # 0x00 moving, 0x55 raised, 0xFF lowered
    parking_state: int = _u8()                      # 0x00 empty, 0xFF occupied
    battery_level: int = _u8()                      # percent
    alarm: int = _u8()                              # 0x00 none, 0xFF arm damaged, 0x55 lift/lower failure
    reserved: bytes = _reserved4()


@message(0x62, PLATFORM_TO_PILE)
class GroundLockCommand(_Pile):
    gun_number: int = _u8()
    command: int = _u8()                            # 0x55 raise, 0xFF lower
    reserved: bytes = _reserved4()


@message(0x63, PILE_TO_PLATFORM)
class GroundLockReply(_Pile):
    gun_number: int = _u8()
    result: int = _u8()                             # 1 success, 0 failure
    reserved: bytes = _reserved4()


@message(0x92, PLATFORM_TO_PILE)
class RemoteReboot(_Pile):
    control: int = _u8()                            # 1 immediately, 2 when idle
    #: JCPP sends the control as a 4-byte big-endian int (L=0x0F)
    LEGACY_LAYOUTS: ClassVar[dict[int, dict[str, Codec]]] = {11: {"control": UInt(4, "big")}}


@message(0x91, PILE_TO_PLATFORM)
class RemoteRebootReply(_PileResult):
    """result: 0 failure, 1 success."""


@message(0x94, PLATFORM_TO_PILE)
class RemoteUpdate(_Pile):
    pile_model: int = _u8()                         # 1 DC, 2 AC
    pile_power: int = _u16()
    server_address: str = field(Ascii(16))
    server_port: int = _u16()
    username: str = field(Ascii(16))
    password: str = field(Ascii(16))
    file_path: str = field(Ascii(32))
    control: int = _u8()                            # 1 immediately, 2 when idle
    download_timeout: int = _u8()                   # minutes


@message(0x93, PILE_TO_PLATFORM)
class RemoteUpdateReply(_Pile):
    status: int = _u8()                             # 0 ok, 1 bad number, 2 model mismatch, 3 timeout


@message(0xF0, PLATFORM_TO_PILE)
class QrCodePrefix(_Pile):
    prefix_kind: int = _u8()                        # 0 prefix+pile, 1 prefix+org+pile
    prefix: str = field(PrefixedAscii())


@message(0xF1, PILE_TO_PLATFORM)
class QrCodePrefixReply(_PileResult):
    """result: 0 failure, 1 success."""


def message_class(frame_type: int) -> type[Message] | None:
    """The message class registered for ``frame_type``, or None."""
    return MESSAGE_TYPES.get(frame_type)
