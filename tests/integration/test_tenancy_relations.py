"""Tenancy on every relation, for every write path.

Generated from the REST resources (``app.api.resources.RESOURCES``) and the registered admin
ModelViews: every relation column of their add / edit columns whose target model is operator-owned
(has an operator column, per ``app.security.scope._columns``) is written pointing at the *other*
operator's row:

- over REST (POST and PUT) with operator B's JWT -> 4xx and nothing written;
- over REST as the platform admin (cross-operator link on B's row) -> 4xx and nothing written;
- through the admin edit form, as the row's operator's staff and as the platform admin -> the row
  is unchanged and the page shows an error.

A control request with the relation pointed at the row's own operator succeeds, so each refusal is
the relation's, not a broken payload's.
"""
import html
import re
import uuid
from html.parser import HTMLParser

import pytest
from flask_appbuilder import ModelView
from sqlalchemy import func, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import MANYTOMANY, MANYTOONE

from app.api.resources import RESOURCES
from app.extensions import db
from app.models import Channel, Connector, Member, Operator, Organization, Pile, PriceTemplate, Station
from app.security.scope import _columns
from tests.conftest import ADMIN_PASSWORD, api_token

STAFF = {"MA1NJ0001": ("staff_a", "staff-pass-1"), "MA1NJ0002": ("staff_b", "staff-pass-1")}


def owned(model):
    return getattr(model, "__tablename__", None) is not None and _columns(model)[0] is not None


def owned_relations(model, columns):
    """Relation columns among ``columns`` (many-to-one / many-to-many) whose target is operator-owned."""
    rels = sa_inspect(model).relationships
    return [c for c in columns or [] if c in rels and rels[c].direction in (MANYTOONE, MANYTOMANY)
            and owned(rels[c].mapper.class_)]


def is_operator_relation(model, column):
    return sa_inspect(model).relationships[column].mapper.class_.__tablename__ == "ev_operator"


def _rest_cases():
    """(who, resource, method, column). The platform admin may move a row to another operator (its
    ``operator`` column is no link to another operator's row): that column is staff-only; a POST
    without an ``operator`` column makes a row of the parent's operator (nothing to cross)."""
    cases = []
    for api in RESOURCES:
        model = api.datamodel.obj
        routes = getattr(api, "include_route_methods", None)
        for method, columns in (("post", api.add_columns), ("put", api.edit_columns)):
            if routes is not None and method not in routes:
                continue
            for col in owned_relations(model, columns):
                cases.append(("staff_b", api.resource_name, method, col))
                # a new row without an operator column takes its parent's operator: no link to cross
                explicit_owner = method == "put" or "operator" in columns
                if not is_operator_relation(model, col) and explicit_owner:
                    cases.append(("admin", api.resource_name, method, col))
    return cases


REST_CASES = _rest_cases()
APIS = {api.resource_name: api for api in RESOURCES}


@pytest.fixture(scope="module")
def ops(app):
    with app.app_context():
        a = db.session.scalar(select(Operator.id).where(Operator.code == "MA1NJ0001"))
        b = db.session.scalar(select(Operator.id).where(Operator.code == "MA1NJ0002"))
        return {"A": a, "B": b}


def target_of(model, column):
    return sa_inspect(model).relationships[column].mapper.class_


def row_id(model, operator_id, exclude=()):
    """A row of ``model`` of ``operator_id`` (for Operator itself: the operator)."""
    if model.__tablename__ == "ev_operator":
        return operator_id
    op, _ = _columns(model)
    pk = sa_inspect(model).primary_key[0]
    stmt = select(pk).where(op == operator_id)
    if exclude:
        stmt = stmt.where(pk.notin_(exclude))
    value = db.session.scalar(stmt.order_by(pk))
    assert value is not None, f"no {model.__name__} of operator {operator_id} in the demo data"
    return value


def fk_state(model, pk, column):
    """What a relation of a row points at: the FK value(s) or the ids of a collection."""
    item = db.session.get(model, pk)
    rel = sa_inspect(model).relationships[column]
    if rel.direction is MANYTOMANY:
        return sorted(sa_inspect(o).identity[0] for o in getattr(item, column))
    return tuple(getattr(item, c.key) for c in rel.local_columns)


