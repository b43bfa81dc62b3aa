"""Commands to piles, for web views, RQ jobs and scripts (any process, gevent or not).

Each function sends one frame through the gateway node holding the pile and returns the pile's
decoded reply (a dataclass of :mod:`app.gateway.ykc`), or raises :class:`PileOffline` (no node
holds the pile) or :class:`CommandTimeout` (no reply in time). Needs an app context (Redis and
settings); ``timeout`` defaults to ``GATEWAY_COMMAND_TIMEOUT``.

Gun codes are 16 digits (pile code + 2-digit gun number).
"""

from __future__ import annotations

from decimal import Decimal

from flask import current_app
from sqlalchemy import select

from app.extensions import db, get_redis
from app.gateway.commands import CommandBus, CommandError, CommandTimeout, PileOffline
from app.gateway.ykc import (
    BalanceUpdate,
    BalanceUpdateReply,
    BillingModelSet,
    BillingModelSetReply,
    GroundLockCommand,
    GroundLockReply,
    OfflineCard,
    OfflineCardClear,
    OfflineCardClearReply,
    OfflineCardQuery,
    OfflineCardQueryReply,
    OfflineCardSync,
    OfflineCardSyncReply,
    QrCodePrefix,
    QrCodePrefixReply,
    ReadRealtimeData,
    RealtimeData,
    RemoteReboot,
    RemoteRebootReply,
    RemoteStart,
    RemoteStartReply,
    RemoteStop,
    RemoteStopReply,
    TimeSync,
    TimeSyncReply,
    WorkParameters,
    WorkParametersReply,
    utcnow,
)
from app.models import Pile, Station
from app.services.money import q_pile_balance
from app.services.ykc_pricing import billing_model_fields

__all__ = [
    "CommandError",
    "CommandTimeout",
    "PileOffline",
    "balance_update",
    "bus",
    "ground_lock",
    "offline_card_clear",
    "offline_card_query",
    "offline_card_sync",
    "push_price_for_station",
    "push_price_for_template",
    "push_qr_prefix",
    "read_realtime",
    "reboot",
    "remote_start",
    "remote_stop",
    "set_billing_model",
    "split_gun_code",
    "time_sync",
    "work_parameters",
]

NO_CARD = bytes(8)


def bus() -> CommandBus:
    return CommandBus(get_redis())


def split_gun_code(gun_code: str) -> tuple[str, str]:
    """"3201140240300011" -> ("32011402403000", "01")."""
    code = str(gun_code).strip()
    if len(code) != 16 or not code.isdigit():
        raise ValueError(f"gun code must be 16 digits, got {gun_code!r}")
    return code[:14], code[14:]


def _timeout(timeout: float | None, setting: str = "GATEWAY_COMMAND_TIMEOUT") -> float:
    return float(timeout if timeout is not None else current_app.config[setting])


def _call(pile_code: str, message, reply_cls, match: dict | None = None, timeout: float | None = None,
          setting: str = "GATEWAY_COMMAND_TIMEOUT"):
    _, reply = bus().call(pile_code, message, expect=(reply_cls.FRAME_TYPE,), match=match,
                          timeout=_timeout(timeout, setting))
    return reply


def _card(value: bytes | str | None) -> bytes:
    if not value:
        return NO_CARD
    return bytes.fromhex(value) if isinstance(value, str) else bytes(value)


# --- charging ------------------------------------------------------------------------------------------


def remote_start(gun_code: str, serial: str, balance: Decimal, logical_card: str = "0" * 16,
                 physical_card: bytes | str | None = None, timeout: float | None = None) -> RemoteStartReply:
    """0x34 -> 0x33. ``serial``: the 32-digit transaction serial the pile will use in 0x13 / 0x3B;
    ``balance``: the account balance in yuan (2 decimals on the wire). Check ``reply.result``."""
    pile, gun = split_gun_code(gun_code)
    msg = RemoteStart(transaction_serial=serial, pile_code=pile, gun=gun, logical_card=logical_card,
                      physical_card=_card(physical_card), balance=q_pile_balance(balance))
    return _call(pile, msg, RemoteStartReply, {"gun": gun, "transaction_serial": serial}, timeout,
                 "GATEWAY_REMOTE_START_TIMEOUT")


def remote_stop(gun_code: str, timeout: float | None = None) -> RemoteStopReply:
    """0x36 -> 0x35."""
    pile, gun = split_gun_code(gun_code)
    return _call(pile, RemoteStop(pile_code=pile, gun=gun), RemoteStopReply, {"gun": gun}, timeout)


