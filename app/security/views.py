"""System management screens: users (with operator, department, posts), departments, posts,
role data permissions. Roles themselves use FAB's role screen (operation permissions)."""
from flask_appbuilder.security.views import UserDBModelView
from flask_babel import lazy_gettext as _l
from wtforms.validators import DataRequired

from app.security.models import DATA_SCOPES, Department
from app.security.scope import SCOPE_FILTERS, GrantableRoleFilter, ScopeError, ScopeFilter, check_item
from app.views.base import CpmsModelView, ScopedSQLAInterface


class CpmsUserDBModelView(UserDBModelView):
    """用户管理. Operator staff only see and create users of their own operator."""

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
        "operator": SCOPE_FILTERS, "department": SCOPE_FILTERS, "roles": [["id", GrantableRoleFilter, None]],
    }
    label_columns = dict(UserDBModelView.label_columns)
    label_columns.update({
        "nickname": _l("Nickname"), "phone": _l("Phone"), "operator": _l("Operator"),
        "department": _l("Department"), "posts": _l("Posts"), "created_on": _l("Created on"),
    })

    def pre_add(self, item):
        self._check(item)
        super().pre_add(item)

    def pre_update(self, item):
        self._check(item)
        super().pre_update(item)

    def pre_delete(self, item):
        check_item(item)

    @staticmethod
    def _check(item):
        check_item(item)
        from app.security.scope import current_scope

        if not current_scope().all:
            from flask import current_app

            from app.extensions import db

            admin = current_app.config.get("AUTH_ROLE_ADMIN", "Admin")
            with db.session.no_autoflush:
                for role in item.roles:
                    ds = getattr(role, "data_scope", None)
                    if role.name == admin or (ds is not None and ds.scope == "all"):
                        raise ScopeError(f"You may not grant the role {role.name}.")


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
