"""Code tables of the YKC protocol (§1.5). Frame fields stay plain ints; these name their values."""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "HARDWARE_FAULTS",
    "STOP_REASONS",
    "AuthFailure",
    "GunStatus",
    "RateIndex",
    "RemoteStartFailure",
    "RemoteStopFailure",
    "StartMode",
    "TransactionFlag",
    "hardware_faults",
    "stop_reason_category",
    "stop_reason_text",
]


class GunStatus(IntEnum):
    OFFLINE = 0x00
    FAULT = 0x01
    IDLE = 0x02
    CHARGING = 0x03


class TransactionFlag(IntEnum):
    APP = 0x01
    CARD = 0x02
    OFFLINE_CARD = 0x04
    VIN = 0x05


class StartMode(IntEnum):
    CARD = 0x01
    ACCOUNT = 0x02
    VIN = 0x03


class AuthFailure(IntEnum):
    """0x32 / 0xA2 failure reason."""

    ACCOUNT_NOT_FOUND = 0x01
    ACCOUNT_FROZEN = 0x02
    INSUFFICIENT_BALANCE = 0x03
    CARD_UNSETTLED_RECORD = 0x04
    PILE_DISABLED = 0x05
    ACCOUNT_NOT_ALLOWED = 0x06
    WRONG_PASSWORD = 0x07
    STATION_CAPACITY = 0x08
    VIN_NOT_REGISTERED = 0x09
    PILE_UNSETTLED_RECORD = 0x0A
    CARDS_NOT_SUPPORTED = 0x0B


class RemoteStartFailure(IntEnum):
    NONE = 0x00
    PILE_MISMATCH = 0x01
    GUN_CHARGING = 0x02
    DEVICE_FAULT = 0x03
    DEVICE_OFFLINE = 0x04
    GUN_NOT_PLUGGED = 0x05


class RemoteStopFailure(IntEnum):
    NONE = 0x00
    PILE_MISMATCH = 0x01
    GUN_NOT_CHARGING = 0x02
    OTHER = 0x03


class RateIndex(IntEnum):
    SHARP = 0
    PEAK = 1
    FLAT = 2
    VALLEY = 3


#: 0x13 hardware fault mask: bit index (0 = least significant, spec "Bit1") -> name
HARDWARE_FAULTS = {
    0: "emergency_stop",
    1: "no_rectifier_module",
    2: "outlet_over_temperature",
    3: "ac_surge_protector",
    4: "dc20_comm_lost",
    5: "fc08_comm_lost",
    6: "meter_comm_lost",
    7: "card_reader_comm_lost",
    8: "rc10_comm_lost",
    9: "fan_board_fault",
    10: "dc_fuse_fault",
    11: "hv_contactor_fault",
    12: "door_open",
}


def hardware_faults(mask: int) -> list[str]:
    """Names of the bits set in a 0x13 hardware fault mask (unknown bits as ``bitN``)."""
    return [HARDWARE_FAULTS.get(bit, f"bit{bit}") for bit in range(16) if mask >> bit & 1]


STOP_REASONS = {
    0x40: "finished: app remote stop",
    0x41: "finished: SOC 100%",
    0x42: "finished: energy target reached",
    0x43: "finished: amount target reached",
    0x44: "finished: time target reached",
    0x45: "finished: manual stop at pile",
    0x4A: "start failed: control system fault",
    0x4B: "start failed: control pilot disconnected",
    0x4C: "start failed: breaker tripped",
    0x4D: "start failed: meter comm lost",
    0x4E: "start failed: insufficient balance",
    0x4F: "start failed: charging module fault",
    0x50: "start failed: emergency stop input",
    0x51: "start failed: surge protector fault",
    0x52: "start failed: BMS not ready",
    0x53: "start failed: temperature abnormal",
    0x54: "start failed: battery reverse connection",
    0x55: "start failed: electronic lock fault",
    0x56: "start failed: contactor close failure",
    0x57: "start failed: insulation fault",
    0x59: "start failed: BHM timeout",
    0x5A: "start failed: BRM timeout",
    0x5B: "start failed: BCP timeout",
    0x5C: "start failed: BRO 0xAA timeout",
    0x5D: "start failed: BCS timeout",
    0x5E: "start failed: BCL timeout",
    0x5F: "start failed: BSM timeout",
    0x60: "start failed: battery voltage in BHM stage",
    0x61: "start failed: BRO_AA voltage differs from BCP by more than 5 percent",
    0x62: "start failed: BRO changed AA->00 during pre-charge",
    0x63: "start failed: host configuration timeout",
    0x64: "start failed: charger not ready",
    0x6A: "abnormal stop: system lock-out",
    0x6B: "abnormal stop: pilot disconnected",
    0x6C: "abnormal stop: breaker tripped",
    0x6D: "abnormal stop: meter comm lost",
    0x6E: "abnormal stop: insufficient balance",
    0x6F: "abnormal stop: AC protection",
    0x70: "abnormal stop: DC protection",
    0x71: "abnormal stop: charging module fault",
    0x72: "abnormal stop: emergency stop",
    0x73: "abnormal stop: surge protector",
    0x74: "abnormal stop: temperature",
    0x75: "abnormal stop: output abnormal",
    0x76: "abnormal stop: no current",
    0x77: "abnormal stop: electronic lock",
    0x79: "abnormal stop: total charge voltage abnormal",
    0x7A: "abnormal stop: total charge current abnormal",
    0x7B: "abnormal stop: cell voltage abnormal",
    0x7C: "abnormal stop: battery pack over-temperature",
    0x7D: "abnormal stop: max cell voltage abnormal",
    0x7E: "abnormal stop: max battery pack over-temperature",
    0x7F: "abnormal stop: BMV cell voltage abnormal",
    0x80: "abnormal stop: BMT pack over-temperature",
    0x81: "abnormal stop: battery state abnormal",
    0x82: "abnormal stop: vehicle forbids charging",
    0x83: "abnormal stop: pile power loss",
    0x84: "abnormal stop: BCS timeout",
    0x85: "abnormal stop: BCL timeout",
    0x86: "abnormal stop: BSM timeout",
    0x87: "abnormal stop: BST timeout",
    0x88: "abnormal stop: BSD timeout",
    0x89: "abnormal stop: peer CCS timeout",
    0x90: "unknown reason",
}


def stop_reason_category(code: int) -> str:
    """'finished' (0x40-0x49), 'start_failed' (0x4A-0x69), 'abnormal' (0x6A-0x8F) or 'unknown'."""
    if 0x40 <= code <= 0x49:
        return "finished"
    if 0x4A <= code <= 0x69:
        return "start_failed"
    if 0x6A <= code <= 0x8F:
        return "abnormal"
    return "unknown"


def stop_reason_text(code: int) -> str:
    """English description of a 0x3B stop reason."""
    return STOP_REASONS.get(code, f"{stop_reason_category(code)} (0x{code:02X})")