def read_realtime(gun_code: str, timeout: float | None = None) -> RealtimeData:
    """0x12 -> 0x13 (the gateway also updates the gun's live state from it)."""
    pile, gun = split_gun_code(gun_code)
    return _call(pile, ReadRealtimeData(pile_code=pile, gun=gun), RealtimeData, {"gun": gun}, timeout)


def balance_update(gun_code: str, balance: Decimal, physical_card: bytes | str | None = None,
                   timeout: float | None = None) -> BalanceUpdateReply:
    """0x42 -> 0x41: tell a charging pile the account's new balance (yuan)."""
    pile, gun = split_gun_code(gun_code)
    msg = BalanceUpdate(pile_code=pile, gun=gun, physical_card=_card(physical_card),
                        balance=q_pile_balance(balance))
    return _call(pile, msg, BalanceUpdateReply, None, timeout)


# --- settings and maintenance ------------------------------------------------------------------------


def billing_model_message(pile_code: str) -> BillingModelSet:
    """The 0x58 for a pile, built from its station's price template."""
    row = db.session.execute(select(Pile.station_id).where(Pile.code == pile_code)).first()
    if row is None:
        raise CommandError(f"unknown pile {pile_code}", pile_code)
    station = db.session.get(Station, row.station_id)
    if station is None or station.price_template is None:
        raise CommandError(f"pile {pile_code}: its station has no price template", pile_code)
    return BillingModelSet(pile_code=pile_code, **billing_model_fields(station.price_template))


def set_billing_model(pile_code: str, timeout: float | None = None) -> BillingModelSetReply | None:
    """0x58 -> 0x57 when no gun of the pile is charging; the gateway records the model once accepted.

    While a gun charges the gateway holds it, like the automatic push after a price change, and
    sends the station's model once the pile is idle: then the result is None (queued)."""
    answer = bus().call(pile_code, billing_model_message(pile_code), expect=(BillingModelSetReply.FRAME_TYPE,),
                        timeout=_timeout(timeout))
    return None if answer is None else answer[1]


def time_sync(pile_code: str, timeout: float | None = None) -> TimeSyncReply:
    """0x56 -> 0x55 with the platform's current time."""
    return _call(pile_code, TimeSync(pile_code=pile_code, current_time=utcnow()), TimeSyncReply, None, timeout)


def reboot(pile_code: str, when_idle: bool = False, timeout: float | None = None) -> RemoteRebootReply:
    """0x92 -> 0x91: restart now, or once idle."""
    return _call(pile_code, RemoteReboot(pile_code=pile_code, control=2 if when_idle else 1), RemoteRebootReply,
                 None, timeout)


def work_parameters(pile_code: str, disabled: bool = False, power_limit: int = 100,
                    timeout: float | None = None) -> WorkParametersReply:
    """0x52 -> 0x51: allow or disable (lock) the pile, and cap its output power (30-100 %)."""
    limit = int(power_limit)
    if not 30 <= limit <= 100:
        raise ValueError("power limit must be 30-100 %")
    return _call(pile_code, WorkParameters(pile_code=pile_code, disabled=1 if disabled else 0,
                                           max_output_power=limit), WorkParametersReply, None, timeout)


def ground_lock(gun_code: str, up: bool, timeout: float | None = None) -> GroundLockReply:
    """0x62 -> 0x63: raise (``up``) or lower the gun's parking lock."""
    pile, gun = split_gun_code(gun_code)
    number = int(gun)
    msg = GroundLockCommand(pile_code=pile, gun_number=number, command=0x55 if up else 0xFF)
    return _call(pile, msg, GroundLockReply, {"gun_number": number}, timeout)


def offline_card_sync(pile_code: str, cards: list[tuple[str, bytes | str]],
                      timeout: float | None = None) -> OfflineCardSyncReply:
    """0x44 -> 0x43: store up to 15 (logical card, physical card) pairs on the pile."""
    items = [OfflineCard(logical_card=logical, physical_card=_card(physical)) for logical, physical in cards]
    return _call(pile_code, OfflineCardSync(pile_code=pile_code, cards=items), OfflineCardSyncReply, None, timeout)


def offline_card_clear(pile_code: str, physical_cards: list[bytes | str],
                       timeout: float | None = None) -> OfflineCardClearReply:
    """0x46 -> 0x45: remove up to 24 cards from the pile."""
    msg = OfflineCardClear(pile_code=pile_code, physical_cards=[_card(c) for c in physical_cards])
    return _call(pile_code, msg, OfflineCardClearReply, None, timeout)


