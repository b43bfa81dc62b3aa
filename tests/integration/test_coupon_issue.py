"""Coupons issued to members (issue 13 §3-4): validity, codes, stock and per-member limits (also under 50
concurrent claims in separate sessions: never over-issued), coupon campaign runs (manual with filters,
registration gift, order reward after a real settlement), expiry job, voiding, and the admin screens."""
import threading
from datetime import datetime
from decimal import Decimal as D

import pytest
from rq.job import Job
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from app.extensions import db, get_redis
from app.models import (
    ChargeOrder,
    Coupon,
    CouponCampaign,
    CouponTemplate,
    Member,
)
from app.security.scope import platform_scope
from app.services import coupons
from tests.integration.coupon_support import (
    bj,
    new_campaign,
    new_member,
    new_template,
    no_lasting_marketing,
    op_id,
    other_op_id,
    settled_order,
    tou_connector,
)


@pytest.fixture(autouse=True)
def _marketing_ends_with_the_test(app):
    with no_lasting_marketing(app):
        yield


def get(model, row_id):
    db.session.expire_all()
    return db.session.get(model, row_id)


def held(template_id, member_id=None):
    db.session.expire_all()
    q = select(func.count(Coupon.id)).where(Coupon.template_id == template_id)
    if member_id is not None:
        q = q.where(Coupon.member_id == member_id)
    return db.session.scalar(q)


def give(template_id, member_id, quantity=1, source="manual", now=None):
    with platform_scope("test-coupons"):
        out = coupons.issue(db.session.get(CouponTemplate, template_id), db.session.get(Member, member_id),
                            source=source, quantity=quantity, now=now)
        db.session.commit()
    return [c.id for c in out]


# --- issuing ---------------------------------------------------------------------------------------------------


def test_relative_validity_ends_at_the_local_midnight_after_n_days_and_codes_are_unique(app):
    with app.app_context():
        mid = new_member()
        tid = new_template(valid_days=7, face_value=D("5.0000"), max_discount=None)
        now = bj("2026-03-10 23:30")                     # local 2026-03-10 23:30 = UTC 15:30
        ids = give(tid, mid, quantity=3, now=now)
        rows = [get(Coupon, i) for i in ids]
        assert len({c.code for c in rows}) == 3 and all(c.code.startswith("CP") and len(c.code) == 16 for c in rows)
        for c in rows:
            assert (c.status, c.source, c.member_id, c.operator_id) == ("unused", "manual", mid, op_id())
            assert (c.coupon_type, c.target, c.face_value, c.threshold) == ("deduction", "total", D("5.0000"), D("0"))
            assert c.valid_from == now
            # day 1 = 2026-03-10 (local), day 7 = 2026-03-16: valid until local 2026-03-17 00:00 = UTC 03-16 16:00
            assert c.valid_to == datetime(2026, 3, 16, 16, 0)
        assert get(CouponTemplate, tid).issued_quantity == 3


def test_fixed_validity_copies_the_dates_and_an_ended_template_issues_nothing(app):
    with app.app_context():
        mid = new_member()
        start, end = bj("2026-01-01 00:00"), bj("2026-06-30 23:59")
        tid = new_template(validity_mode="fixed", valid_from=start, valid_to=end, valid_days=None)
        [cid] = give(tid, mid, now=bj("2026-02-01 12:00"))
        c = get(Coupon, cid)
        assert (c.valid_from, c.valid_to) == (start, end)
        with pytest.raises(coupons.CouponIssueError) as exc:
            give(tid, mid, now=bj("2026-07-01 00:00"))
        assert exc.value.code == "expired"
        assert held(tid) == 1 and get(CouponTemplate, tid).issued_quantity == 1