def count(model):
    return db.session.scalar(select(func.count()).select_from(model))


def uniq(n=8, digits=False):
    raw = str(uuid.uuid4().int) if digits else uuid.uuid4().hex.upper()
    return raw[:n]


def rest_payload(resource, op_id):
    """A valid POST body of ``resource`` for operator ``op_id`` (its relations on its own rows)."""
    ref = lambda model: row_id(model, op_id)  # noqa: E731
    if resource == "station":
        return {"name": f"租户测试站{uniq(4)}", "address": "南京市测试路1号", "operator": op_id, "lng": "118.7",
                "code": uniq(6, digits=True),
                "lat": "32.0", "price_template": ref(PriceTemplate)}
    if resource == "pile":
        return {"name": f"租户测试桩{uniq(4)}", "station": ref(Station), "code": uniq(14, digits=True),
                "pile_type": "dc", "protocol": "ykc15", "power_kw": "60", "gun_count": 1}
    if resource == "connector":
        pile = ref(Pile)
        used = set(db.session.scalars(select(Connector.gun_no).where(Connector.pile_id == pile)))
        return {"pile": pile, "gun_no": min(set(range(1, 100)) - used), "name": "租户测试枪"}
    if resource == "pricetemplate":
        return {"code": f"T{uniq(8)}", "name": "租户测试模板", "operator": op_id,
                "periods": [{"start": "00:00", "end": "24:00", "level": "flat", "electricity_price": "0.6",
                             "service_price": "0.4"}]}  # a template needs its day's periods (as in the admin)
    if resource == "partner":
        keys = {f: "K" * 16 for f in ("operator_secret", "data_secret", "data_secret_iv", "sig_secret",
                                       "our_operator_secret", "our_data_secret", "our_data_secret_iv",
                                       "our_sig_secret")}
        return dict(keys, name="租户测试伙伴", partner_operator_code=uniq(9), our_operator_code="MA1NJ0002",
                    operator=op_id, channel=ref(Channel))
    if resource == "member":
        return {"member_no": f"TM{uniq(10, digits=True)}", "phone": f"139{uniq(8, digits=True)}",
                "operator": op_id, "organization": ref(Organization)}
    if resource == "card":
        return {"logical_no": uniq(16, digits=True), "physical_no": uniq(16), "member": ref(Member),
                "organization": ref(Organization), "operator": op_id}
    raise AssertionError(f"no POST payload for the REST resource {resource!r}: add one here")


def _relation_value(model, column, target_id):
    rel = sa_inspect(model).relationships[column]
    return [target_id] if rel.direction is MANYTOMANY else target_id


# ----- REST ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("who,resource,method,column", REST_CASES, ids=["-".join(c) for c in REST_CASES])
def test_rest_refuses_a_relation_to_another_operators_row(app, ops, who, resource, method, column):
    api = APIS[resource]
    model = api.datamodel.obj
    target = target_of(model, column)
    headers = api_token(app, "admin", ADMIN_PASSWORD) if who == "admin" else api_token(app, *STAFF["MA1NJ0002"])
    c = app.test_client()
    with app.app_context():
        foreign = row_id(target, ops["A"])
        own = row_id(target, ops["B"])
        if method == "post":
            body = rest_payload(resource, ops["B"])
            body[column] = _relation_value(model, column, foreign)
            before = count(model)
        else:
            pk = row_id(model, ops["B"])
            before = fk_state(model, pk, column)
            body = {column: _relation_value(model, column, foreign)}
    if method == "post":
        rv = c.post(f"/api/v1/{resource}/", json=body, headers=headers)
    else:
        rv = c.put(f"/api/v1/{resource}/{pk}", json=body, headers=headers)
    assert 400 <= rv.status_code < 500, (rv.status_code, rv.get_data(as_text=True)[:500])
    message = rv.get_json().get("message")
    assert message, rv.get_json()
    with app.app_context():
        if method == "post":
            assert count(model) == before
        else:
            assert fk_state(model, pk, column) == before
    # the control: the same write with the relation on operator B's own row is accepted (a PUT keeps
    # the row's current link where it has one, so the demo data stays as it is)
    if method == "post":
        body[column] = _relation_value(model, column, own)
        rv = c.post(f"/api/v1/{resource}/", json=body, headers=headers)
        assert rv.status_code == 201, rv.get_json()
    else:
        keep = before[0] if before and before[0] is not None else own
        body[column] = _relation_value(model, column, keep)
        rv = c.put(f"/api/v1/{resource}/{pk}", json=body, headers=headers)
        assert rv.status_code == 200, rv.get_json()
        with app.app_context():
            assert fk_state(model, pk, column) in ((keep,), [keep])


