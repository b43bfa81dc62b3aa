"""Where the pile gateway hands charging events to the order logic.

The gateway calls one :class:`ChargingHooks` object (``CHARGING_HOOKS`` = ``"module:Class"``,
default: this no-op class). The orders issue subclasses it and points the setting at its class.

Calls happen in the gateway process, in the pile's connection greenlet, inside a Flask app
context with ``db.session`` usable; the transaction is the hook's own (commit what you write).
Frames arrive in pile order; a hook must be quick (``on_realtime`` runs for every 0x13 frame)
and idempotent (piles resend). An exception is logged and never reaches the pile connection.

Arguments: ``pile`` is a :class:`app.gateway.state_writer.PileInfo` (id, code, operator_id,
station_id, connectors), ``gun`` a :class:`app.gateway.state_writer.ConnectorRef` (id, gun_no,
code), ``msg`` the decoded frame dataclass from :mod:`app.gateway.ykc` (Decimal money, naive UTC
times), ``bill_row`` the stored :class:`app.models.order.PileBill`.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable

from app.gateway.ykc import (
    ParallelPileStartReply,
    ParallelPileStartRequest,
    PileStartReply,
    PileStartRequest,
    codes,
)

log = logging.getLogger(__name__)


class ChargingHooks:
    """No-op defaults. Override what the order logic needs."""

    #: 0x32/0xA2 failure reason of the default answer to a pile-initiated start (card / VIN)
    default_refusal = codes.AuthFailure.ACCOUNT_NOT_FOUND

    def on_remote_start_reply(self, msg) -> None:
        """0x33 / 0xA3: the pile's answer to a remote start (may come twice: "not plugged", then
        success once the gun is plugged within 60 s)."""

    def on_remote_stop_reply(self, msg) -> None:
        """0x35: the pile's answer to a remote stop."""

    def on_realtime(self, pile, gun, msg) -> None:
        """0x13: realtime data of one gun (status, V, A, SOC, energy, amount, serial)."""

    def wants_realtime(self, pile, gun, msg) -> bool:
        """Asked for every 0x13 before :meth:`on_realtime`, outside the database lane: False when
        on_realtime has nothing to do with this frame (it is then not called). No I/O here: it runs
        for every frame of every pile (an idle gun repeats the same 0x13 all day)."""
        return True

    def on_bms(self, pile, gun, msg) -> None:
        """0x15-0x25: BMS frames during a charge."""

    def on_ground_lock(self, pile, gun, msg) -> None:
        """0x61: parking-lock / space report of one gun (space free or occupied)."""

    def on_transaction_record(self, bill_row, msg) -> None:
        """0x3B: called after the raw record is committed, on every receipt (resends included),
        before the 0x40 acknowledgement is sent."""

    def periodic_tasks(self, config) -> list[tuple[float, Callable[[], object]]]:
        """Work the gateway node runs every ``interval`` seconds, in an app context and the platform
        scope: ``[(interval, fn)]`` (the gateway owns the greenlets; hooks never spawn their own)."""
        return []

    def on_pile_start_request(self, msg) -> PileStartReply | ParallelPileStartReply:
        """0x31 / 0xA1: a card or VIN start at the pile; return the 0x32 / 0xA2 answer.

        Default: refuse (no account logic yet), with :attr:`default_refusal` as the reason.
        """
        return refusal(msg, self.default_refusal)


def refusal(msg: PileStartRequest | ParallelPileStartRequest, reason: int):
    """A 0x32 (or 0xA2 for a parallel start) that refuses ``msg`` with ``reason``."""
    fields = dict(transaction_serial="0" * 32, pile_code=msg.pile_code, gun=msg.gun, logical_card="0" * 16,
                  auth_result=0, failure_reason=int(reason))
    if isinstance(msg, ParallelPileStartRequest):
        return ParallelPileStartReply(parallel_serial=msg.parallel_serial, **fields)
    return PileStartReply(**fields)


def load_hooks(path: str | None) -> ChargingHooks:
    """Instantiate ``"package.module:Class"`` (the ``CHARGING_HOOKS`` setting)."""
    if not path:
        return ChargingHooks()
    module_name, _, attr = path.partition(":")
    cls = getattr(importlib.import_module(module_name), attr or "ChargingHooks")
    hooks = cls()
    if not isinstance(hooks, ChargingHooks):
        log.warning("%s does not subclass ChargingHooks; missing hooks will fail", path)
    return hooks


def overrides(hooks: ChargingHooks, name: str) -> bool:
    """True when ``hooks`` replaces the no-op ``name`` (lets the gateway skip no-op calls)."""
    return getattr(type(hooks), name, None) is not getattr(ChargingHooks, name)