def test_stock_is_never_exceeded_and_a_refusal_writes_nothing(app):
    with app.app_context():
        mid = new_member()
        tid = new_template(total_quantity=2)
        with pytest.raises(coupons.CouponIssueError) as exc:
            give(tid, mid, quantity=3)
        assert exc.value.code == "out_of_stock"
        assert held(tid) == 0 and get(CouponTemplate, tid).issued_quantity == 0
        give(tid, mid, quantity=2)
        with pytest.raises(coupons.CouponIssueError):
            give(tid, new_member())
        assert held(tid) == 2 and get(CouponTemplate, tid).issued_quantity == 2


def test_per_member_limit_counts_held_coupons_and_gives_the_stock_back(app):
    with app.app_context():
        a, b = new_member(), new_member()
        tid = new_template(total_quantity=10, per_member_limit=2)
        give(tid, a)
        give(tid, a)
        with pytest.raises(coupons.CouponIssueError) as exc:
            give(tid, a)
        assert exc.value.code == "limit_reached"
        assert held(tid, a) == 2 and get(CouponTemplate, tid).issued_quantity == 2   # the refused one gave it back
        give(tid, b, quantity=2)
        # a voided coupon no longer counts: the member may receive one again
        first = db.session.scalar(select(Coupon).where(Coupon.template_id == tid, Coupon.member_id == a))
        with platform_scope("test-coupons"):
            coupons.void(first)
            db.session.commit()
            with pytest.raises(coupons.CouponVoidError):
                coupons.void(get(Coupon, first.id))
        give(tid, a)
        assert held(tid, a) == 3 and get(CouponTemplate, tid).issued_quantity == 5


def test_disabled_template_inactive_member_and_other_operator_are_refused(app):
    with app.app_context():
        mid = new_member()
        tid = new_template(enabled=False)
        with pytest.raises(coupons.CouponIssueError) as exc:
            give(tid, mid)
        assert exc.value.code == "disabled"
        other = new_template(operator_id=other_op_id())
        with pytest.raises(coupons.CouponIssueError) as exc:
            give(other, mid)
        assert exc.value.code == "other_operator"
        m = db.session.get(Member, mid)
        m.status = "disabled"
        db.session.commit()
        with pytest.raises(coupons.CouponIssueError) as exc:
            give(new_template(), mid)
        assert exc.value.code == "member_inactive"
        assert held(tid) == held(other) == 0


# --- 50 concurrent claims ------------------------------------------------------------------------------------


def _claim_concurrently(app, template_id, member_ids):
    """One thread per claim, each in its own app context (own session and connection), started together."""
    outcome = {"ok": 0, "out_of_stock": 0, "limit_reached": 0}
    lock = threading.Lock()
    errors = []
    barrier = threading.Barrier(len(member_ids))

    def claim(member_id):
        with app.app_context():
            try:
                barrier.wait(timeout=60)
                for attempt in range(50):
                    try:
                        with platform_scope("test-claims"):
                            coupons.issue(db.session.get(CouponTemplate, template_id),
                                          db.session.get(Member, member_id), source="claim")
                            db.session.commit()
                        code = "ok"
                        break
                    except coupons.CouponIssueError as exc:
                        db.session.rollback()
                        code = exc.code
                        break
                    except OperationalError:            # SQLite: database locked past the busy timeout
                        db.session.rollback()
                        if attempt == 49:
                            raise
                with lock:
                    outcome[code] += 1
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=claim, args=(m,)) for m in member_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return outcome


def test_fifty_concurrent_claims_never_over_issue_stock_or_per_member_limits(app):
    with app.app_context():
        members = [new_member() for _ in range(10)]
        tid = new_template(total_quantity=20, per_member_limit=3)
    # 10 members x 5 claims: at most 3 each (30) but only 20 in stock
    outcome = _claim_concurrently(app, tid, [m for m in members for _ in range(5)])
    with app.app_context():
        assert outcome["ok"] == 20 and outcome["ok"] + outcome["out_of_stock"] + outcome["limit_reached"] == 50
        assert held(tid) == 20 and get(CouponTemplate, tid).issued_quantity == 20
        per_member = dict(db.session.execute(select(Coupon.member_id, func.count(Coupon.id))
                                             .where(Coupon.template_id == tid).group_by(Coupon.member_id)).all())
        assert max(per_member.values()) <= 3 and sum(per_member.values()) == 20
        codes = db.session.scalars(select(Coupon.code).where(Coupon.template_id == tid)).all()
        assert len(set(codes)) == 20