def test_rest_names_the_field(app, ops):
    """The reproduction of the issue: B's station on A's price template."""
    headers = api_token(app, *STAFF["MA1NJ0002"])
    with app.app_context():
        b_station = row_id(Station, ops["B"])
        a_template = row_id(PriceTemplate, ops["A"])
        before = db.session.get(Station, b_station).price_template_id
    rv = app.test_client().put(f"/api/v1/station/{b_station}", json={"price_template": a_template},
                               headers=headers)
    assert rv.status_code == 422, rv.get_json()
    assert "price_template" in rv.get_json()["message"]
    with app.app_context():
        assert db.session.get(Station, b_station).price_template_id == before


# ----- admin forms ------------------------------------------------------------------------------------
class FormParser(HTMLParser):
    """The values an edit form would submit as rendered (inputs, checkboxes, selects, textareas)."""

    def __init__(self):
        super().__init__()
        self.data, self._select, self._textarea, self._in_form = {}, None, None, False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and a.get("method", "").lower() == "post":
            self._in_form = True
        if not self._in_form:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.data.setdefault(name, []).append(a.get("value", "y"))
            elif kind not in ("submit", "button", "file"):
                self.data.setdefault(name, []).append(a.get("value", ""))
        elif tag == "select" and name:
            self._select = name
            self.data.setdefault(name, [])
        elif tag == "option" and self._select and "selected" in a:
            self.data[self._select].append(a.get("value", ""))
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = [""]

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "form":
            self._in_form = False

    def handle_data(self, data):
        if self._textarea:
            self.data[self._textarea][0] += data


def form_values(page):
    parser = FormParser()
    parser.feed(page)
    return {k: v if len(v) != 1 else v[0] for k, v in parser.data.items()}


def _view_cases():
    """(view class name, column) for every registered ModelView's editable owned relation; resolved
    against the live app in the test (FAB fills default columns at registration)."""
    import importlib
    import pkgutil

    import app.views
    from app.security import views as security_views
    from app.views.base import CpmsModelView

    for mod in pkgutil.iter_modules(app.views.__path__):
        importlib.import_module(f"app.views.{mod.name}")

    seen, stack = [], [CpmsModelView, security_views.CpmsUserDBModelView]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls not in seen:
            seen.append(cls)
    from app.security.models import CpmsUser

    cases = []
    for cls in seen:
        dm = getattr(cls, "datamodel", None)
        model = dm.obj if dm is not None else CpmsUser if cls is security_views.CpmsUserDBModelView else None
        if model is None:
            continue
        perms = getattr(cls, "base_permissions", None)
        if perms and "can_edit" not in perms:
            continue
        for col in owned_relations(model, getattr(cls, "edit_columns", None)):
            if owned(model):  # a row without operator (e.g. a role's data scope) is platform-only
                cases.append(("staff", cls.__name__, col))
            if not is_operator_relation(model, col):  # see _rest_cases
                cases.append(("admin", cls.__name__, col))
    return sorted(set(cases))


VIEW_CASES = _view_cases()


def registered_view(app, name):
    for view in app.appbuilder.baseviews:
        if type(view).__name__ == name and isinstance(view, ModelView):
            return view
    raise AssertionError(f"{name} is not registered")


def view_row(view, operator_id):
    """The primary key of a row the view lists (its base filters apply) of ``operator_id``."""
    from app.security.scope import platform_scope

    with platform_scope("test-pick-row"):
        _, items = view.datamodel.query(view._base_filters, page=0, page_size=1000)
        for item in items:
            if _columns(type(item))[0] is not None and getattr(item, _columns(type(item))[0].key) == operator_id:
                return view.datamodel.get_pk_value(item)
    return None


