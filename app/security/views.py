"""System management screens: users (with operator, department, posts), departments, posts,
role data permissions. Roles themselves use FAB's role screen (operation permissions)."""
from flask import abort, flash, g, request
from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget
from flask_appbuilder.forms import DynamicForm
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.security.views import ResetMyPasswordView as FabResetMyPasswordView
from flask_appbuilder.security.views import ResetPasswordView as FabResetPasswordView
from flask_appbuilder.security.views import RoleModelView as FabRoleModelView
from flask_appbuilder.security.views import UserDBModelView
from flask_appbuilder.security.views import UserGroupModelView as FabUserGroupModelView
from flask_appbuilder.validators import PasswordComplexityValidator
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import PasswordField
from wtforms.validators import DataRequired, EqualTo, ValidationError

from app.extensions import db
from app.security.models import DATA_SCOPES, Department
from app.security.scope import SCOPE_FILTERS, ScopeFilter, check_item
from app.services import accounts, deletion
from app.views.base import CpmsModelView, DeleteReasonsMixin, ScopedSQLAInterface


class HeldRoleFilter(BaseFilter):
    """Roles the current user may hand out: any for a platform admin, else roles it holds or that
    give nothing beyond its own powers (``accounts.grantable_role_ids``). This shapes the dropdown;
    the write is checked again in ``accounts.check_user_write``."""

    name = "Grantable roles"
    arg_name = None

    def apply(self, query, value):
        ids = accounts.grantable_role_ids(g.user)
        if ids is None:
            return query
        return query.filter(self.model.id.in_(ids or [-1]))


def _current_password_matches(form, field):
    if not accounts.password_matches(g.user, field.data):
        raise ValidationError(_("The current password is wrong."))


class ChangeOwnPasswordForm(DynamicForm):
    old_password = PasswordField(_l("Current password"), validators=[DataRequired(), _current_password_matches],
                                 widget=BS3PasswordFieldWidget())
    password = PasswordField(_l("New password"), validators=[DataRequired(), PasswordComplexityValidator()],
                             widget=BS3PasswordFieldWidget())
    conf_password = PasswordField(_l("Confirm Password"),
                                  validators=[EqualTo("password", message=_l("Passwords must match"))],
                                  widget=BS3PasswordFieldWidget())


class ResetMyPasswordView(FabResetMyPasswordView):
    """Change one's own password: only with the current one (FAB's form does not ask for it).
    Same class name as FAB's, so the endpoint and the permission stay ``ResetMyPasswordView``."""

    form = ChangeOwnPasswordForm
    form_title = _l("Change my password")

    def form_post(self, form):
        try:
            accounts.change_own_password(g.user, form.old_password.data, form.password.data)
        except accounts.AccountError as exc:
            flash(str(exc), "danger")
            return None
        flash(str(self.message), "info")
        return None


class ResetPasswordView(FabResetPasswordView):
    """Set another user's password (``?pk=``): a platform admin anyone's, an operator admin only
    those of its own operator's users holding no role it lacks (FAB's view checks nothing)."""

    def _target_or_404(self):
        pk = request.args.get("pk", "")
        target = self.appbuilder.sm.get_user_by_id(pk) if pk.isdigit() else None
        if target is None or (target.id == g.user.id and not accounts.is_platform_admin(g.user)):
            abort(404)
        try:
            accounts.check_manage_user(g.user, target)
        except accounts.AccountError:
            abort(404)
        return target

    def form_get(self, form):
        self._target_or_404()

    def form_post(self, form):
        target = self._target_or_404()
        try:
            accounts.reset_user_password(g.user, target.id, form.password.data)
        except accounts.AccountError as exc:
            flash(str(exc), "danger")
            return None
        flash(str(self.message), "info")
        return None


