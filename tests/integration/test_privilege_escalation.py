"""Reproductions of the privilege escalations of issue 7 §1, each over real HTTP on the demo data:

* a read-only staff member (or any staff) resetting another user's password through FAB's
  ResetPasswordView, the platform admin's included;
* an operator admin adding a FAB group holding the Admin role with itself as member (group roles
  counted in the roles of a user), and the group form listing every user and role;
* an operator admin giving a user a role with powers it does not hold, on add and on edit, and
  managing a user of its operator that holds such a role;
* changing one's own password without giving the current one.
"""
import re

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Operator
from tests.conftest import ADMIN_PASSWORD

STAFF_PASSWORD = "staff-pass-1"
NEW_PASSWORD = "Taken-over-9!"


def jwt_login_ok(app, username, password):
    rv = app.test_client().post("/api/v1/security/login", json={
        "username": username, "password": password, "provider": "db", "refresh": False})
    return rv.status_code == 200


def user_id(app, username):
    with app.app_context():
        return app.appbuilder.sm.find_user(username=username).id


def role_names(app, username):
    with app.app_context():
        sm = app.appbuilder.sm
        user = sm.get_user_by_id(user_id(app, username))
        return sorted(r.name for r in user.roles), sorted(g.name for g in user.groups)


def operator_id(app, code="MA1NJ0001"):
    with app.app_context():
        return db.session.scalar(select(Operator.id).where(Operator.code == code))


def make_user(app, username, role_names_, operator_code="MA1NJ0001", password="Throwaway-pass-1"):
    """A throw-away user created directly (not through the screens under test)."""
    with app.app_context():
        sm = app.appbuilder.sm
        existing = sm.find_user(username=username)
        if existing:
            return existing.id
        roles = [sm.find_role(n) for n in role_names_]
        user = sm.add_user(username, "临", "时", f"{username}@example.com", roles, password)
        u = db.session.get(sm.user_model, user.id)
        u.operator_id = operator_id(app, operator_code) if operator_code else None
        db.session.commit()
        return u.id


@pytest.fixture(scope="module")
def auditor_role(app):
    """A role of the default (own operator) data scope that can see and edit roles: a power
    operator admins do not hold. The old filter (not Admin, not 'all' scope) let them grant it."""
    with app.app_context():
        sm = app.appbuilder.sm
        role = sm.find_role("SecurityAuditor") or sm.add_role("SecurityAuditor")
        wanted = {("can_list", "RoleModelView"), ("can_edit", "RoleModelView"), ("can_show", "RoleModelView"),
                  ("menu_access", "List Roles")}
        role.permissions = [pv for pv in db.session.query(sm.permissionview_model).all()
                            if (pv.permission.name, pv.view_menu.name) in wanted]
        db.session.commit()
        return role.id


def user_form(username, role_ids, op_id, **extra):
    data = {"username": username, "first_name": "测", "last_name": "试", "email": f"{username}@example.com",
            "password": "Passw0rd-123", "conf_password": "Passw0rd-123", "operator": str(op_id),
            "roles": [str(r) for r in role_ids], "active": "y", "nickname": username, "phone": "13800000000"}
    data.update(extra)
    return data


def select_options(html, name):
    m = re.search(rf'<select[^>]*name="{name}"[^>]*>(.*?)</select>', html, re.S)
    assert m, f"no select {name}"
    return set(re.findall(r'<option[^>]*value="([^"]*)"', m.group(1))) - {"", "__None"}


# ---- reset password of others ---------------------------------------------------------------------
def test_read_only_staff_cannot_reset_the_admins_password(app, login):
    admin_id = user_id(app, "admin")
    c = login("viewer_a", STAFF_PASSWORD)
    try:
        assert c.get(f"/resetpassword/form?pk={admin_id}").status_code == 403
        rv = c.post(f"/resetpassword/form?pk={admin_id}",
                    data={"password": NEW_PASSWORD, "conf_password": NEW_PASSWORD})
        assert rv.status_code == 403
        assert not jwt_login_ok(app, "admin", NEW_PASSWORD)
        assert jwt_login_ok(app, "admin", ADMIN_PASSWORD)
    finally:  # on the vulnerable code the admin would be taken over: give the session its admin back
        with app.app_context():
            sm = app.appbuilder.sm
            if not jwt_login_ok(app, "admin", ADMIN_PASSWORD):
                sm.reset_password(admin_id, ADMIN_PASSWORD)


