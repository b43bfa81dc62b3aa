"""组织机构 (fleets): the organization's account and its agreed discount.

Account: the ``OrganizationEntry`` ledger is the truth; ``Organization.balance`` is its cache,
updated in the same transaction under a row lock, exactly like the member wallet
(app/services/wallet.py; same locking and idempotency rules).

Who pays a card's order: ``Card.pay_mode`` (``member`` = the card's member's wallet,
``organization`` = the organization's account); a card without its own mode takes its
organization's ``pay_mode``; default member wallet.

Discount: ``Organization.electricity_rate`` / ``service_rate`` are multipliers (0.9000 = 9 折),
NULL = no agreed discount; entered as 折 like campaigns (campaigns.zhe_to_rate).
"""
from decimal import Decimal

from app.extensions import db
from app.models import Card, Member, Organization, OrganizationEntry
from app.services import wallet
from app.services.money import q_rate
from app.services.wallet import lock_row, to_amount

PAY_MEMBER = "member"
PAY_ORGANIZATION = "organization"
PAY_MODES = (PAY_MEMBER, PAY_ORGANIZATION)
ONE = Decimal("1")


class OrganizationError(ValueError):
    pass


# ---------------------------------------------------------------- write rules

def card_pay_mode_errors(card) -> dict:
    """{field: message} of a card's pay mode (empty = the organization's, normalised to NULL); a card
    paid by its organization needs one."""
    from flask_babel import lazy_gettext as _l

    card.pay_mode = card.pay_mode or None
    if card.pay_mode is not None and card.pay_mode not in PAY_MODES:
        return {"pay_mode": _l("Choose who pays for the card's charging.")}
    if card.pay_mode == PAY_ORGANIZATION and card.organization is None and card.organization_id is None:
        return {"pay_mode": _l("A card paid by its organization needs an organization.")}
    return {}


def organization_errors(organization) -> dict:
    """{field: message} of an organization's pay mode and agreed discount (rates 0 < r ≤ 1, 4 places)."""
    from flask_babel import lazy_gettext as _l

    errors = {}
    organization.pay_mode = organization.pay_mode or PAY_MEMBER
    if organization.pay_mode not in PAY_MODES:
        errors["pay_mode"] = _l("Choose who pays for the card's charging.")
    for name in ("electricity_rate", "service_rate"):
        rate = getattr(organization, name)
        if rate is None:
            continue
        rate = Decimal(str(rate))
        if not rate.is_finite() or rate <= 0 or rate > ONE:
            errors[name] = _l("The discount must be greater than 0 and at most 10 折 (9.5 = 95 percent, "
                              "10 = no discount).")
        else:
            setattr(organization, name, q_rate(rate))
    return errors


# ---------------------------------------------------------------- who is the order's organization

def order_organization(order, session=None):
    """The order's organization: the order's own ``organization_id``, else its card's, else its
    member's. None when there is none."""
    session = session or db.session
    org_id = getattr(order, "organization_id", None)
    if org_id is None and getattr(order, "card_id", None):
        card = session.get(Card, order.card_id)
        org_id = card.organization_id if card is not None else None
    if org_id is None and getattr(order, "member_id", None):
        member = session.get(Member, order.member_id)
        org_id = member.organization_id if member is not None else None
    if org_id is None:
        return None
    return session.get(Organization, org_id)


def discount_rates(order, session=None) -> tuple[Decimal, Decimal] | None:
    """(electricity multiplier, service multiplier) of the order's organization if it is enabled and
    has an agreed discount (at least one rate below 1); None otherwise. A rate not set counts as 1."""
    org = order_organization(order, session)
    if org is None or not org.enabled:
        return None
    if org.electricity_rate is None and org.service_rate is None:
        return None
    elec = q_rate(org.electricity_rate if org.electricity_rate is not None else ONE)
    serv = q_rate(org.service_rate if org.service_rate is not None else ONE)
    if elec >= ONE and serv >= ONE:
        return None
    return elec, serv


def card_pay_mode(card) -> str:
    """``member`` or ``organization`` for a card (its own mode, else its organization's, else member)."""
    if card is None:
        return PAY_MEMBER
    mode = card.pay_mode
    if not mode and card.organization_id is not None and card.organization is not None:
        mode = card.organization.pay_mode
    return mode if mode in PAY_MODES else PAY_MEMBER


def paying_organization_id(order, session=None):
    """The organization whose account pays the order (its card says so), or None (member wallet)."""
    session = session or db.session
    if not getattr(order, "card_id", None):
        return None
    card = session.get(Card, order.card_id)
    if card is None or card.organization_id is None or card_pay_mode(card) != PAY_ORGANIZATION:
        return None
    return card.organization_id