class CpmsUserDBModelView(DeleteReasonsMixin, UserDBModelView):
    """用户管理. Operator admins only see and manage users of their own operator, never give a role
    beyond their own powers, and never touch a user holding one; groups are not offered."""

    base_filters = [["id", ScopeFilter, None]]
    page_size = 20
    list_columns = ["username", "nickname", "department", "phone", "operator", "active", "created_on"]
    search_columns = ["username", "nickname", "phone", "active", "operator", "department"]
    add_columns = ["username", "nickname", "first_name", "last_name", "email", "phone", "operator",
                   "department", "posts", "roles", "active", "password", "conf_password"]
    edit_columns = ["username", "nickname", "first_name", "last_name", "email", "phone", "operator",
                    "department", "posts", "roles", "active"]
    show_fieldsets = [
        (_l("User info"), {"fields": ["username", "nickname", "first_name", "last_name", "email", "phone",
                                      "active", "roles", "login_count"]}),
        (_l("Organisation"), {"fields": ["operator", "department", "posts"]}),
        (_l("Audit"), {"fields": ["created_on", "changed_on", "last_login", "fail_login_count"],
                       "expanded": False}),
    ]
    user_show_fieldsets = show_fieldsets
    validators_columns = {"roles": [DataRequired()]}  # posts replace FAB groups here
    add_form_query_rel_fields = edit_form_query_rel_fields = search_form_query_rel_fields = {
        "operator": SCOPE_FILTERS, "department": SCOPE_FILTERS, "roles": [["id", HeldRoleFilter, None]],
    }
    label_columns = dict(UserDBModelView.label_columns)
    label_columns.update({
        "nickname": _l("Nickname"), "phone": _l("Phone"), "operator": _l("Operator"),
        "department": _l("Department"), "posts": _l("Posts"), "created_on": _l("Created on"),
    })

    def pre_add(self, item):
        self._check(item, is_new=True)
        super().pre_add(item)

    def pre_update(self, item):
        self._check(item, is_new=False)
        super().pre_update(item)

    def pre_delete(self, item):
        self._refuse_unless(self._delete_rules, item)

    def _check(self, item, is_new):
        self._refuse_unless(self._write_rules, item, is_new)

    @staticmethod
    def _write_rules(item, is_new):
        check_item(item)
        accounts.check_user_write(g.user, item, is_new)

    @staticmethod
    def _delete_rules(item):
        check_item(item)
        accounts.check_manage_user(g.user, item)
        deletion.check_deletable(db.session, item)     # a user whose name is on money or history stays

    @staticmethod
    def _refuse_unless(rules, *args):
        """Run the rules; on refusal drop the pending change (FAB leaves the populated row in the
        session) and re-raise, so FAB shows the reason and writes nothing."""
        from app.extensions import db

        try:
            with db.session.no_autoflush:
                rules(*args)
        except Exception:
            db.session.rollback()
            raise


class RoleModelView(DeleteReasonsMixin, FabRoleModelView):
    """FAB's role screen (platform only); a role still held by users or groups is not deleted.
    (Same class name as FAB's: the permission and endpoint names stay.)"""

    def pre_delete(self, item):
        deletion.check_deletable(db.session, item)


class UserGroupModelView(DeleteReasonsMixin, FabUserGroupModelView):
    """FAB's group screen (platform only), with the same delete rules."""

    def pre_delete(self, item):
        deletion.check_deletable(db.session, item)


class DepartmentView(CpmsModelView):
    """部门管理: a tree; the list is ordered by the materialised path."""

    datamodel = ScopedSQLAInterface(Department)
    list_title = _l("Departments")
    show_title = add_title = edit_title = _l("Department")
    list_columns = ["name", "operator", "sort", "leader", "phone", "enabled", "created_at"]
    add_columns = edit_columns = ["parent", "name", "operator", "sort", "leader", "phone", "email", "enabled"]
    show_columns = ["name", "parent", "operator", "sort", "leader", "phone", "email", "enabled", "created_at"]
    search_columns = ["name", "enabled", "operator"]
    order_columns = ["name", "sort", "created_at"]
    base_order = ("path", "asc")
    label_columns = {"name": _l("Department name"), "parent": _l("Parent department"),
                     "operator": _l("Operator"), "sort": _l("Sort"), "leader": _l("Leader"),
                     "phone": _l("Phone"), "email": _l("Email"), "enabled": _l("Enabled"),
                     "created_at": _l("Created at")}
    add_form_query_rel_fields = edit_form_query_rel_fields = {"parent": SCOPE_FILTERS}

    def pre_add(self, item):
        self._check_parent(item)
        check_item(item)

    def pre_update(self, item):
        self._check_parent(item)
        check_item(item)

    def post_add(self, item):
        from app.services.departments import refresh_paths
        refresh_paths(self.datamodel.session, item)

    post_update = post_add

    @staticmethod
    def _check_parent(item):
        from app.services.departments import validate_parent
        validate_parent(item)


class PostView(CpmsModelView):
    from app.security.models import Post as _Post

    datamodel = ScopedSQLAInterface(_Post)
    list_title = _l("Posts")
    show_title = add_title = edit_title = _l("Post")
    list_columns = ["code", "name", "sort", "enabled", "created_at"]
    add_columns = edit_columns = ["code", "name", "sort", "enabled", "remark"]
    show_columns = ["code", "name", "sort", "enabled", "remark", "created_at"]
    search_columns = ["code", "name", "enabled"]
    order_columns = ["code", "name", "sort", "created_at"]
    base_order = ("sort", "asc")
    label_columns = {"code": _l("Post code"), "name": _l("Post name"), "sort": _l("Sort"),
                     "enabled": _l("Enabled"), "remark": _l("Remark"), "created_at": _l("Created at")}


class RoleDataScopeView(CpmsModelView):
    """数据权限: which rows a role's users may see (all / own operator / chosen stations)."""

    from app.security.models import RoleDataScope as _RDS

    datamodel = ScopedSQLAInterface(_RDS)
    list_title = _l("Data permissions")
    show_title = add_title = edit_title = _l("Data permission")
    choice_columns = {"scope": DATA_SCOPES}
    list_columns = ["role", "scope", "stations", "remark"]
    add_columns = edit_columns = show_columns = ["role", "scope", "stations", "remark"]
    search_columns = ["scope"]
    label_columns = {"role": _l("Role"), "scope": _l("Data scope"), "stations": _l("Stations"),
                     "remark": _l("Remark")}