@pytest.mark.parametrize("victim", ["admin", "staff_b"])
def test_operator_admin_cannot_reset_passwords_outside_its_operator(app, login, victim):
    victim_id = user_id(app, victim)
    victim_password = ADMIN_PASSWORD if victim == "admin" else STAFF_PASSWORD
    c = login("staff_a", STAFF_PASSWORD)
    try:
        assert c.get(f"/resetpassword/form?pk={victim_id}").status_code == 404
        rv = c.post(f"/resetpassword/form?pk={victim_id}",
                    data={"password": NEW_PASSWORD, "conf_password": NEW_PASSWORD})
        assert rv.status_code == 404
        assert not jwt_login_ok(app, victim, NEW_PASSWORD)
        assert jwt_login_ok(app, victim, victim_password)
    finally:
        with app.app_context():
            if not jwt_login_ok(app, victim, victim_password):
                app.appbuilder.sm.reset_password(victim_id, victim_password)


def test_operator_admin_resets_only_reachable_users_of_its_operator(app, login, auditor_role):
    own = make_user(app, "reset_target_a", ["OperatorStaff"])
    lead = make_user(app, "reset_lead_a", ["OperatorStaff", "SecurityAuditor"])
    c = login("staff_a", STAFF_PASSWORD)
    # a user of operator A holding a role staff_a lacks is out of reach
    assert c.get(f"/resetpassword/form?pk={lead}").status_code == 404
    c.post(f"/resetpassword/form?pk={lead}", data={"password": NEW_PASSWORD, "conf_password": NEW_PASSWORD})
    assert not jwt_login_ok(app, "reset_lead_a", NEW_PASSWORD)
    # its own password only through "reset my password" (with the current one)
    assert c.get(f"/resetpassword/form?pk={user_id(app, 'staff_a')}").status_code == 404
    # a read-only staff member of its own operator: allowed
    assert c.get(f"/resetpassword/form?pk={own}").status_code == 200
    rv = c.post(f"/resetpassword/form?pk={own}", data={"password": NEW_PASSWORD, "conf_password": NEW_PASSWORD})
    assert rv.status_code == 302
    assert jwt_login_ok(app, "reset_target_a", NEW_PASSWORD)


# ---- groups -----------------------------------------------------------------------------------
def test_operator_admin_cannot_add_a_group_with_the_admin_role(app, login):
    with app.app_context():
        sm = app.appbuilder.sm
        admin_role = sm.find_role("Admin").id
    me = user_id(app, "staff_a")
    before = role_names(app, "staff_a")
    c = login("staff_a", STAFF_PASSWORD)
    rv = c.post("/groups/add", data={"name": "pwned", "label": "pwned", "description": "",
                                     "users": [str(me)], "roles": [str(admin_role)]})
    assert rv.status_code == 403
    with app.app_context():
        sm = app.appbuilder.sm
        assert db.session.query(sm.group_model).filter_by(name="pwned").first() is None
    assert role_names(app, "staff_a") == before
    # and no platform screen opened up
    assert c.get("/roles/list/").status_code == 403
    assert c.get("/users/list/").status_code == 200


@pytest.mark.parametrize("username", ["staff_a", "viewer_a"])
def test_group_screens_are_not_reachable_for_tenants(app, login, username):
    with app.app_context():
        sm = app.appbuilder.sm
        group = db.session.query(sm.group_model).filter_by(name="ops-platform").first()
        if group is None:
            group = sm.group_model(name="ops-platform", label="ops-platform")
            db.session.add(group)
            db.session.commit()
        gid = group.id
    c = login(username, STAFF_PASSWORD)
    for url in ("/groups/list/", "/groups/add", f"/groups/show/{gid}", f"/groups/edit/{gid}"):
        rv = c.get(url)
        assert rv.status_code == 403, url
        assert 'name="users"' not in rv.get_data(as_text=True)
    # FAB's user form does not offer groups either
    if username == "staff_a":
        html = c.get("/users/add").get_data(as_text=True)
        assert 'name="groups"' not in html


def test_group_membership_does_not_lift_a_tenant_to_admin(app, login):
    """Even if a group holding Admin lists an operator's user (a platform admin's mistake, or an
    old row), the tenant gets no role from it: group roles count only for platform users."""
    with app.app_context():
        sm = app.appbuilder.sm
        group = sm.group_model(name="legacy-admins", label="legacy", roles=[sm.find_role("Admin")])
        db.session.add(group)
        db.session.flush()
        gid = group.id
        members = sm.group_model.users.property.secondary  # ab_user_group
        db.session.execute(members.insert().values(user_id=user_id(app, "staff_a"), group_id=gid))
        db.session.commit()
        staff = db.session.get(sm.user_model, user_id(app, "staff_a"))
        assert "legacy-admins" in [g.name for g in staff.groups]
    try:
        c = login("staff_a", STAFF_PASSWORD)
        assert c.get("/roles/list/").status_code == 403
        assert c.get("/stationview/list/").status_code == 200
        html = c.get("/stationview/list/").get_data(as_text=True)
        assert "城南公馆" not in html  # operator B's station: the data scope did not widen to "all"
    finally:
        with app.app_context():
            sm = app.appbuilder.sm
            members = sm.group_model.users.property.secondary
            db.session.execute(members.delete().where(members.c.group_id == gid))
            db.session.delete(db.session.get(sm.group_model, gid))
            db.session.commit()