def test_fifty_concurrent_claims_of_one_member_stop_at_the_limit(app):
    with app.app_context():
        mid = new_member()
        tid = new_template(per_member_limit=4)        # unlimited stock: only the member limit binds
    outcome = _claim_concurrently(app, tid, [mid] * 50)
    with app.app_context():
        assert outcome == {"ok": 4, "out_of_stock": 0, "limit_reached": 46}
        assert held(tid, mid) == 4 and get(CouponTemplate, tid).issued_quantity == 4


# --- campaigns -------------------------------------------------------------------------------------------------


def campaign_coupons(campaign_id):
    db.session.expire_all()
    return db.session.scalars(select(Coupon).where(Coupon.campaign_id == campaign_id).order_by(Coupon.id)).all()


def test_manual_run_filters_members_by_registration_and_selection_and_runs_once_per_member(app):
    with app.app_context():
        early = new_member(created_at=datetime(2021, 5, 1))
        late = new_member(created_at=datetime(2025, 5, 1))
        selected_other = new_member(created_at=datetime(2025, 6, 1))
        t1, t2 = new_template(), new_template(coupon_type="discount", discount_rate=D("0.8800"), face_value=None)
        cid = new_campaign("manual", [(t1, 2), (t2, 1)], scope="selected",
                           registered_from=datetime(2025, 1, 1), registered_to=datetime(2025, 12, 31))
        c = db.session.get(CouponCampaign, cid)
        c.members = [db.session.get(Member, m) for m in (early, late)]   # early: selected but registered too soon
        db.session.commit()
        with platform_scope("test-campaign"):
            r = coupons.run_campaign(cid)
        assert (r.members, r.coupons, r.skipped, r.refused) == (1, 3, 0, {})
        rows = campaign_coupons(cid)
        assert {c.member_id for c in rows} == {late} and sorted(c.template_id for c in rows) == sorted([t1, t1, t2])
        assert all(c.source == "manual" for c in rows)
        assert selected_other not in {c.member_id for c in rows}
        with platform_scope("test-campaign"):
            again = coupons.run_campaign(cid)
        assert (again.coupons, again.skipped) == (0, 1) and len(campaign_coupons(cid)) == 3
        assert get(CouponCampaign, cid).last_issued_at is not None


def test_manual_run_by_order_count_and_refusals_are_counted(app):
    with app.app_context():
        t = new_template(total_quantity=1)
        a, b = new_member(), new_member()
        cid = new_campaign("manual", [(t, 1)], scope="selected")
        c = db.session.get(CouponCampaign, cid)
        c.members = [db.session.get(Member, a), db.session.get(Member, b)]
        db.session.commit()
        with platform_scope("test-campaign"):
            r = coupons.run_campaign(cid)
        assert (r.members, r.coupons, r.refused) == (1, 1, {"out_of_stock": 1})
        c = get(CouponCampaign, cid)
        c.min_orders = 1                           # nobody of these two has a settled order
        db.session.commit()
        with platform_scope("test-campaign"):
            r = coupons.run_campaign(cid)
        assert (r.members, r.coupons, r.skipped) == (0, 0, 0)


def test_only_running_manual_campaigns_with_coupons_are_issued_by_hand(app):
    with app.app_context():
        t = new_template()
        for kw, items in (({"trigger": "register"}, [(t, 1)]), ({"trigger": "manual", "end_at": datetime(2021, 1, 1)},
                                                                 [(t, 1)]), ({"trigger": "manual"}, [])):
            cid = new_campaign(kw.pop("trigger"), items, **kw)
            with platform_scope("test-campaign"), pytest.raises(coupons.CampaignRunError):
                coupons.run_campaign(cid)