# ---------------------------------------------------------------- the account ledger

def lock_organization(session, organization_id):
    org = lock_row(session, Organization, organization_id)
    if org is None:
        raise OrganizationError(f"organization {organization_id} not found")
    return org


def post_entry(organization_id, amount, kind, idempotency_key=None, remark=None, allow_negative=False,
               session=None, **refs):
    """Book ``amount`` (signed Decimal) on the organization's account. Returns the entry; if the
    idempotency key was already booked, returns that entry and changes nothing. Does not commit.
    ``allow_negative``: a debit may take the balance below zero (arrears), as for wallets."""
    session = session or db.session
    org = lock_organization(session, organization_id)
    return wallet.book(session, org, OrganizationEntry, "organization_id", amount, kind, idempotency_key, remark,
                       allow_negative, OrganizationError, **refs)


def ledger_balance(organization_id, session=None):
    return wallet.ledger_sum(session or db.session, OrganizationEntry, OrganizationEntry.organization_id,
                             organization_id)


def _staff_entry(organization_id, amount, kind, reason, user_id, request_key, source=None, session=None,
                 positive_only=False):
    from flask_babel import gettext as _

    session = session or db.session
    amount = to_amount(amount)
    reason = (reason or "").strip()
    if not amount or (positive_only and amount < 0):
        raise OrganizationError(_("Enter an amount greater than zero.") if positive_only
                                else _("Enter an amount other than zero."))
    if not reason:
        raise OrganizationError(_("Say why the balance is adjusted."))
    try:
        entry = post_entry(organization_id, amount, kind, idempotency_key=f"org{kind}:{request_key}",
                           remark=reason[:255], source=(source or "").strip()[:64] or None,
                           created_by_id=user_id, session=session)
        session.commit()
    except OrganizationError:
        session.rollback()
        raise OrganizationError(_("The balance is not enough for this deduction.")) from None
    except Exception:
        session.rollback()
        raise
    return entry


def top_up(organization_id, amount, reason, user_id, request_key, source=None, session=None):
    """Staff records a bank transfer received for the organization (a positive ``topup`` entry with
    reason, source = the transfer's reference, who and when). ``request_key`` makes a resubmitted form
    book once. A unit of work of its own: commits, or rolls back and raises OrganizationError."""
    return _staff_entry(organization_id, amount, "topup", reason, user_id, request_key, source=source,
                        session=session, positive_only=True)


def adjust(organization_id, amount, reason, user_id, request_key, source=None, session=None):
    """Manual adjustment (signed) with its reason; a deduction never takes the balance below zero."""
    return _staff_entry(organization_id, amount, "adjust", reason, user_id, request_key, source=source,
                        session=session)


def debit_order(order, amount, session=None):
    """Settlement's one debit (app/services/settlement.py::_debit): ``amount`` (positive) taken from the
    account that pays the order — its card's organization account when the card says so (an
    OrganizationEntry ``consume``), else the member wallet (a WalletEntry ``consume``). Key
    ``settle:{order.id}`` in either ledger; arrears allowed (the energy was delivered), as for wallets.
    Returns the entry. Does not commit."""
    from app.services import wallet

    session = session or db.session
    org_id = paying_organization_id(order, session)
    if org_id is not None:
        return post_entry(org_id, -amount, "consume", idempotency_key=f"settle:{order.id}",
                          remark=f"order {order.order_no}", allow_negative=True, session=session,
                          source=order.order_no, order_id=order.id, card_id=order.card_id,
                          member_id=order.member_id)
    return wallet.post_entry(order.member_id, -amount, "consume", idempotency_key=f"settle:{order.id}",
                             remark=f"order {order.order_no}", allow_negative=True, session=session,
                             order_id=order.id)


def paying_organization(card):
    """The organization whose account a card charges (the card's pay mode says so), or None."""
    if card is not None and card.organization_id is not None and card_pay_mode(card) == PAY_ORGANIZATION:
        return card.organization
    return None


def available_balance(member, card):
    """The balance that limits a start: the organization's account when the card pays from it, else the
    member's wallet (None without either)."""
    org = paying_organization(card)
    if org is not None:
        return Decimal(org.balance or 0)
    if member is not None:
        return Decimal(member.balance or 0)
    return None


def balance_differences(session=None):
    """[(organization, ledger sum)] of every organization whose balance is not the sum of its ledger."""
    from app.services.wallet import ledger_differences

    return ledger_differences(Organization, OrganizationEntry.organization_id, OrganizationEntry.amount, session)
