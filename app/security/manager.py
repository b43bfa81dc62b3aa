"""Security manager: our user model and screens; API-key users re-loaded as our user.

Permission checks are answered from the permissions of the user's roles, loaded once per request
(FAB asks the database once per menu entry, link and button: ~100 queries a page). The cache hangs
on the request object itself (not ``g``, which an app context held open across requests would
share), so a role or permission changed by an admin counts from the next request on; outside a
request nothing is cached.
"""
from flask import g, has_request_context, request
from flask_appbuilder.security.sqla.manager import SecurityManager
from flask_appbuilder.security.sqla.models import (
    Permission,
    PermissionView,
    ViewMenu,
    assoc_permissionview_role,
)
from sqlalchemy import select

from app.security.models import CpmsUser
from app.security.sessions import AuthDBView
from app.security.views import (
    CpmsUserDBModelView,
    ResetMyPasswordView,
    ResetPasswordView,
    RoleModelView,
    UserGroupModelView,
)


class CpmsSecurityManager(SecurityManager):
    user_model = CpmsUser
    userdbmodelview = CpmsUserDBModelView
    rolemodelview = RoleModelView              # deletes refused while users or groups hold the role
    groupmodelview = UserGroupModelView
    userstatschartview = None  # FAB's chart loads Google's CDN (fab-guide §4)
    resetmypasswordview = ResetMyPasswordView  # asks for the current password
    resetpasswordview = ResetPasswordView      # others' passwords: platform admin / own operator only

    authdbview = AuthDBView  # logout by POST only (app/security/sessions.py)

    def validate_api_key(self, api_key_string):
        user = super().validate_api_key(api_key_string)
        if user is not None and not isinstance(user, self.user_model):
            user = self.get_user_by_id(user.id)
            g.user = user
        return user

    def get_user_roles(self, user):
        """FAB counts the roles of a user's groups too. Groups are platform-only and posts replace
        them here, so a user of an operator only ever has the roles given to it directly: no group
        membership can lift a tenant to a role it was not granted."""
        if not getattr(user, "is_authenticated", False):
            return super().get_user_roles(user)
        if not hasattr(user, "operator_id"):  # FAB relations return the base User (fab-guide §2.1)
            user = self.get_user_by_id(user.id) or user
        if getattr(user, "operator_id", None) is not None:
            return list(user.roles)
        return super().get_user_roles(user)

    # --- permissions of roles, loaded once per request ---------------------------------------------------

    def _role_permissions(self, role_ids) -> set[tuple[str, str]]:
        """{(permission, view_menu)} granted to any of ``role_ids`` (one query per request and role set)."""
        key = tuple(sorted(set(role_ids)))
        cache = _request_cache()
        hit = cache.get(key)
        if hit is None:
            rows = self.session.execute(
                select(Permission.name, ViewMenu.name)
                .select_from(assoc_permissionview_role)
                .join(PermissionView, PermissionView.id == assoc_permissionview_role.c.permission_view_id)
                .join(Permission, Permission.id == PermissionView.permission_id)
                .join(ViewMenu, ViewMenu.id == PermissionView.view_menu_id)
                .where(assoc_permissionview_role.c.role_id.in_(key))).all()
            hit = cache[key] = {(perm, view) for perm, view in rows}
        return hit

    def exist_permission_on_roles(self, view_name, permission_name, role_ids) -> bool:
        return (permission_name, view_name) in self._role_permissions(role_ids)

    def _get_user_permission_view_menus(self, user, permission_name, view_menus_name):
        roles = [self.get_public_role()] if user is None else self.get_user_roles(user)
        roles = [role for role in roles if role is not None]
        result = {name for role in roles if role.name in self.builtin_roles for name in view_menus_name
                  if self._has_access_builtin_roles(role, permission_name, name)}
        db_role_ids = [role.id for role in roles if role.name not in self.builtin_roles]
        if db_role_ids:
            granted = self._role_permissions(db_role_ids)
            names = view_menus_name if view_menus_name is not None else {v for _, v in granted}
            result.update(name for name in names if (permission_name, name) in granted)
        return result

    def is_item_public(self, permission_name, view_name):
        role = self.get_public_role()
        return role is not None and (permission_name, view_name) in self._role_permissions([role.id])

    def get_public_role(self):
        cache = _request_cache()
        if "public_role" not in cache:
            cache["public_role"] = super().get_public_role()
        return cache["public_role"]


def _request_cache() -> dict:
    """A dict living as long as the current request (a fresh, unshared one outside requests)."""
    if not has_request_context():
        return {}
    req = request._get_current_object()
    cache = getattr(req, "_cpms_permission_cache", None)
    if cache is None:
        cache = req._cpms_permission_cache = {}
    return cache
