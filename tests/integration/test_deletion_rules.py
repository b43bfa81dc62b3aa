"""Nothing money depends on can be deleted (issue 9 §2).

Reproductions: deleting a referenced operator, price template, manufacturer or channel is refused
with the reason in Chinese and nothing is deleted; a station with piles says why instead of an empty
red alert; unused master data deletes fine (its owned parts with it); settled orders cannot be
bulk-deleted from 历史订单; the database itself enforces foreign keys on SQLite as on PostgreSQL.
Then: every screen and REST resource over a money/history model has no delete at all.
"""
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from flask_babel import force_locale
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import (
    Alarm,
    Channel,
    ChargeOrder,
    Connector,
    Manufacturer,
    Member,
    Operator,
    Pile,
    PileModel,
    PricePeriod,
    PriceTemplate,
    Station,
)
from app.models.base import utcnow
from app.services import deletion
from tests.conftest import ADMIN_PASSWORD, api_token


def tag():
    return uuid.uuid4().hex[:8].upper()


def demo_operator_id():
    return db.session.scalar(select(Operator.id).where(Operator.code == "MA1NJ0001"))


def new_station(operator_id, **kw):
    t = tag()
    st = Station(code=f"DS{t}", name=f"删除测试电站{t}", address="南京", operator_id=operator_id, **kw)
    db.session.add(st)
    db.session.flush()
    return st


def new_pile(station):
    t = tag()
    pile = Pile(code=f"DP{t}", name=f"删除测试电桩{t}", station_id=station.id, operator_id=station.operator_id)
    db.session.add(pile)
    db.session.flush()
    return pile


def new_template(operator_id):
    t = tag()
    tpl = PriceTemplate(code=f"DT{t}", name=f"删除测试模版{t}", operator_id=operator_id)
    tpl.periods = [PricePeriod(start_minute=0, end_minute=1440, electricity_price=Decimal("0.8"),
                               service_price=Decimal("0.4"), level="flat")]
    db.session.add(tpl)
    db.session.flush()
    return tpl


def page(rv):
    return rv.get_data(as_text=True)


def exists(model, pk):
    db.session.expire_all()
    return db.session.get(model, pk) is not None


# ---- the database enforces foreign keys -------------------------------------------------------
def test_a_raw_insert_with_a_dangling_foreign_key_fails(app):
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            assert db.session.execute(text("PRAGMA foreign_keys")).scalar() == 1
        with pytest.raises(IntegrityError):
            db.session.execute(insert(PileModel.__table__).values(code=f"DM{tag()}", manufacturer_id=987654321))
            db.session.flush()
        db.session.rollback()
        with pytest.raises(IntegrityError):  # and a delete that would leave a reference dangling
            st = new_station(demo_operator_id())
            new_pile(st)
            db.session.execute(Station.__table__.delete().where(Station.id == st.id))
            db.session.flush()
        db.session.rollback()


# ---- reproductions: referenced master data is refused, with the reason in Chinese -----------------
def test_referenced_operator_is_refused_in_chinese_and_kept(app, login):
    with app.app_context():
        op = Operator(code=f"DO{tag()[:7]}", name="删除测试运营商")  # 9 characters
        db.session.add(op)
        db.session.flush()
        new_station(op.id)
        db.session.commit()
        op_id = op.id
    client = login("admin", ADMIN_PASSWORD, lang="zh")
    html = page(client.post(f"/operatorview/delete/{op_id}", follow_redirects=True))
    assert "该运营商仍被 1 个电站使用" in html, html[:3000]
    assert "请改为停用" in html  # master data in use is disabled, not deleted
    with app.app_context():
        assert exists(Operator, op_id)


def test_referenced_price_template_is_refused_with_the_count_of_stations(app, login):
    with app.app_context():
        op_id = demo_operator_id()
        tpl = new_template(op_id)
        for _ in range(3):
            new_station(op_id, price_template_id=tpl.id)
        db.session.commit()
        tpl_id = tpl.id
    client = login("admin", ADMIN_PASSWORD, lang="zh")
    html = page(client.post(f"/pricetemplateview/delete/{tpl_id}", follow_redirects=True))
    assert "该计费模版仍被 3 个电站使用" in html, html[:3000]
    # the bulk action says the same and keeps the row
    html = page(client.post("/pricetemplateview/action_post", data={"action": "muldelete", "rowid": [str(tpl_id)]},
                            follow_redirects=True))
    assert "该计费模版仍被 3 个电站使用" in html
    with app.app_context():
        assert exists(PriceTemplate, tpl_id)
        assert db.session.scalar(select(func.count()).select_from(PricePeriod)
                                 .where(PricePeriod.template_id == tpl_id)) == 1
    # English on switch, and the REST DELETE gives the same reason (422)
    client = login("admin", ADMIN_PASSWORD, lang="en")
    html = page(client.post(f"/pricetemplateview/delete/{tpl_id}", follow_redirects=True))
    assert "This price template is still used by 3 stations." in html
    rv = app.test_client().delete(f"/api/v1/pricetemplate/{tpl_id}",
                                  headers=api_token(app, "admin", ADMIN_PASSWORD))
    assert rv.status_code == 422, page(rv)
    assert "3 stations" in str(rv.get_json()["message"])
    with app.app_context():
        assert exists(PriceTemplate, tpl_id)


