"""Member wallet: the ledger (WalletEntry) is the truth; Member.balance is its cache, updated
in the same transaction under a row lock. The same money event (idempotency key) is booked
once only.

Locking (:func:`lock_row`): on PostgreSQL ``SELECT … FOR UPDATE``; on SQLite, which has no row
locks, a no-op ``UPDATE … SET id = id`` first, which takes SQLite's database write lock for the
rest of the transaction, so concurrent bookings serialise there too. Either way the row is
re-read after the lock (``populate_existing``): the balance used is the committed one.

Idempotency: the key is checked under the member lock (a concurrent run that booked it while we
waited has committed by then, and READ COMMITTED / SQLite's write lock show it); the unique
constraint on ``idempotency_key`` is the last guard (the loser gets an IntegrityError and must
roll back).
"""

from sqlalchemy import func, select, text
from sqlalchemy.orm import lazyload

from app.extensions import db
from app.models import Member, WalletEntry
from app.services.money import q_amount


class WalletError(ValueError):
    pass


def to_amount(value):
    return q_amount(value, "money")


def dialect_name(session):
    return session.get_bind().dialect.name


def lock_row(session, model, row_id):
    """``model`` row ``row_id`` locked for the rest of the transaction and freshly loaded (or None).
    Relationships are not eager-loaded with it (they load lazily if touched): a lock stays one row."""
    stmt = (select(model).where(model.id == row_id).options(lazyload("*"))
            .execution_options(populate_existing=True))
    if dialect_name(session) == "sqlite":
        session.execute(text(f"UPDATE {model.__table__.name} SET id = id WHERE id = :id"), {"id": row_id})
    else:
        stmt = stmt.with_for_update()
    return session.execute(stmt).scalar_one_or_none()


def lock_member(session, member_id):
    """The member row, locked for update (see :func:`lock_row`)."""
    member = lock_row(session, Member, member_id)
    if member is None:
        raise WalletError(f"member {member_id} not found")
    return member


def book(session, account, entry_cls, owner_field, amount, kind, idempotency_key=None, remark=None,
         allow_negative=False, error=None, **refs):
    """Book ``amount`` on an account row already locked by the caller (a member's wallet, an
    organization's account: any row with ``balance`` and ``operator_id`` whose ledger is ``entry_cls``
    keyed by ``owner_field``). Idempotent by ``idempotency_key``. Does not commit."""
    amount = to_amount(amount)
    if idempotency_key:
        existing = session.scalar(select(entry_cls).where(entry_cls.idempotency_key == idempotency_key))
        if existing is not None:
            return existing
    new_balance = to_amount(account.balance or 0) + amount
    if new_balance < 0 and amount < 0 and not allow_negative:
        raise (error or WalletError)("insufficient balance")
    entry = entry_cls(**{owner_field: account.id}, operator_id=account.operator_id, kind=kind, amount=amount,
                      balance_after=new_balance, idempotency_key=idempotency_key, remark=remark, **refs)
    account.balance = new_balance
    session.add(entry)
    session.flush()
    return entry


def ledger_sum(session, entry_cls, owner_column, owner_id):
    total = session.scalar(select(func.coalesce(func.sum(entry_cls.amount), 0)).where(owner_column == owner_id))
    return to_amount(total)


def post_entry(member_id, amount, kind, idempotency_key=None, remark=None, allow_negative=False,
               session=None, **refs):
    """Book ``amount`` (signed Decimal) on the member's wallet. Returns the entry; if the
    idempotency key was already booked, returns that entry and changes nothing. Does not commit.

    ``allow_negative``: a debit may take the balance below zero (arrears), e.g. paying for energy
    already delivered. Otherwise WalletError("insufficient balance") and nothing is booked."""
    session = session or db.session
    member = lock_member(session, member_id)
    return book(session, member, WalletEntry, "member_id", amount, kind, idempotency_key, remark,
                allow_negative, WalletError, **refs)


def ledger_balance(member_id, session=None):
    return ledger_sum(session or db.session, WalletEntry, WalletEntry.member_id, member_id)


def adjust(member_id, amount, reason, user_id, request_key, session=None):
    """Manual adjustment of a wallet (会员管理 → 调整余额): a signed amount with its reason, booked as an
    ``adjust`` ledger entry that records who made it (``created_by_id``) and when. ``request_key`` (one
    per opened form) makes a resubmitted form book once. A deduction never takes the balance below
    zero. A unit of work of its own: commits, or rolls back what it did and raises WalletError with
    the reason in the current language."""
    from flask_babel import gettext as _

    session = session or db.session
    amount = to_amount(amount)
    reason = (reason or "").strip()
    if not amount:
        raise WalletError(_("Enter an amount other than zero."))
    if not reason:
        raise WalletError(_("Say why the balance is adjusted."))
    try:
        entry = post_entry(member_id, amount, "adjust", idempotency_key=f"adjust:{request_key}",
                           remark=reason[:255], created_by_id=user_id, session=session)
        session.commit()
    except WalletError:
        session.rollback()
        raise WalletError(_("The balance is not enough for this deduction.")) from None
    except Exception:
        session.rollback()
        raise
    return entry


def ledger_differences(account_model, entry_account_column, entry_amount_column, session=None):
    """[(account, ledger sum)] of every account (a member's wallet, an organization's account) whose cached
    balance is not the sum of its ledger entries. Compared as Decimals here, not in SQL: SQLite sums
    NUMERIC columns as floating point."""
    session = session or db.session
    sums = (select(entry_account_column.label("account_id"), func.sum(entry_amount_column).label("total"))
            .group_by(entry_account_column).subquery())
    rows = session.execute(select(account_model.id, account_model.balance, sums.c.total)
                           .outerjoin(sums, sums.c.account_id == account_model.id).order_by(account_model.id))
    wrong = {account_id: to_amount(total or 0) for account_id, balance, total in rows
             if to_amount(balance or 0) != to_amount(total or 0)}
    if not wrong:
        return []
    accounts = session.scalars(select(account_model).where(account_model.id.in_(wrong)).order_by(account_model.id))
    return [(account, wrong[account.id]) for account in accounts]


def balance_differences(session=None):
    """[(member, ledger sum)] of every member whose balance is not the sum of its ledger (should be
    none: the balance changes only with a ledger entry, in the same transaction)."""
    return ledger_differences(Member, WalletEntry.member_id, WalletEntry.amount, session)
