"""Data scope (数据权限): the one place that knows who may see and write which rows.

A user's scope comes from their roles (own roles and, through posts, nothing more):
- any role with scope ``all``  -> every row of every operator;
- else any role with ``operator`` (the default for a role without a scope row) -> every row
  of the user's operator;
- else ``stations`` roles -> the union of their chosen stations (of the user's operator).
A user without operator and without an ``all`` role sees nothing.

Every list, show, edit, delete, action, dropdown, export and REST resource goes through
:class:`ScopeFilter` / :func:`check_item` / :class:`ScopedSQLAInterface`.
"""
from dataclasses import dataclass

from flask import current_app, g, has_request_context
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.models.sqla.interface import SQLAInterface
from sqlalchemy import false
from sqlalchemy import inspect as sa_inspect

from app.security.models import SCOPE_ALL, SCOPE_OPERATOR, SCOPE_STATIONS


class ScopeError(Exception):
    """A write outside the caller's data scope."""


@dataclass(frozen=True)
class Scope:
    all: bool = False
    operator_id: int | None = None
    station_ids: frozenset | None = None  # None: every station of the operator

    @property
    def deny(self):
        return not self.all and self.operator_id is None


DENY = Scope()
EVERYTHING = Scope(all=True)


def role_scope(role):
    ds = getattr(role, "data_scope", None)
    if ds is not None:
        return ds.scope, {s.id for s in ds.stations}
    if role.name == current_app.config.get("AUTH_ROLE_ADMIN", "Admin"):
        return SCOPE_ALL, set()
    return SCOPE_OPERATOR, set()


def scope_for_user(user):
    if user is None or not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", True):
        return DENY
    sm = current_app.appbuilder.sm
    if not isinstance(user, sm.user_model):  # FAB relations return the base User (fab-guide §2.1)
        user = sm.get_user_by_id(user.id)
    kinds, stations = set(), set()
    for role in sm.get_user_roles(user):
        kind, ids = role_scope(role)
        kinds.add(kind)
        stations |= ids
    if SCOPE_ALL in kinds:
        return EVERYTHING
    if user.operator_id is None:
        return DENY
    if SCOPE_OPERATOR in kinds:
        return Scope(operator_id=user.operator_id)
    if SCOPE_STATIONS in kinds:
        return Scope(operator_id=user.operator_id, station_ids=frozenset(stations))
    return DENY


def current_scope():
    """The request user's scope (cached per request). Outside a request: everything (jobs, CLI)."""
    if not has_request_context():
        return EVERYTHING
    user = getattr(g, "user", None)
    key = getattr(user, "id", None) if getattr(user, "is_authenticated", False) else None
    cached = g.get("cpms_scope")
    if cached is None or cached[0] != key:  # keyed by user: g may outlive a request in tests
        cached = g.cpms_scope = (key, scope_for_user(user))
    return cached[1]


def _columns(model):
    """(operator column, station column) of a model, or None where it has none."""
    cols = sa_inspect(model).columns
    name = model.__tablename__
    if name == "ev_operator":
        return cols["id"], None
    if name == "ev_station":
        return cols["operator_id"], cols["id"]
    op = cols["operator_id"] if "operator_id" in cols else None
    st = cols["station_id"] if "station_id" in cols else None
    return op, st


def apply_scope(query, model, scope=None):
    """Restrict a query (legacy Query or select()) on ``model`` to ``scope``."""
    scope = scope or current_scope()
    if scope.all:
        return query
    op, st = _columns(model)
    if scope.deny or op is None:
        return query.filter(false()) if hasattr(query, "filter") else query.where(false())
    clauses = [op == scope.operator_id]
    if scope.station_ids is not None and st is not None:
        clauses.append(st.in_(scope.station_ids or [-1]))
    return query.filter(*clauses) if hasattr(query, "filter") else query.where(*clauses)


def in_scope(item, scope=None):
    scope = scope or current_scope()
    if scope.all:
        return True
    if scope.deny:
        return False
    model = type(item)
    op, st = _columns(model)
    if op is None:
        return False
    if getattr(item, op.key) != scope.operator_id:
        return False
    if scope.station_ids is not None and st is not None:
        return getattr(item, st.key) in scope.station_ids
    return True


def _sync_operator_from_relations(item):
    """Denormalise operator_id (and station_id) from the parent the item hangs on."""
    rels = sa_inspect(type(item)).relationships
    for parent_name in ("connector", "pile", "station", "member", "organization", "order", "template"):
        if parent_name not in rels:
            continue
        parent = getattr(item, parent_name)
        if parent is None:
            continue
        if hasattr(parent, "operator_id") and "operator" in rels and parent.operator_id is not None:
            item.operator = parent.operator
            item.operator_id = parent.operator_id
        if parent_name in ("pile", "connector") and "station" in rels and getattr(parent, "station", None):
            item.station = parent.station
        return


def check_item(item, scope=None):
    """Called before every write. Fills operator from the parent or the caller's operator,
    and refuses a row outside the caller's scope with :class:`ScopeError`."""
    scope = scope or current_scope()
    _sync_operator_from_relations(item)
    op, _ = _columns(type(item))
    if op is not None and not scope.all and not scope.deny and type(item).__tablename__ != "ev_operator":
        rels = sa_inspect(type(item)).relationships
        if getattr(item, op.key) is None and ("operator" not in rels or item.operator is None):
            sm_session = current_app.appbuilder.session
            from app.models import Operator

            item.operator = sm_session.get(Operator, scope.operator_id)
        elif "operator" in rels and item.operator is not None:
            item.operator_id = item.operator.id
    if not in_scope(item, scope):
        raise ScopeError("Not allowed: the record belongs to an operator or station outside your data scope.")


class ScopeFilter(BaseFilter):
    """Base filter and dropdown filter: ``[["id", ScopeFilter, None]]``."""

    name = "Data scope"
    arg_name = None

    def apply(self, query, value):
        return apply_scope(query, self.model)


SCOPE_FILTERS = [["id", ScopeFilter, None]]


class ScopedSQLAInterface(SQLAInterface):
    """``get()`` re-checks the scope: closes the action / action_post / list/<pk> gap."""

    def is_nullable(self, col_name):
        """A checkbox always has a value: never make FAB require a boolean to be ticked."""
        try:
            from sqlalchemy import Boolean

            if isinstance(self.list_columns[col_name].type, Boolean):
                return True
        except (KeyError, AttributeError):
            pass
        return super().is_nullable(col_name)

    def get(self, id, filters=None, *args, **kwargs):
        item = super().get(id, filters, *args, **kwargs)
        if item is None or not has_request_context() or _columns(type(item))[0] is None:
            return item  # global catalogues (no operator column) are readable by everyone
        return item if in_scope(item) else None


class GrantableRoleFilter(BaseFilter):
    """Roles an operator's staff may hand out: never the platform admin role, nor a role whose
    data scope is 'all'."""

    name = "Grantable roles"
    arg_name = None

    def apply(self, query, value):
        if current_scope().all:
            return query
        from app.security.models import RoleDataScope

        admin = current_app.config.get("AUTH_ROLE_ADMIN", "Admin")
        all_scope = query.session.query(RoleDataScope.role_id).filter(RoleDataScope.scope == SCOPE_ALL)
        return query.filter(self.model.name != admin, ~self.model.id.in_(all_scope))