def test_referenced_manufacturer_is_refused_and_kept(app, login):
    with app.app_context():
        man = Manufacturer(code=f"DM{tag()}", name="删除测试厂商")
        db.session.add(man)
        db.session.flush()
        db.session.add(PileModel(code=f"DPM{tag()}", manufacturer_id=man.id))
        db.session.commit()
        man_id = man.id
    client = login("admin", ADMIN_PASSWORD, lang="zh")
    html = page(client.post(f"/manufacturerview/delete/{man_id}", follow_redirects=True))
    assert "该电桩厂商仍被 1 个电桩型号使用" in html, html[:3000]
    with app.app_context():
        assert exists(Manufacturer, man_id)


def test_referenced_channel_is_refused_and_kept(app, login):
    with app.app_context():
        op_id = demo_operator_id()
        ch = Channel(code=f"DC{tag()}", name="删除测试渠道", channel_type="app", operator_id=op_id)
        db.session.add(ch)
        db.session.flush()
        for _ in range(2):
            db.session.add(Member(member_no=f"DMB{tag()}", operator_id=op_id, channel_id=ch.id))
        db.session.commit()
        ch_id = ch.id
    client = login("admin", ADMIN_PASSWORD, lang="zh")
    html = page(client.post(f"/channelview/delete/{ch_id}", follow_redirects=True))
    assert "该渠道仍被 2 个会员使用" in html, html[:3000]
    with app.app_context():
        assert exists(Channel, ch_id)


def test_station_with_piles_says_why_instead_of_an_empty_alert(app, login):
    with app.app_context():
        st = new_station(demo_operator_id())
        new_pile(st)
        new_pile(st)
        db.session.commit()
        st_id = st.id
    client = login("admin", ADMIN_PASSWORD, lang="zh")
    html = page(client.post(f"/stationview/delete/{st_id}", follow_redirects=True))
    assert "该电站仍被 2 个电桩使用" in html, html[:3000]
    client = login("admin", ADMIN_PASSWORD, lang="en")
    html = page(client.post(f"/stationview/delete/{st_id}", follow_redirects=True))
    assert "This station is still used by 2 piles." in html
    rv = app.test_client().delete(f"/api/v1/station/{st_id}", headers=api_token(app, "admin", ADMIN_PASSWORD))
    assert rv.status_code == 422
    assert rv.get_json()["message"] == "This station is still used by 2 piles."
    with app.app_context():
        assert exists(Station, st_id)
        assert db.session.scalar(select(func.count()).select_from(Pile).where(Pile.station_id == st_id)) == 2


def test_owned_parts_count_their_own_uses(app):
    """A pile's connectors go with it (no use), but an order on one of them keeps the pile; an
    order naming the pile and its connector counts once."""
    with app.app_context():
        st = new_station(demo_operator_id())
        pile = new_pile(st)
        conn = Connector(code=f"{pile.code}01", gun_no=1, name="1号枪", pile_id=pile.id, station_id=st.id,
                         operator_id=st.operator_id)
        db.session.add(conn)
        db.session.flush()
        assert deletion.uses(db.session, pile) == []
        now = utcnow()
        db.session.add(ChargeOrder(order_no=f"8{uuid.uuid4().int % 10**12:012d}", operator_id=st.operator_id,
                                   station_id=st.id, pile_id=pile.id, connector_id=conn.id, status="settled",
                                   pay_status="paid", start_method="app", started_at=now, ended_at=now))
        db.session.flush()
        assert [(t.name, n) for t, n in deletion.uses(db.session, pile)] == [("ev_charge_order", 1)]
        with force_locale("en"), pytest.raises(deletion.DeletionRefused,
                                               match="^This pile is still used by 1 charging order. Disable"):
            deletion.check_deletable(db.session, pile)
        with force_locale("zh"), pytest.raises(deletion.DeletionRefused,
                                               match="^该电桩仍被 1 个充电订单使用。请改为停用。$"):
            deletion.check_deletable(db.session, pile)
        db.session.rollback()