def _perform(job_id):
    job = Job.fetch(job_id, connection=get_redis())
    return job.perform()


def test_registration_signal_queues_the_gift_job_which_gives_once(app):
    from app.services import events

    with app.app_context():
        t = new_template(per_member_limit=1)
        cid = new_campaign("register", [(t, 1)])
        mid = new_member()
        get_redis().delete(f"rq:job:coupon-register-{mid}")
        events.member_registered.send(None, member_id=mid)
        result = _perform(f"coupon-register-{mid}")
        assert result["coupons"] >= 1              # (other register campaigns of the operator may give too)
        [c] = [c for c in campaign_coupons(cid) if c.member_id == mid]
        assert (c.source, c.template_id, c.status) == ("register", t, "unused")
        with platform_scope("test"):
            assert coupons.on_member_registered(mid).coupons == 0      # once per campaign


# --- order reward after a real settlement --------------------------------------------------------------------


def test_settlement_sends_order_finished_and_the_nth_order_earns_the_reward(app):
    with app.app_context():
        t_first = new_template(name="First order", face_value=D("3.0000"))
        t_big = new_template(name="Big order", face_value=D("8.0000"))
        mid = new_member()
        first = new_campaign("order_finished", [(t_first, 1)], order_count=2)        # on the 2nd order
        big = new_campaign("order_finished", [(t_big, 2)], order_min_amount=D("30.0000"))
        o1 = settled_order(mid, "2024-03-11")
        assert get(ChargeOrder, o1).status == "settled"
        _perform(f"coupon-order-{o1}")                   # (other campaigns of the operator may reward it)
        assert campaign_coupons(first) == [] and campaign_coupons(big) == []   # 1st order; 29.70 < 30.00
        o2 = settled_order(mid, "2024-03-12")
        _perform(f"coupon-order-{o2}")
        [c] = campaign_coupons(first)                     # 2nd order: the reward, once
        assert (c.member_id, c.source, c.source_order_id, c.template_id) == (mid, "order_finished", o2, t_first)
        with platform_scope("test"):
            coupons.on_order_finished(o2)                 # the same order never pays twice
        assert len(campaign_coupons(first)) == 1 and campaign_coupons(big) == []
        c = get(CouponCampaign, big)
        c.order_min_amount = D("29.7000")                             # "at least": 29.70 qualifies
        db.session.commit()
        with platform_scope("test"):
            coupons.on_order_finished(o2)
        assert [x.source_order_id for x in campaign_coupons(big)] == [o2, o2]


def test_a_rolled_back_settlement_sends_nothing(app):
    from app.models import OrderEvent
    from app.services import events

    got = []

    def receiver(sender, order_id=None, **kw):
        got.append(order_id)

    events.order_finished.connect(receiver)
    try:
        with app.app_context():
            mid = new_member()
            order = ChargeOrder(order_no="2403119999999", operator_id=op_id(), station_id=tou_connector().station_id,
                                pile_id=tou_connector().pile_id, connector_id=tou_connector().id, member_id=mid,
                                status="finished")
            db.session.add(order)
            db.session.flush()
            db.session.add(OrderEvent(order_id=order.id, operator_id=order.operator_id, event="settled",
                                      to_status="settled"))
            db.session.flush()
            db.session.rollback()
            assert got == []
    finally:
        events.order_finished.disconnect(receiver)


# --- expiry ----------------------------------------------------------------------------------------------------


def test_expiry_job_marks_unused_coupons_past_their_end_only(app):
    from app.tasks.marketing import expire_coupons

    with app.app_context():
        mid = new_member()
        tid = new_template(valid_days=1)
        old, locked = give(tid, mid, quantity=2, now=datetime(2020, 1, 1, 12))
        [current] = give(tid, mid)
        c = db.session.get(Coupon, locked)
        c.status = "locked"
        db.session.commit()
        assert coupons.effective_status(get(Coupon, old)) == "expired"       # shown expired before the job
        assert expire_coupons() >= 1
        assert [get(Coupon, i).status for i in (old, locked, current)] == ["expired", "locked", "unused"]