def offline_card_query(pile_code: str, physical_cards: list[bytes | str],
                       timeout: float | None = None) -> OfflineCardQueryReply:
    """0x48 -> 0x47: which of up to 26 cards the pile holds."""
    msg = OfflineCardQuery(pile_code=pile_code, physical_cards=[_card(c) for c in physical_cards])
    return _call(pile_code, msg, OfflineCardQueryReply, None, timeout)


QR_PREFIX_PILE = 0x00          # 0xF0 prefix kind: the pile shows prefix + its pile code
QR_PREFIX_MAX = 255            # prefix length is one byte on the wire


def push_qr_prefix(pile_code: str, prefix: str, timeout: float | None = None) -> QrCodePrefixReply:
    """0xF0 -> 0xF1: the QR-code prefix the pile prints before its pile code (kind 0x00, so the pile's
    code reads "prefix + pile code", which app.services.qrcodes.resolve understands). Check ``reply.result``."""
    text = (prefix or "").strip()
    if not text:
        raise ValueError("the QR prefix is empty")
    if len(text.encode("ascii", "strict")) > QR_PREFIX_MAX:
        raise ValueError(f"the QR prefix is longer than {QR_PREFIX_MAX} characters")
    msg = QrCodePrefix(pile_code=pile_code, prefix_kind=QR_PREFIX_PILE, prefix=text)
    return _call(pile_code, msg, QrCodePrefixReply, None, timeout)


def push_qr_prefix_of_pile(pile_code: str, timeout: float | None = None) -> QrCodePrefixReply:
    """:func:`push_qr_prefix` with the prefix of the pile's operator (app.services.qrcodes.prefix_for:
    its default channel's). ValueError when the operator has no prefix configured."""
    from app.services import qrcodes

    operator_id = db.session.scalar(select(Pile.operator_id).where(Pile.code == pile_code))
    if operator_id is None:
        raise CommandError(f"unknown pile {pile_code}", pile_code)
    prefix = qrcodes.prefix_for(operator_id)
    if not prefix:
        raise ValueError(qrcodes.NO_PREFIX)
    return push_qr_prefix(pile_code, prefix, timeout)


# --- price changes ------------------------------------------------------------------------------------


def push_price_for_station(station_id: int) -> dict[str, list[str]]:
    """Queue a 0x58 for every online YKC pile of the station; each node sends it once the pile is
    idle. Offline piles take the new model at their next login (0x05 no longer matches).

    Call it AFTER the template or station change is committed. Returns {"queued": [...],
    "offline": [...]} pile codes.
    """
    codes = db.session.scalars(select(Pile.code).where(Pile.station_id == station_id,
                                                       Pile.protocol.like("ykc%")).order_by(Pile.code)).all()
    command_bus = bus()
    out: dict[str, list[str]] = {"queued": [], "offline": []}
    for code in codes:
        sent = command_bus.post(code, "push_price", station_id=station_id)
        out["queued" if sent else "offline"].append(code)
    return out


def push_price_for_template(template_id: int) -> dict[str, list[str]]:
    """:func:`push_price_for_station` for every station using the template."""
    out: dict[str, list[str]] = {"queued": [], "offline": []}
    for station_id in db.session.scalars(select(Station.id).where(Station.price_template_id == template_id)):
        for key, codes in push_price_for_station(station_id).items():
            out[key] += codes
    return out


# --- the admin command panel ------------------------------------------------------------------------

#: panel action -> (needs a gun, needs a power limit)
PANEL_ACTIONS = {
    "reboot": (False, False),
    "time_sync": (False, False),
    "push_price": (False, False),
    "push_qr": (False, False),
    "power_limit": (False, True),
    "read_realtime": (True, False),
}


def panel_command(pile_code: str, action: str, gun_no: int | None = None, power_limit: int | None = None):
    """One button of the pile command panel. Returns ``(accepted, reply)``; raises CommandError
    (PileOffline, CommandTimeout) when the pile cannot be reached and ValueError on bad input.
    ``reply`` is None for a price push held until no gun is charging (:func:`set_billing_model`)."""
    if action not in PANEL_ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    if action == "reboot":
        reply = reboot(pile_code)
        return reply.result == 1, reply
    if action == "time_sync":
        return True, time_sync(pile_code)
    if action == "push_price":
        reply = set_billing_model(pile_code)
        return (True, None) if reply is None else (reply.result == 1, reply)
    if action == "push_qr":
        reply = push_qr_prefix_of_pile(pile_code)
        return reply.result == 1, reply
    if action == "power_limit":
        reply = work_parameters(pile_code, disabled=False, power_limit=int(power_limit or 100))
        return reply.result == 1, reply
    if gun_no is None:
        raise ValueError("choose a gun")
    return True, read_realtime(f"{pile_code}{int(gun_no):02d}")