# ---- unused master data deletes fine ----------------------------------------------------------------
def test_unused_master_data_deletes_with_its_owned_parts(app, login):
    with app.app_context():
        op_id = demo_operator_id()
        man = Manufacturer(code=f"DM{tag()}", name="未使用厂商")
        db.session.add(man)
        tpl = new_template(op_id)
        tpl2 = new_template(op_id)
        st = new_station(op_id)
        db.session.commit()
        ids = man.id, tpl.id, tpl2.id, st.id
    man_id, tpl_id, tpl2_id, st_id = ids
    client = login("admin", ADMIN_PASSWORD, lang="zh")
    rv = client.post(f"/manufacturerview/delete/{man_id}")
    assert rv.status_code == 302
    client.post(f"/pricetemplateview/delete/{tpl_id}")
    client.post("/stationview/action_post", data={"action": "muldelete", "rowid": [str(st_id)]})
    rv = app.test_client().delete(f"/api/v1/pricetemplate/{tpl2_id}", headers=api_token(app, "admin", ADMIN_PASSWORD))
    assert rv.status_code == 200, page(rv)
    with app.app_context():
        assert not exists(Manufacturer, man_id)
        assert not exists(PriceTemplate, tpl_id)
        assert not exists(PriceTemplate, tpl2_id)
        assert not exists(Station, st_id)
        assert db.session.scalar(select(func.count()).select_from(PricePeriod)
                                 .where(PricePeriod.template_id.in_([tpl_id, tpl2_id]))) == 0


# ---- money and history: no delete anywhere ------------------------------------------------------
@pytest.fixture
def settled_order(app):
    with app.app_context():
        conn = db.session.scalar(select(Connector).order_by(Connector.id))
        now = utcnow()
        order = ChargeOrder(order_no=f"9{uuid.uuid4().int % 10**12:012d}", operator_id=conn.operator_id,
                            station_id=conn.station_id, pile_id=conn.pile_id, connector_id=conn.id,
                            status="settled", pay_status="paid", start_method="app",
                            started_at=now - timedelta(hours=1), ended_at=now, settled_at=now, paid_at=now,
                            energy=Decimal("10"), total_amount=Decimal("8"), paid_amount=Decimal("8"))
        db.session.add(order)
        db.session.commit()
        return order.id, order.order_no


def test_settled_orders_cannot_be_deleted_from_history_orders(app, admin_client, settled_order):
    pk, order_no = settled_order
    assert order_no in page(admin_client.get(f"/historyorderview/list/?_flt_0_order_no={order_no}"))
    rv = admin_client.post("/historyorderview/action_post", data={"action": "muldelete", "rowid": [str(pk)]})
    assert rv.status_code >= 400
    for url in (f"/historyorderview/delete/{pk}", f"/historyorderview/action/muldelete/{pk}"):
        assert admin_client.post(url).status_code >= 400
        assert admin_client.get(url).status_code >= 400
    rv = app.test_client().delete(f"/api/v1/order/{pk}", headers=api_token(app, "admin", ADMIN_PASSWORD))
    assert rv.status_code in (403, 405)
    with app.app_context():
        assert exists(ChargeOrder, pk)
        with pytest.raises(deletion.DeletionRefused):  # and the service refuses it as a last line
            deletion.check_deletable(db.session, db.session.get(ChargeOrder, pk))


def _history_views(app):
    return [v for v in app.appbuilder.baseviews
            if getattr(v, "datamodel", None) is not None and deletion.is_history(v.datamodel.obj)]