# --- screens ---------------------------------------------------------------------------------------------------


def test_campaign_form_chooses_coupons_and_quantities_and_issue_now_gives_them(app, admin_client):
    with app.app_context():
        op = op_id()
        t1, t2 = new_template(name="Form A"), new_template(name="Form B")
        foreign = new_template(operator_id=other_op_id(), name="Foreign")
        mid = new_member()
    base = {"name": "Screen gift", "start_at": "2024-03-01 00:00:00", "end_at": "2099-01-01 00:00:00",
            "trigger": "manual", "scope": "selected", "members": [str(mid)], "enabled": "y", "operator": str(op)}
    html = admin_client.post("/couponcampaignview/add", data=dict(
        base, **{"items-template": [str(t1), str(t1)], "items-quantity": ["1", "2"]})).get_data(as_text=True)
    assert "A coupon can be chosen only once." in html
    html = admin_client.post("/couponcampaignview/add", data=dict(
        base, **{"items-template": [str(t1)], "items-quantity": ["0"]})).get_data(as_text=True)
    assert "Each coupon needs a quantity between 1 and 100." in html
    html = admin_client.post("/couponcampaignview/add", data=dict(
        base, **{"items-template": [str(foreign)], "items-quantity": ["1"]}), follow_redirects=True).get_data(
        as_text=True)
    assert "The coupons given must be coupons of the campaign&#39;s operator." in html
    rv = admin_client.post("/couponcampaignview/add", data=dict(
        base, **{"items-template": [str(t1), str(t2), ""], "items-quantity": ["2", "1", ""]}))
    assert rv.status_code == 302
    with app.app_context():
        c = db.session.scalar(select(CouponCampaign).where(CouponCampaign.name == "Screen gift"))
        cid = c.id
        assert sorted((i.template_id, i.quantity) for i in c.items) == [(t1, 2), (t2, 1)]
    html = admin_client.get(f"/couponcampaignview/edit/{cid}").get_data(as_text=True)
    assert f'<option value="{t1}" selected>' in html
    rv = admin_client.post(f"/couponcampaignview/edit/{cid}", data=dict(
        base, **{"items-template": [str(t2)], "items-quantity": ["3"]}))
    assert rv.status_code == 302
    with app.app_context():
        assert [(i.template_id, i.quantity) for i in get(CouponCampaign, cid).items] == [(t2, 3)]
    html = admin_client.post("/couponcampaignview/action_post", data={"action": "issue", "rowid": [str(cid)]},
                             follow_redirects=True).get_data(as_text=True)
    assert "3 coupon(s) issued to 1 member(s)" in html
    with app.app_context():
        assert [c.member_id for c in campaign_coupons(cid)] == [mid] * 3
    # the member page lists them; the issued-coupons screen voids one
    html = admin_client.get(f"/memberview/show/{mid}").get_data(as_text=True)
    assert "cpms-member-coupons" in html and html.count("Form B") >= 3
    with app.app_context():
        first = campaign_coupons(cid)[0].id
    rv = admin_client.post("/couponview/action_post", data={"action": "void", "rowid": [str(first)]},
                           follow_redirects=True)
    assert "1 coupon(s) voided." in rv.get_data(as_text=True)
    with app.app_context():
        assert get(Coupon, first).status == "void"
    assert admin_client.get(f"/couponview/list/?_flt_0_member={mid}").status_code == 200


