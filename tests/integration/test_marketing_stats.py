"""营销统计 (issue 13 §8): per campaign (orders, amount, campaign discount, total discount), per coupon campaign
and per coupon (issued, used, discount), on the screen and in the Excel export, within the data scope.

Worked example (tests/integration/coupon_support.py): two 20 kWh orders of 29.7000 yuan (electricity 6.2000 flat
+ 10.5000 peak, service 6.0000 flat + 7.0000 peak) under an operation campaign of 9 折 on electricity and
8 折 on service: per order 0.6200 + 1.0500 (electricity) + 1.2000 + 1.4000 (service) = 4.2700 off, leaving
15.0300 + 10.4000 = 25.4300. The second order also uses a 5-yuan deduction coupon on the total: 5.0000 off,
discount 9.2700, payable 20.4300. So the campaign: 2 orders, 59.4000 yuan, campaign discount 8.5400, total
discount 13.5400; the coupon: 3 issued (campaign gives 3), 1 used, 5.0000.
"""
import io
from datetime import datetime
from decimal import Decimal as D

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from app.extensions import db
from app.models import Campaign, ChargeOrder, Coupon
from app.security.scope import acting_as, platform_scope, scope_for_operator
from app.services import coupons, marketing_stats
from app.services.clock import local_today
from tests.integration.coupon_support import (
    new_campaign,
    new_channel,
    new_member,
    new_operation_campaign,
    new_template,
    no_lasting_marketing,
    op_id,
    other_op_id,
    settled_order,
)


@pytest.fixture(autouse=True)
def _marketing_ends_with_the_test(app):
    with no_lasting_marketing(app):
        yield


def _row(rows, row_id):
    [r] = [r for r in rows if r["id"] == row_id]
    return r


def test_marketing_figures_per_campaign_coupon_campaign_and_coupon(app, admin_client):
    with app.app_context():
        channel = new_channel()
        camp = new_operation_campaign(channel, name="Stats campaign 9/8")
        mid = new_member(channel_id=channel)
        tpl = new_template(name="Stats coupon", face_value=D("5.0000"), validity_mode="fixed", valid_days=None,
                           valid_from=datetime(2024, 1, 1), valid_to=datetime(2099, 1, 1))
        cc = new_campaign("manual", [(tpl, 3)], name="Stats coupon campaign", scope="selected")
        from app.models import CouponCampaign, Member

        c = db.session.get(CouponCampaign, cc)
        c.members = [db.session.get(Member, mid)]
        db.session.commit()
        try:
            o1 = settled_order(mid, "2024-03-11", channel_id=channel)      # no coupon held yet
            with platform_scope("test-stats"):
                assert coupons.run_campaign(cc).coupons == 3
            coupon_id = db.session.scalars(select(Coupon.id).where(Coupon.campaign_id == cc)
                                           .order_by(Coupon.id)).first()
            o2 = settled_order(mid, "2024-03-12", channel_id=channel, coupon_id=coupon_id)
            db.session.expire_all()
            first, second = db.session.get(ChargeOrder, o1), db.session.get(ChargeOrder, o2)
            assert (first.campaign_id, first.discount_electricity, first.discount_service, first.discount_total,
                    first.payable_amount) == (camp, D("1.6700"), D("2.6000"), D("4.2700"), D("25.4300"))
            assert (second.campaign_id, second.coupon_id, second.discount_total, second.payable_amount) == (
                camp, coupon_id, D("9.2700"), D("20.4300"))
            used = db.session.get(Coupon, coupon_id)
            assert (used.status, used.order_id, used.discount_amount) == ("used", o2, D("5.0000"))

            today = local_today()
            f = marketing_stats.StatsFilters(today, today)
            with platform_scope("test-stats"):
                data = marketing_stats.stats(f)
            assert _row(data["campaigns"], camp) == {
                "id": camp, "name": "Stats campaign 9/8", "kind": "operation", "order_count": 2,
                "order_amount": D("59.4000"), "campaign_discount": D("8.5400"), "discount_total": D("13.5400")}
            assert _row(data["coupon_campaigns"], cc) == {"id": cc, "name": "Stats coupon campaign", "issued": 3,
                                                          "used": 1, "discount_amount": D("5.0000")}
            assert _row(data["templates"], tpl) == {"id": tpl, "name": "Stats coupon", "issued": 3, "used": 1,
                                                    "discount_amount": D("5.0000")}
            # another operator's scope sees none of it; a range before today sees nothing of it either
            with acting_as(scope_for_operator(other_op_id())):
                other = marketing_stats.stats(f)
            assert camp not in {r["id"] for r in other["campaigns"]}
            assert tpl not in {r["id"] for r in other["templates"]}
            with platform_scope("test-stats"):
                old_day = today.replace(year=2023)
                before = marketing_stats.stats(marketing_stats.StatsFilters(old_day, old_day))
            assert all(r["id"] != camp for r in before["campaigns"])
            assert all(r["id"] != tpl for r in before["templates"])
            op = op_id()
        finally:
            row = db.session.get(Campaign, camp)
            row.enabled = False
            db.session.commit()

    html = admin_client.get(f"/marketingreport/?start={today}&end={today}&operator={op}").get_data(as_text=True)
    for text in ("Stats campaign 9/8", "59.4000", "8.5400", "13.5400", "Stats coupon campaign", "Stats coupon"):
        assert text in html, text
    rv = admin_client.get(f"/marketingreport/export/?start={today}&end={today}&operator={op}")
    assert rv.status_code == 200 and rv.mimetype.endswith("spreadsheetml.sheet")
    wb = load_workbook(io.BytesIO(rv.data))
    assert wb.sheetnames == ["Campaigns", "Coupon campaigns", "Coupons"]
    camp_rows = {r[0]: r for r in wb["Campaigns"].iter_rows(min_row=2, values_only=True)}
    assert camp_rows[camp][3:] == (2, 59.4, 8.54, 13.54)
    tpl_rows = {r[0]: r for r in wb["Coupons"].iter_rows(min_row=2, values_only=True)}
    assert tpl_rows[tpl][1:] == ("Stats coupon", 3, 1, 5)


def test_marketing_report_renders_in_chinese_and_refuses_bad_dates_gracefully(admin_client, login):
    from tests.conftest import ADMIN_PASSWORD

    c = login("admin", ADMIN_PASSWORD, lang="zh")
    html = c.get("/marketingreport/").get_data(as_text=True)
    assert "营销统计" in html and "运营活动" in html and "卡券活动" in html
    html = c.get("/marketingreport/?start=not-a-date").get_data(as_text=True)
    assert "营销统计" in html


def test_staff_reads_the_report_of_their_own_operator_only(app, client, login):
    from app.services.demo import STAFF_PASSWORD

    with app.app_context():
        with platform_scope("test"):
            op_b = other_op_id()
        tpl = new_template(operator_id=op_b, name="B only coupon")
        mid = new_member(operator_id=op_b)
        with platform_scope("test"):
            from app.models import CouponTemplate, Member

            coupons.issue(db.session.get(CouponTemplate, tpl), db.session.get(Member, mid), source="manual")
            db.session.commit()
    staff_a = login("viewer_a", STAFF_PASSWORD)
    html = staff_a.get("/marketingreport/").get_data(as_text=True)
    assert "B only coupon" not in html
    staff_b = login("staff_b", STAFF_PASSWORD)
    assert "B only coupon" in staff_b.get("/marketingreport/").get_data(as_text=True)
