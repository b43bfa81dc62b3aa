"""Wallet ledger (issue 11 §2): the balance changes only by ledger entries. 余额明细 lists them;
a manual adjustment is an entry with its reason, who and when (operator admins only, in their own
data scope, booked once however often the form is sent); ``flask wallet check`` finds any balance
that is not the sum of its ledger."""
import re
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from app.extensions import db
from app.models import Member, Operator, WalletEntry
from app.security.scope import platform_scope
from app.services import wallet
from tests.conftest import csrf_token

STAFF_PASSWORD = "staff-pass-1"


def member_of(operator_code):
    with platform_scope("test"):
        return db.session.scalar(select(Member).join(Operator, Operator.id == Member.operator_id)
                                 .where(Operator.code == operator_code).order_by(Member.id))


def adjust_form(client, member_id):
    rv = client.get(f"/memberview/adjust/{member_id}")
    assert rv.status_code == 200, rv.status_code
    html = rv.get_data(as_text=True)
    key = re.search(r'name="request_key"[^>]*value="([0-9a-f]+)"', html) or \
        re.search(r'value="([0-9a-f]{32})"[^>]*name="request_key"', html)
    return csrf_token(html), key.group(1)


@pytest.fixture
def member_a(app):
    with app.app_context():
        m = member_of("MA1NJ0001")
        return m.id, m.member_no


def balance(app, member_id):
    with app.app_context(), platform_scope("test"):
        db.session.expire_all()
        return db.session.get(Member, member_id).balance


def test_operator_admin_adjusts_once_with_reason_who_and_when(app, client, login, member_a):
    member_id, member_no = member_a
    before = balance(app, member_id)
    staff = login("staff_a", STAFF_PASSWORD, lang="zh")
    token, key = adjust_form(staff, member_id)
    form = {"csrf_token": token, "request_key": key, "amount": "12.50", "reason": "客服补偿：充电中断"}
    rv = staff.post(f"/memberview/adjust/{member_id}", data=form, follow_redirects=True)
    html = rv.get_data(as_text=True)
    assert f"会员 {member_no} 的余额已调整 +12.50 元" in html, html[:2000]
    staff.post(f"/memberview/adjust/{member_id}", data=form)       # the same form sent again
    assert balance(app, member_id) == before + Decimal("12.50")
    with app.app_context(), platform_scope("test"):
        entries = db.session.scalars(select(WalletEntry).where(WalletEntry.idempotency_key == f"adjust:{key}")).all()
        assert len(entries) == 1
        entry = entries[0]
        assert (entry.kind, entry.amount, entry.remark) == ("adjust", Decimal("12.50"), "客服补偿：充电中断")
        assert entry.created_by.username == "staff_a" and entry.created_at is not None
        assert entry.balance_after == before + Decimal("12.50")
    # 余额明细 of the member shows it, in Chinese, with who made it
    html = staff.get(f"/walletentryview/list/?_flt_0_member={member_id}").get_data(as_text=True)
    assert "客服补偿：充电中断" in html and "人工调整" in html and "staff_a" in html


def test_a_deduction_beyond_the_balance_is_refused_and_books_nothing(app, login, member_a):
    member_id, _ = member_a
    before = balance(app, member_id)
    staff = login("staff_a", STAFF_PASSWORD, lang="zh")
    token, key = adjust_form(staff, member_id)
    rv = staff.post(f"/memberview/adjust/{member_id}", data={
        "csrf_token": token, "request_key": key, "amount": str(-(before + 1)), "reason": "测试扣减"})
    assert "余额不足，无法扣减。" in rv.get_data(as_text=True)
    assert balance(app, member_id) == before
    with app.app_context(), platform_scope("test"):
        assert db.session.scalar(select(WalletEntry).where(WalletEntry.idempotency_key == f"adjust:{key}")) is None
    rv = staff.post(f"/memberview/adjust/{member_id}", data={
        "csrf_token": token, "request_key": key, "amount": "5", "reason": ""})
    assert balance(app, member_id) == before                         # a reason is required


def test_only_operator_admins_of_the_members_operator_adjust(app, login, member_a):
    member_id, _ = member_a
    viewer = login("viewer_a", STAFF_PASSWORD)
    assert viewer.get(f"/memberview/adjust/{member_id}").status_code in (302, 403)
    assert viewer.get(f"/walletentryview/list/?_flt_0_member={member_id}").status_code == 200
    other = login("staff_b", STAFF_PASSWORD)
    assert other.get(f"/memberview/adjust/{member_id}").status_code == 404
    html = other.get("/walletentryview/list/").get_data(as_text=True)
    with app.app_context(), platform_scope("test"):
        a_nos = db.session.scalars(select(Member.member_no).join(Operator, Operator.id == Member.operator_id)
                                   .where(Operator.code == "MA1NJ0001")).all()
    assert not any(f">{no}<" in html for no in a_nos)
    assert other.post(f"/walletentryview/delete/{member_id}").status_code in (404, 405)


def test_wallet_check_finds_a_balance_that_is_not_its_ledger(app, member_a):
    member_id, member_no = member_a
    runner = app.test_cli_runner()
    result = runner.invoke(args=["wallet", "check"])
    assert result.exit_code == 0, result.output
    assert "every balance equals the sum of its ledger" in result.output
    with app.app_context(), platform_scope("test"):
        db.session.execute(update(Member).where(Member.id == member_id).values(balance=Member.balance + 1))
        db.session.commit()
    try:
        result = runner.invoke(args=["wallet", "check"])
        assert result.exit_code == 1
        assert f"member {member_no}" in result.output and "difference 1.00" in result.output
    finally:
        with app.app_context(), platform_scope("test"):
            db.session.execute(update(Member).where(Member.id == member_id).values(balance=Member.balance - 1))
            db.session.commit()
    with app.app_context(), platform_scope("test"):
        assert wallet.balance_differences() == []