# ---- granting roles -----------------------------------------------------------------------------
def test_operator_admin_cannot_grant_roles_beyond_its_own(app, login, auditor_role):
    a = operator_id(app)
    with app.app_context():
        sm = app.appbuilder.sm
        admin_role, staff_role = sm.find_role("Admin").id, sm.find_role("OperatorStaff").id
    c = login("staff_a", STAFF_PASSWORD)
    # the dropdown offers neither
    options = select_options(c.get("/users/add").get_data(as_text=True), "roles")
    assert str(admin_role) not in options and str(auditor_role) not in options and str(staff_role) in options
    # and a forged POST is refused on write
    c.post("/users/add", data=user_form("esc_admin_a", [admin_role], a))
    c.post("/users/add", data=user_form("esc_auditor_a", [staff_role, auditor_role], a))
    with app.app_context():
        sm = app.appbuilder.sm
        assert sm.find_user(username="esc_admin_a") is None
        esc = sm.find_user(username="esc_auditor_a")  # FAB drops a choice its dropdown did not offer
        assert esc is None or [r.name for r in esc.roles] == ["OperatorStaff"]
    # edit: a read-only staff member of operator A cannot be given the auditor role nor Admin
    target = make_user(app, "edit_target_a", ["OperatorStaff"])
    before = role_names(app, "edit_target_a")
    for roles in ([staff_role, auditor_role], [admin_role]):
        c.post(f"/users/edit/{target}", data=user_form("edit_target_a", roles, a))
        assert role_names(app, "edit_target_a") == before
    # a legitimate edit still works
    rv = c.post(f"/users/edit/{target}", data=user_form("edit_target_a", [staff_role], a, nickname="改名"))
    assert rv.status_code == 302
    assert role_names(app, "edit_target_a") == before
    with app.app_context():
        assert app.appbuilder.sm.get_user_by_id(target).nickname == "改名"


def test_operator_admin_cannot_manage_a_user_holding_a_role_it_lacks(app, login, auditor_role):
    a = operator_id(app)
    lead = make_user(app, "lead_a", ["OperatorStaff", "SecurityAuditor"])
    with app.app_context():
        staff_role = app.appbuilder.sm.find_role("OperatorStaff").id
    before = role_names(app, "lead_a")
    c = login("staff_a", STAFF_PASSWORD)
    # stripping the auditor role or renaming the user: refused, nothing written
    c.post(f"/users/edit/{lead}", data=user_form("lead_a_renamed", [staff_role], a))
    assert role_names(app, "lead_a") == before
    with app.app_context():
        assert app.appbuilder.sm.find_user(username="lead_a") is not None
    c.post(f"/users/delete/{lead}")
    with app.app_context():
        assert app.appbuilder.sm.find_user(username="lead_a") is not None


# ---- own password ------------------------------------------------------------------------------
def test_own_password_change_needs_the_current_password(app, login):
    make_user(app, "pw_owner_a", ["OperatorStaff"], password="Original-pass-1")
    c = login("pw_owner_a", "Original-pass-1")
    form = c.get("/resetmypassword/form").get_data(as_text=True)
    assert 'name="old_password"' in form
    # FAB's form without the current password: refused
    c.post("/resetmypassword/form", data={"password": NEW_PASSWORD, "conf_password": NEW_PASSWORD})
    assert not jwt_login_ok(app, "pw_owner_a", NEW_PASSWORD)
    # a wrong current password: refused, with the reason on the form
    rv = c.post("/resetmypassword/form", data={"old_password": "wrong-guess", "password": NEW_PASSWORD,
                                                "conf_password": NEW_PASSWORD})
    assert rv.status_code == 200 and "The current password is wrong." in rv.get_data(as_text=True)
    assert not jwt_login_ok(app, "pw_owner_a", NEW_PASSWORD)
    # the right one: changed
    rv = c.post("/resetmypassword/form", data={"old_password": "Original-pass-1", "password": NEW_PASSWORD,
                                                "conf_password": NEW_PASSWORD})
    assert rv.status_code == 302
    assert jwt_login_ok(app, "pw_owner_a", NEW_PASSWORD)
    assert not jwt_login_ok(app, "pw_owner_a", "Original-pass-1")