def test_every_screen_and_resource_over_history_has_no_delete(app, settled_order):
    pk, _order_no = settled_order
    views = _history_views(app)
    names = {v.__class__.__name__ for v in views}
    assert {"HistoryOrderView", "RealtimeOrderView", "FinancialBillView", "OccupancyOrderView", "InvoiceView",
            "StatusLogView", "AlarmView", "PushLogView", "OrderApi"} <= names, names
    endpoints = {r.endpoint: r for r in app.url_map.iter_rules()}
    headers = api_token(app, "admin", ADMIN_PASSWORD)
    client = app.test_client()
    sm = app.appbuilder.sm
    with app.app_context():
        granted = {(pv.view_menu.name, pv.permission.name)
                   for pv in db.session.query(sm.permissionview_model).all()}
    for view in views:
        name, vm = view.__class__.__name__, view.class_permission_name
        assert "can_delete" not in view.base_permissions, name
        assert "muldelete" not in view.base_permissions, name
        assert "muldelete" not in (getattr(view, "actions", None) or {}), name
        assert f"{view.blueprint.name}.delete" not in endpoints, name
        assert (vm, "can_delete") not in granted and (vm, "muldelete") not in granted, name
        if getattr(view, "resource_name", None):
            rv = client.delete(f"/api/v1/{view.resource_name}/{pk}", headers=headers)
            assert rv.status_code in (403, 404, 405), (name, rv.status_code)
    # and no other delete route serves a history model
    by_bp = {v.blueprint.name: v for v in app.appbuilder.baseviews if getattr(v, "blueprint", None) is not None}
    for endpoint in endpoints:
        bp, _, meth = endpoint.partition(".")
        view = by_bp.get(bp)
        if meth in ("delete", "muldelete") and getattr(view, "datamodel", None) is not None:
            assert not deletion.is_history(view.datamodel.obj), endpoint
    with app.app_context():
        assert exists(ChargeOrder, pk)


def test_every_use_has_a_name(app):
    """A refusal never says "record": every table whose rows can be a use has a noun."""
    with app.app_context():
        history = deletion._history_tables()
        can_use = {t.name for t in db.Model.metadata.sorted_tables for fk in t.foreign_key_constraints
                   if (fk.ondelete or "").upper() != "CASCADE" or t.name in history}
        missing = sorted(n for n in can_use if n not in deletion.NOUNS and n not in ("ab_permission_view",))
        assert not missing, missing


# ---- users, roles and groups (Flask-AppBuilder's screens) run the same rule ------------------------


def new_user(app, role_name=None):
    sm = app.appbuilder.sm
    t = tag()
    role = sm.find_role(role_name) if role_name else sm.add_role(f"删除测试用户角色{t}")
    user = sm.add_user(f"del_{t.lower()}", "删除", "测试", f"del_{t.lower()}@example.com", [role],
                       password="Pass-word-123")
    return user.id


def test_user_named_on_history_is_refused_and_an_unused_one_deletes_with_its_roles(app, login):
    from app.security.models import CpmsUser

    with app.app_context():
        used, unused = new_user(app), new_user(app)
        pile = db.session.scalar(select(Pile).limit(1))
        db.session.add(Alarm(pile_id=pile.id, pile_code=pile.code, operator_id=pile.operator_id,
                             fault_code="HW01", handle_status="handled", handled_by_id=used))
        db.session.commit()
    client = login("admin", ADMIN_PASSWORD, lang="zh")
    html = page(client.post(f"/users/delete/{used}", follow_redirects=True))
    assert "该用户仍被 1 个告警使用" in html and "请改为停用" in html, html[:3000]
    html = page(client.post(f"/users/delete/{unused}", follow_redirects=True))
    assert "删除成功" in html or "已删除" in html or "Deleted" not in html
    with app.app_context():
        assert exists(CpmsUser, used)
        assert not exists(CpmsUser, unused)
        held = db.session.execute(text("SELECT count(*) FROM ab_user_role WHERE user_id = :u"), {"u": unused})
        assert held.scalar_one() == 0


def test_role_held_by_users_is_refused_and_an_unheld_one_deletes_with_its_permissions(app, login):
    from flask_appbuilder.security.sqla.models import Role

    with app.app_context():
        sm = app.appbuilder.sm
        held = sm.add_role(f"删除测试角色{tag()}")
        free = sm.add_role(f"删除测试空角色{tag()}")
        perm = sm.find_permission_view_menu("can_list", "StationView")
        sm.add_permission_role(free, perm)
        held_id, free_id = held.id, free.id
        new_user(app, held.name)
    client = login("admin", ADMIN_PASSWORD, lang="zh")
    html = page(client.post(f"/roles/delete/{held_id}", follow_redirects=True))
    assert "该角色仍被 1 个用户使用" in html, html[:3000]
    client.post(f"/roles/delete/{free_id}", follow_redirects=True)
    with app.app_context():
        assert exists(Role, held_id) and not exists(Role, free_id)
        left = db.session.execute(text("SELECT count(*) FROM ab_permission_view_role WHERE role_id = :r"),
                                  {"r": free_id})
        assert left.scalar_one() == 0
