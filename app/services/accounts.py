"""Roles, permissions, the initial admin account, and the account rules of user management.

Permissions of the tenant roles are derived from the policy table (``app.security.policy``):
an explicit allow-list, so a view that is not in the table gives tenants nothing.
"""
import logging
import secrets

from flask import current_app
from flask_appbuilder.security.manager import BaseSecurityManager
from flask_babel import gettext as _
from sqlalchemy import inspect as sa_inspect
from werkzeug.security import check_password_hash

from app.security import policy

log = logging.getLogger(__name__)

ROLE_OPERATOR_ADMIN = policy.ROLE_OPERATOR_ADMIN
ROLE_OPERATOR_STAFF = policy.ROLE_OPERATOR_STAFF


class AccountError(Exception):
    """A refused account change (role grant, password, user outside the caller's reach)."""


def sync_roles_and_permissions():
    """Create FAB's roles and permissions for every registered view, then give each built-in
    role exactly what the policy table allows (the Admin role: everything but ``NOBODY``)."""
    ab = current_app.appbuilder
    sm = ab.sm
    BaseSecurityManager.create_db(sm)
    ab.add_permissions(update_perms=True)
    session = sm.session
    admin_name = sm.auth_role_admin
    roles = {name: sm.find_role(name) or sm.add_role(name) for name in policy.TENANT_ROLES}
    roles[policy.ADMIN] = sm.find_role(admin_name) or sm.add_role(admin_name)
    grants = {name: [] for name in roles}
    for pvm in session.query(sm.permissionview_model).all():
        view, perm = pvm.view_menu.name, pvm.permission.name
        try:
            allowed = policy.roles_allowed(view, perm)
        except policy.PolicyMissing:
            log.warning("permission %s on %s is not in the policy table: platform admins only", perm, view)
            allowed = {policy.ADMIN}
        for name in roles:
            if name in allowed:
                grants[name].append(pvm)
    for name, role in roles.items():
        role.permissions = grants[name]
    session.commit()


def ensure_admin(username=None, password=None):
    """Create the platform admin if missing. Returns (username, password or None if it existed)."""
    sm = current_app.appbuilder.sm
    username = username or current_app.config.get("ADMIN_USERNAME") or "admin"
    if sm.find_user(username=username):
        return username, None
    password = password or current_app.config.get("ADMIN_PASSWORD") or secrets.token_urlsafe(12)
    role = sm.find_role(sm.auth_role_admin)
    user = sm.add_user(username, "平台", "管理员", f"{username}@example.com", role, password)
    if not user:
        raise RuntimeError("could not create the admin user")
    return username, password


# ---- who may grant what, and manage whom ---------------------------------------------------------
def _load(user):
    sm = current_app.appbuilder.sm
    if user is not None and not isinstance(user, sm.user_model):  # FAB relations give the base User
        user = sm.get_user_by_id(user.id)
    return user


def is_platform_admin(user):
    """Holds the platform Admin role (directly: group roles do not count, see the manager)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    sm = current_app.appbuilder.sm
    return any(r.name == sm.auth_role_admin for r in sm.get_user_roles(_load(user)))


def _role_within(role, actor_perms, actor_scope):
    """``role`` gives nothing beyond the actor's own powers: its permissions are a subset of the
    actor's and its data scope is not wider (all > own operator > chosen stations)."""
    from app.security.models import SCOPE_ALL, SCOPE_STATIONS
    from app.security.scope import role_scope

    if not {pv.id for pv in role.permissions} <= actor_perms:
        return False
    kind, stations = role_scope(role)
    if actor_scope.all:
        return True
    if kind == SCOPE_ALL:
        return False
    if actor_scope.station_ids is None:
        return True
    return kind == SCOPE_STATIONS and set(stations) <= set(actor_scope.station_ids)


def grantable_role_ids(actor):
    """Ids of the roles ``actor`` may hand out: None = any (platform admin); else the roles it
    holds and roles that give nothing it does not hold itself (e.g. an operator admin may give
    the read-only staff role). Never the platform Admin role."""
    if is_platform_admin(actor):
        return None
    from app.security.scope import scope_for_user

    sm = current_app.appbuilder.sm
    actor = _load(actor)
    held = sm.get_user_roles(actor)
    actor_perms = {pv.id for r in held for pv in r.permissions}
    actor_scope = scope_for_user(actor)
    ids = set()
    for role in sm.session.query(sm.role_model).all():
        if role.name == sm.auth_role_admin:
            continue
        if role in held or _role_within(role, actor_perms, actor_scope):
            ids.add(role.id)
    return ids


def check_role_grant(actor, roles):
    """Refuse giving ``roles`` unless each is within the actor's reach (see grantable_role_ids)."""
    allowed = grantable_role_ids(actor)
    if allowed is None:
        return
    for role in roles:
        if role.id not in allowed:
            raise AccountError(_("You may not grant the role %(name)s.", name=role.name))


def check_manage_user(actor, target):
    """Refuse managing ``target`` (edit, delete, reset password) unless the actor is a platform
    admin, or ``target`` belongs to the actor's operator and holds no role the actor lacks."""
    if is_platform_admin(actor):
        return
    actor, target = _load(actor), _load(target)
    if target is None or actor is None or actor.operator_id is None or target.operator_id != actor.operator_id:
        raise AccountError(_("You may not manage this user."))
    check_role_grant(actor, current_app.appbuilder.sm.get_user_roles(target))


def previous_roles(user):
    """The roles ``user`` had before the pending (unflushed) change of its ``roles``."""
    hist = sa_inspect(user).attrs.roles.history
    if not hist.has_changes():
        return list(user.roles)
    return list(hist.unchanged or ()) + list(hist.deleted or ())


def check_user_write(actor, user, is_new):
    """Every write of a user by ``actor`` through the admin: the new roles, and for an existing
    user also the roles it had, must be within the actor's reach."""
    if is_platform_admin(actor):
        return
    check_role_grant(actor, user.roles)
    if not is_new:
        check_role_grant(actor, previous_roles(user))
        groups = sa_inspect(user).attrs.groups.history
        if groups.added or groups.deleted:
            raise AccountError(_("You may not change the groups of a user."))
    elif getattr(user, "groups", None):
        raise AccountError(_("You may not change the groups of a user."))


def password_matches(user, password):
    user = _load(user)
    return bool(user is not None and user.password and password and check_password_hash(user.password, password))


def change_own_password(user, old_password, new_password):
    """A user changes their own password: the current one must be given and right."""
    if not password_matches(user, old_password):
        raise AccountError(_("The current password is wrong."))
    current_app.appbuilder.sm.reset_password(user.id, new_password)


def reset_user_password(actor, target_id, new_password):
    """An administrator sets another user's password (platform admin: anyone; operator admin: a
    user of its own operator holding no role the admin lacks; never its own: that needs the old
    password)."""
    sm = current_app.appbuilder.sm
    target = sm.get_user_by_id(target_id) if str(target_id or "").isdigit() else None
    if target is None:
        raise AccountError(_("No such user."))
    if target.id == actor.id and not is_platform_admin(actor):
        raise AccountError(_("Change your own password with your current password."))
    check_manage_user(actor, target)
    sm.reset_password(target.id, new_password)
