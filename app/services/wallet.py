"""Member wallet: the ledger (WalletEntry) is the truth; Member.balance is its cache, updated
in the same transaction under a row lock. The same money event (idempotency key) is booked
once only."""
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import select

from app.extensions import db
from app.models import Member, WalletEntry

AMOUNT_Q = Decimal("0.0001")


class WalletError(ValueError):
    pass


def to_amount(value):
    if isinstance(value, float):
        raise TypeError("money must not be a float")
    return Decimal(value).quantize(AMOUNT_Q, rounding=ROUND_HALF_UP)


def lock_member(session, member_id):
    """The member row, locked for update on databases that support it (PostgreSQL)."""
    stmt = select(Member).where(Member.id == member_id).with_for_update()
    member = session.execute(stmt).scalar_one_or_none()
    if member is None:
        raise WalletError(f"member {member_id} not found")
    return member


def post_entry(member_id, amount, kind, idempotency_key=None, remark=None, allow_negative=False,
               session=None, **refs):
    """Book ``amount`` (signed Decimal) on the member's wallet. Returns the entry; if the
    idempotency key was already booked, returns that entry and changes nothing. Does not commit."""
    session = session or db.session
    amount = to_amount(amount)
    if idempotency_key:
        existing = session.scalar(select(WalletEntry).where(WalletEntry.idempotency_key == idempotency_key))
        if existing is not None:
            return existing
    member = lock_member(session, member_id)
    new_balance = to_amount(member.balance or 0) + amount
    if new_balance < 0 and not allow_negative:
        raise WalletError("insufficient balance")
    entry = WalletEntry(member_id=member.id, operator_id=member.operator_id, kind=kind, amount=amount,
                        balance_after=new_balance, idempotency_key=idempotency_key, remark=remark, **refs)
    member.balance = new_balance
    session.add(entry)
    session.flush()
    return entry


def ledger_balance(member_id, session=None):
    from sqlalchemy import func

    session = session or db.session
    total = session.scalar(select(func.coalesce(func.sum(WalletEntry.amount), 0))
                           .where(WalletEntry.member_id == member_id))
    return to_amount(total)
