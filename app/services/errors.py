"""Typed refusals of the charging services.

A start that the checks refuse raises a :class:`StartRefused` subclass; callers that only show
the reason catch :class:`ChargingError` (the message says why, as before). The YKC failure
reason a pile is told in 0x32 / 0xA2 comes from the error's type, in one place:
:func:`ykc_auth_failure` (no matching on message text).
"""

from __future__ import annotations

from app.gateway.ykc.codes import AuthFailure


class ChargingError(ValueError):
    """A start or stop that cannot be done; the message says why."""


class StartRefused(ChargingError):
    """A start the checks refuse (the gun, the pile or the account is not fit to start)."""


class GunDisabled(StartRefused):
    """The gun or its pile is switched off in the platform."""


class PileNotOnline(StartRefused):
    """No gateway holds the pile (or the gun itself reports offline)."""


class GunNotFree(StartRefused):
    """The gun is charging, reserved or faulty, or already has a session in progress."""


class GunFault(GunNotFree):
    """The gun reports a fault."""


class AccountNotActive(StartRefused):
    """The member account (or card) is frozen or closed."""


class BalanceTooLow(StartRefused):
    """The balance (or the prepaid amount) is below what a start needs."""


class AccountNotAllowed(StartRefused):
    """The account may not charge on this pile (another operator, say)."""


class AccountNotFound(StartRefused):
    """No account for the card (or the account is gone)."""


class VinNotRegistered(StartRefused):
    """No member has the VIN the pile recognised."""


class CouponNotUsable(ChargingError):
    """The coupon chosen for a start is not the member's, used, locked, expired or not for this station."""


#: start refusal -> 0x32 / 0xA2 failure reason (the most specific type wins)
YKC_AUTH_FAILURE: dict[type[StartRefused], AuthFailure] = {
    GunDisabled: AuthFailure.PILE_DISABLED,
    PileNotOnline: AuthFailure.PILE_DISABLED,
    GunFault: AuthFailure.PILE_DISABLED,
    GunNotFree: AuthFailure.PILE_UNSETTLED_RECORD,
    AccountNotActive: AuthFailure.ACCOUNT_FROZEN,
    BalanceTooLow: AuthFailure.INSUFFICIENT_BALANCE,
    AccountNotAllowed: AuthFailure.ACCOUNT_NOT_ALLOWED,
    AccountNotFound: AuthFailure.ACCOUNT_NOT_FOUND,
    VinNotRegistered: AuthFailure.VIN_NOT_REGISTERED,
}


def ykc_auth_failure(exc: StartRefused) -> AuthFailure:
    """The 0x32 / 0xA2 failure reason for a refusal (0x06 "not allowed" for a bare StartRefused)."""
    for cls in type(exc).__mro__:
        if cls in YKC_AUTH_FAILURE:
            return YKC_AUTH_FAILURE[cls]
    return AuthFailure.ACCOUNT_NOT_ALLOWED
