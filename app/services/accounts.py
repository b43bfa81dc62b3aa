"""Roles, permissions and the initial admin account."""
import secrets

from flask import current_app
from flask_appbuilder.security.manager import BaseSecurityManager

ROLE_OPERATOR_ADMIN = "OperatorAdmin"
ROLE_OPERATOR_STAFF = "OperatorStaff"

# View menus (class permission names and menu names) only platform admins may use.
PLATFORM_ONLY = {
    "RoleModelView", "List Roles", "PermissionModelView", "Base Permissions", "ViewMenuModelView",
    "Views/Menus", "PermissionViewModelView", "Permission on Views/Menus", "RoleDataScopeView",
    "Data permissions", "PostView", "UserStatsChartView", "User's Statistics", "MenuApi",
    "SecurityApi", "OpenApi", "SwaggerView", "UserInfoEditView",
}
# Global catalogues: tenants read them, only platform admins write them.
PLATFORM_WRITE_ONLY = {
    "OperatorView", "ManufacturerView", "PileModelView", "FaultTypeView", "PaymentGatewayView",
    "OperatorApi",
}
# Explicit grants: not part of any default tenant role (e.g. seeing partner secrets in clear).
ADMIN_ONLY_PERMS = {"can_show_secrets"}
READ_PERMS = {"menu_access", "can_list", "can_show", "can_export", "can_get", "can_info", "can_read",
              "can_download", "can_userinfo", "resetmypassword", "can_this_form_get",
              "can_this_form_post", "userinfoedit"}
WRITE_PERMS_ON_OWN_ACCOUNT = {"can_this_form_get", "can_this_form_post", "resetmypassword", "can_userinfo"}


def sync_roles_and_permissions():
    """Create FAB's roles and permissions for every registered view, then our tenant roles."""
    ab = current_app.appbuilder
    sm = ab.sm
    BaseSecurityManager.create_db(sm)
    ab.add_permissions(update_perms=True)
    session = sm.session
    all_pvms = session.query(sm.permissionview_model).all()
    admin = sm.find_role(ROLE_OPERATOR_ADMIN) or sm.add_role(ROLE_OPERATOR_ADMIN)
    staff = sm.find_role(ROLE_OPERATOR_STAFF) or sm.add_role(ROLE_OPERATOR_STAFF)
    admin_perms, staff_perms = [], []
    for pvm in all_pvms:
        view, perm = pvm.view_menu.name, pvm.permission.name
        if view in PLATFORM_ONLY and perm not in WRITE_PERMS_ON_OWN_ACCOUNT:
            continue
        if view in PLATFORM_WRITE_ONLY and perm not in READ_PERMS:
            continue
        if perm in ADMIN_ONLY_PERMS:
            continue
        admin_perms.append(pvm)
        if perm in READ_PERMS and not perm.startswith("can_command"):
            staff_perms.append(pvm)
    admin.permissions = admin_perms
    staff.permissions = staff_perms
    session.commit()


def ensure_admin(username=None, password=None):
    """Create the platform admin if missing. Returns (username, password or None if it existed)."""
    sm = current_app.appbuilder.sm
    username = username or current_app.config.get("ADMIN_USERNAME") or "admin"
    if sm.find_user(username=username):
        return username, None
    password = password or current_app.config.get("ADMIN_PASSWORD") or secrets.token_urlsafe(12)
    role = sm.find_role(sm.auth_role_admin)
    user = sm.add_user(username, "Platform", "Admin", f"{username}@example.com", role, password)
    if not user:
        raise RuntimeError("could not create the admin user")
    return username, password
