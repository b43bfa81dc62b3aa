"""The YKC fault-code table: what an alarm's ``fault_code`` means, in one place.

Alarms come from the gateway's 0x13 realtime frames (``docs/ykc-protocol.md``): ``FAULT`` when the
gun status byte says fault (0x01), ``HW01`` .. ``HW16`` for the bits of the hardware fault mask
(spec "Bit1" = least-significant bit). Messages are English msgids translated when shown; an
unknown code falls back to the description stored with the alarm.
"""

from __future__ import annotations

from flask_babel import gettext as _

from app.models.base import N_

STATUS_FAULT = "FAULT"

# hardware fault mask bit (0-based, as app.gateway.ykc.codes.HARDWARE_FAULTS) -> meaning
HARDWARE_FAULT_MEANINGS = {
    0: N_("Emergency stop button pressed"),
    1: N_("No usable rectifier module"),
    2: N_("Air outlet over-temperature"),
    3: N_("AC surge protector fault"),
    4: N_("AC/DC module (DC20) communication lost"),
    5: N_("Insulation monitor (FC08) communication lost"),
    6: N_("Energy meter communication lost"),
    7: N_("Card reader communication lost"),
    8: N_("RC10 communication lost"),
    9: N_("Fan speed board fault"),
    10: N_("DC fuse fault"),
    11: N_("High-voltage contactor fault"),
    12: N_("Cabinet door open"),
}

UNKNOWN_BIT = N_("Unknown hardware fault (bit %(bit)s)")

FAULT_CODES = {STATUS_FAULT: N_("Connector reports fault status")}
FAULT_CODES.update({f"HW{bit + 1:02d}": text for bit, text in HARDWARE_FAULT_MEANINGS.items()})


def hardware_code(bit: int) -> str:
    """Alarm code of a hardware fault mask bit (0-based): 0 -> "HW01"."""
    return f"HW{bit + 1:02d}"


def english(code: str) -> str | None:
    """The untranslated meaning of a code (what is stored as the alarm's description), or None."""
    if code in FAULT_CODES:
        return FAULT_CODES[code]
    if code.startswith("HW") and code[2:].isdigit() and 1 <= int(code[2:]) <= 16:
        return UNKNOWN_BIT % {"bit": int(code[2:])}
    return None


def meaning(code: str | None, description: str | None = None) -> str:
    """The meaning of ``code`` in the current language (the stored description if unknown)."""
    code = code or ""
    if code in FAULT_CODES:
        return _(FAULT_CODES[code])
    if code.startswith("HW") and code[2:].isdigit() and 1 <= int(code[2:]) <= 16:
        return _(UNKNOWN_BIT, bit=int(code[2:]))
    return description or code


def realtime_faults(ykc_status: int, hardware_faults: int) -> dict[str, str]:
    """Alarm code -> English meaning for what one 0x13 frame reports as faulty (status 0x01 = fault)."""
    active = {}
    if ykc_status == 0x01:
        active[STATUS_FAULT] = FAULT_CODES[STATUS_FAULT]
    for bit in range(16):
        if hardware_faults >> bit & 1:
            active[hardware_code(bit)] = english(hardware_code(bit))
    return active