def test_coupon_screens_and_the_member_panel_are_chinese(app, client, login):
    from app.models import Member as M
    from tests.conftest import ADMIN_PASSWORD
    from tests.integration.test_chinese_everywhere import problems

    with app.app_context():
        mid = new_member()
        m = db.session.get(M, mid)
        m.nickname, m.member_no = "张三", f"Z{mid}"
        db.session.commit()
        tid = new_template(name="新人满减券", coupon_type="full_reduction", target="service", threshold=D("10"),
                           face_value=D("3.0000"), description="服务费满10减3", per_member_limit=2, total_quantity=100)
        cid = new_campaign("manual", [(tid, 2)], name="会员回馈活动", scope="selected", description="回馈",
                           tag="回馈", position="home", remark="无")
        c = db.session.get(CouponCampaign, cid)
        c.members = [m]
        db.session.commit()
        with platform_scope("test"):
            coupons.run_campaign(cid)
        coupon_id = campaign_coupons(cid)[0].id
    zh = login("admin", ADMIN_PASSWORD, lang="zh")
    pages = {
        f"/couponview/show/{coupon_id}": "后台发放",
        f"/couponcampaignview/show/{cid}": "新人满减券 x2",
        f"/coupontemplateview/show/{tid}": "每人限领",
        "/marketingreport/?start=2099-01-01&end=2099-01-02": "营销统计",
    }
    for url, expected in pages.items():
        html = zh.get(url).get_data(as_text=True)
        assert expected in html, url
        assert not problems(html), (url, problems(html))
    html = zh.get(f"/memberview/show/{mid}").get_data(as_text=True)
    panel = html[html.index("cpms-member-coupons"):]
    panel = panel[:panel.index("</table>")]
    assert "新人满减券" in panel and "未使用" in panel and "后台发放" in panel and "会员回馈活动" in panel
    assert not problems("<div " + panel + "</table></div>")


def test_a_coupon_campaign_keeps_its_gift_tip_image_served_only_within_the_scope(app, admin_client, client, login):
    import io
    import re

    from PIL import Image

    from app.services.demo import STAFF_PASSWORD
    from tests.conftest import ADMIN_PASSWORD

    with app.app_context():
        op = op_id()
        t = new_template(name="Tip coupon")
    buf = io.BytesIO()
    Image.new("RGB", (20, 10), (200, 30, 30)).save(buf, format="PNG")
    data = {"name": "Tip campaign", "start_at": "2024-03-01 00:00:00", "end_at": "2099-01-01 00:00:00",
            "trigger": "manual", "scope": "all", "enabled": "y", "operator": str(op),
            "items-template": [str(t)], "items-quantity": ["1"],
            "tip_uploads": [(io.BytesIO(buf.getvalue()), "tip.png")]}
    rv = admin_client.post("/couponcampaignview/add", data=data, content_type="multipart/form-data")
    assert rv.status_code == 302
    with app.app_context():
        c = db.session.scalar(select(CouponCampaign).where(CouponCampaign.name == "Tip campaign"))
        [name] = c.gift_tip_images
        cid = c.id
    assert re.fullmatch(r"[0-9a-f]{32}\.png", name)
    assert f"/uploads/{name}" in admin_client.get(f"/couponcampaignview/show/{cid}").get_data(as_text=True)
    assert admin_client.get(f"/uploads/{name}").status_code == 200
    staff_b = login("staff_b", STAFF_PASSWORD)
    assert staff_b.get(f"/uploads/{name}").status_code == 404
    bad = dict(data, name="Bad tip", tip_uploads=[(io.BytesIO(b"not an image"), "tip.png")])
    html = login("admin", ADMIN_PASSWORD).post("/couponcampaignview/add", data=bad,
                                               content_type="multipart/form-data").get_data(as_text=True)
    assert "Only image files (jpg, png, gif, webp) can be uploaded." in html


def test_the_expiry_job_is_on_the_cron_schedule(app):
    from rq.cron import CronScheduler

    with app.app_context():
        scheduler = CronScheduler(connection=get_redis())
        scheduler.load_config_from_file("app.tasks.cron_config")
        jobs = {job.func.__name__: job for job in scheduler.get_jobs()}
    assert "expire_coupons" in jobs and jobs["expire_coupons"].func.platform_scope_name == "coupon-expiry"