@pytest.fixture(scope="module")
def marketing_rows(app, ops):
    """Operator B's campaigns, coupon template and coupon campaign (the demo data has none), each
    with its links on B's own rows, so their edit forms have something to cross."""
    from datetime import datetime, timedelta

    from app.models import Campaign, CouponCampaign, CouponTemplate

    with app.app_context():
        b = ops["B"]
        station = db.session.get(Station, row_id(Station, b))
        member = db.session.get(Member, row_id(Member, b))
        channel = db.session.scalar(select(Channel).where(Channel.operator_id == b,
                                                          Channel.channel_type == "interconnect"))
        start = datetime(2030, 1, 1)
        common = dict(operator_id=b, all_stations=False, start_at=start, end_at=start + timedelta(days=30),
                      description="租户测试", stations=[station])
        db.session.add_all([
            Campaign(kind="operation", name="租户测试运营活动", **common),
            Campaign(kind="interconnect", name="租户测试互联活动", channel=channel, **common),
            CouponTemplate(operator_id=b, name="租户测试券", coupon_type="deduction", face_value=5,
                           validity_mode="fixed", valid_from=start, valid_to=start + timedelta(days=30),
                           all_stations=False, stations=[station]),
            CouponCampaign(operator_id=b, name="租户测试券活动", start_at=start, end_at=start + timedelta(days=30),
                           scope="selected", members=[member]),
        ])
        db.session.commit()


def _platform_row(app, model):
    """The primary key of a row of an operator-less model, created for the test if there is none."""
    from app.security.models import RoleDataScope

    pk_col = sa_inspect(model).primary_key[0]
    pk = db.session.scalar(select(pk_col).order_by(pk_col))
    if pk is None and model is RoleDataScope:
        sm = app.appbuilder.sm
        role = sm.find_role("TenancyScopeTest") or sm.add_role("TenancyScopeTest")
        db.session.add(RoleDataScope(role_id=role.id, scope="stations"))
        db.session.commit()
        pk = role.id
    assert pk is not None, f"no {model.__name__} row"
    return pk


@pytest.mark.parametrize("who,view_name,column", VIEW_CASES, ids=["-".join(c) for c in VIEW_CASES])
def test_admin_edit_form_refuses_a_relation_to_another_operators_row(app, client, login, ops, marketing_rows, who,
                                                                     view_name, column):
    view = registered_view(app, view_name)
    model = view.datamodel.obj
    assert column in view.edit_columns
    target = target_of(model, column)
    many = sa_inspect(model).relationships[column].direction is MANYTOMANY
    with app.app_context():
        if owned(model):
            code, owner = "MA1NJ0002", ops["B"]
            pk = view_row(view, owner)
            if pk is None:  # the demo data has this screen's rows for operator A only
                code, owner = "MA1NJ0001", ops["A"]
                pk = view_row(view, owner)
            assert pk is not None, f"{view_name}: no row of either operator"
            other = ops["A"] if owner == ops["B"] else ops["B"]
            value = [str(row_id(target, other))] if many else str(row_id(target, other))
        else:  # a platform row (a role's data scope): its links must not span two operators
            code, pk = None, _platform_row(app, model)
            value = [str(row_id(target, ops["A"])), str(row_id(target, ops["B"]))]
        before = fk_state(model, pk, column)
    if who == "admin":
        login("admin", ADMIN_PASSWORD)
    else:
        login(*STAFF[code])
    url = f"{view.route_base}/edit/{pk}"
    page = client.get(url)
    assert page.status_code == 200, url
    data = form_values(page.get_data(as_text=True))
    assert column in data, f"{column} not in the edit form of {view_name}"
    data[column] = value
    if column == "stations":
        data.pop("all_stations", None)   # a chosen-stations scope (with 全部电站 the list is not used)
    rv = client.post(url, data=data, follow_redirects=True)
    text = html.unescape(rv.get_data(as_text=True))
    with app.app_context():
        assert fk_state(model, pk, column) == before, f"{view_name}.{column} was written"
    assert re.search(r"outside your data scope|belongs to another operator|belong to different operators|"
                     r"Not a valid choice|alert-danger", text), text[:3000]
