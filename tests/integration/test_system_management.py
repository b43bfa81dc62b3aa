"""系统管理: users scoped by operator (no privilege escalation), department tree rules, posts,
and role data scopes (all / own operator / chosen stations)."""
import re

from sqlalchemy import select

from app.extensions import db
from app.models import Operator, Pile, Station
from app.security.models import Department, RoleDataScope
from tests.conftest import ADMIN_PASSWORD, api_token


def op_ids(app):
    with app.app_context():
        return [db.session.scalar(select(Operator.id).where(Operator.code == c)) for c in ("MA1NJ0001", "MA1NJ0002")]


def user_form(username, operator_id, role_id, dept_id=None):
    data = {"username": username, "first_name": "测", "last_name": "试", "email": f"{username}@example.com",
            "password": "Passw0rd-123", "conf_password": "Passw0rd-123", "operator": str(operator_id),
            "roles": [str(role_id)], "active": "y", "nickname": username, "phone": "13800000000"}
    if dept_id:
        data["department"] = str(dept_id)
    return data


def test_operator_staff_see_and_create_only_their_own_users(app, login):
    a, b = op_ids(app)
    sm = app.appbuilder.sm
    with app.app_context():
        staff_role = sm.find_role("OperatorStaff").id
        admin_role = sm.find_role("Admin").id
    c = login("staff_a", "staff-pass-1")
    html = c.get("/users/list/").get_data(as_text=True)
    assert "staff_a" in html and "viewer_a" in html and "staff_b" not in html
    assert ">admin<" not in html
    c.post("/users/add", data=user_form("new_b_user", b, staff_role))
    c.post("/users/add", data=user_form("escalate_a", a, admin_role))
    rv = c.post("/users/add", data=user_form("new_a_user", a, staff_role), follow_redirects=True)
    assert rv.status_code == 200
    with app.app_context():
        assert sm.find_user(username="new_b_user") is None
        assert sm.find_user(username="escalate_a") is None
        user = db.session.get(sm.user_model, sm.find_user(username="new_a_user").id)
        assert user.operator_id == a and [r.name for r in user.roles] == ["OperatorStaff"]
    add_form = c.get("/users/add").get_data(as_text=True)
    roles_select = re.search(r'<select[^>]*name="roles"[^>]*>(.*?)</select>', add_form, re.S).group(1)
    assert f'value="{admin_role}"' not in roles_select and f'value="{staff_role}"' in roles_select


def test_department_tree_paths_and_rules(app, admin_client):
    a, b = op_ids(app)
    with app.app_context():
        root = db.session.scalar(select(Department).where(Department.operator_id == a))
        root_id, root_path = root.id, root.path
    rv = admin_client.post("/departmentview/add", data={"name": "运维一部", "parent": str(root_id),
                                                        "operator": str(a), "sort": "1", "enabled": "y"})
    assert rv.status_code == 302
    with app.app_context():
        child = db.session.scalar(select(Department).where(Department.name == "运维一部"))
        assert child.path == f"{root_path}{child.id}/"
        child_id = child.id
    # a department cannot move under its own child
    admin_client.post(f"/departmentview/edit/{root_id}", data={"name": "x", "parent": str(child_id),
                                                               "operator": str(a), "sort": "0", "enabled": "y"})
    # nor under another operator's department
    admin_client.post("/departmentview/add", data={"name": "跨运营商部门", "parent": str(root_id),
                                                   "operator": str(b), "sort": "1", "enabled": "y"})
    with app.app_context():
        assert db.session.get(Department, root_id).parent_id != child_id
        assert db.session.scalar(select(Department).where(Department.name == "跨运营商部门")) is None
    html = admin_client.get("/departmentview/list/").get_data(as_text=True)
    assert "运维一部" in html


def test_posts_and_data_permission_screens_render(admin_client):
    assert "董事长" in admin_client.get("/postview/list/").get_data(as_text=True)
    assert admin_client.get("/roledatascopeview/list/").status_code == 200
    assert admin_client.get("/roles/list/").status_code == 200


def test_station_scoped_role_limits_rows_to_chosen_stations(app, admin_client):
    a, _ = op_ids(app)
    sm = app.appbuilder.sm
    with app.app_context():
        station = db.session.scalar(select(Station).where(Station.operator_id == a).order_by(Station.id))
        other = db.session.scalar(select(Station).where(Station.operator_id == a, Station.id != station.id))
        station_id, other_id = station.id, other.id
        role = sm.add_role("StationKeeper")
        role.permissions = list(sm.find_role("OperatorStaff").permissions)
        db.session.add(RoleDataScope(role_id=role.id, scope="stations", stations=[station]))
        db.session.commit()
        user = sm.add_user("keeper", "站", "长", "keeper@example.com", role, "Keeper-pass-1")
        u = db.session.get(sm.user_model, user.id)
        u.operator_id = a
        db.session.commit()
        own_piles = {p.id for p in db.session.scalars(select(Pile).where(Pile.station_id == station_id))}
    headers = api_token(app, "keeper", "Keeper-pass-1")
    c = app.test_client()
    rows = c.get("/api/v1/pile/?q=(page_size:100)", headers=headers).get_json()["result"]
    assert {r["id"] for r in rows} == own_piles
    stations = c.get("/api/v1/station/?q=(page_size:100)", headers=headers).get_json()["result"]
    assert [s["id"] for s in stations] == [station_id]
    assert c.get(f"/api/v1/station/{other_id}", headers=headers).status_code == 404


def test_platform_admin_has_every_menu(app):
    headers = api_token(app, "admin", ADMIN_PASSWORD)
    rv = app.test_client().get("/api/v1/menu/", headers=headers)
    assert rv.status_code == 200
