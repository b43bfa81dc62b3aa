"""Data scope (数据权限): the one place that knows who may see and write which rows.

A user's scope comes from their roles (own roles and, through posts, nothing more):
- any role with scope ``all``  -> every row of every operator;
- else any role with ``operator`` (the default for a role without a scope row) -> every row
  of the user's operator;
- else ``stations`` roles -> the union of their chosen stations (of the user's operator).
A user without operator and without an ``all`` role sees nothing.

Every list, show, edit, delete, action, dropdown, export and REST resource goes through
:class:`ScopeFilter` / :func:`check_item` / :class:`ScopedSQLAInterface`.

Writes: :func:`check_item` is the one check for admin forms, REST, services and jobs. Besides the
row itself, every many-to-one and many-to-many relation of the row whose target is operator-owned
(derived from the mapper, never listed per view) must point at a row in the writer's scope and of the
row's own operator; a cross-operator link is refused for everyone, the platform admin included.

Outside a web request there is no user: :func:`current_scope` then answers only inside
:func:`platform_scope` (a named platform job: everything) or :func:`acting_as` (a job acting for a
user, an operator or a partner) and raises :class:`NoScopeError` otherwise.
"""
import logging
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import wraps

from flask import current_app, g, has_request_context
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l
from sqlalchemy import false, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import MANYTOMANY, MANYTOONE
from sqlalchemy.orm.base import NO_VALUE

from app.security.models import SCOPE_ALL, SCOPE_OPERATOR, SCOPE_STATIONS

log = logging.getLogger(__name__)


class ScopeError(Exception):
    """A write outside the caller's data scope."""


class RelationScopeError(ScopeError):
    """A relation of a written row points at a row outside the writer's scope or of another operator.
    ``field`` names the relation (REST answers ``{"message": {field: [text]}}``)."""

    def __init__(self, field, message):
        self.field = field
        self.message = message
        super().__init__(field, message)

    def __str__(self):
        return str(self.message)


class NoScopeError(RuntimeError):
    """Data scope asked for outside a request, without :func:`platform_scope` / :func:`acting_as`."""


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


def scope_for_operator(operator_id, station_ids=None):
    """The scope of one operator (optionally of some of its stations), e.g. for a partner's job."""
    if operator_id is None:
        return DENY
    return Scope(operator_id=operator_id, station_ids=None if station_ids is None else frozenset(station_ids))


@dataclass(frozen=True)
class _Acting:
    name: str
    scope: Scope


_ACTING: ContextVar = ContextVar("cpms_acting_scope", default=None)


@contextmanager
def acting_as(scope, name="acting"):
    """Run the block with an explicit scope (a job acting for a user, an operator or a partner).
    Takes precedence over the request user's scope; blocks nest."""
    if not isinstance(scope, Scope):
        raise TypeError("acting_as() needs a Scope (scope_for_user / scope_for_operator / DENY)")
    token = _ACTING.set(_Acting(name, scope))
    try:
        yield scope
    finally:
        _ACTING.reset(token)


def platform_scope(name):
    """Run the block as the platform itself (every operator): only for named platform jobs, e.g.
    ``with platform_scope("settlement"):``."""
    if not name or not isinstance(name, str):
        raise ValueError("platform_scope() needs the job's name")
    return acting_as(EVERYTHING, name=f"platform:{name}")


def platform_job(name):
    """Decorator for an RQ job / CLI command / entry point run by the platform (see
    :func:`platform_scope`). The wrapped function keeps its name, so RQ finds it by import path."""

    def decorate(fn):
        @wraps(fn)
        def wrapper(*args, **kwargs):
            with platform_scope(name):
                return fn(*args, **kwargs)

        wrapper.platform_scope_name = name
        return wrapper

    return decorate


def acting_name():
    """Name of the explicit scope in force ("platform:settlement", ...), or None."""
    acting = _ACTING.get()
    return acting.name if acting is not None else None


def current_scope():
    """The explicit scope of :func:`acting_as` / :func:`platform_scope` if one is in force, else the
    request user's scope (cached per request). Outside both: :class:`NoScopeError`, never
    "everything" by default."""
    acting = _ACTING.get()
    if acting is not None:
        return acting.scope
    if not has_request_context():
        raise NoScopeError(
            "No data scope outside a web request: run the job inside platform_scope('<job name>') "
            "(platform jobs) or acting_as(scope) (jobs acting for a user, an operator or a partner).")
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


def _stated_operator(item, rels):
    """The operator the written row says it belongs to: the operator assigned in this write, else
    its operator column (None for a new row without one)."""
    if "operator" in rels:
        added = sa_inspect(item).attrs["operator"].history.added
        if added and added[0] is not None:
            return added[0].id
    op, _ = _columns(type(item))
    return getattr(item, op.key) if op is not None else None


def _sync_operator_from_relations(item):
    """Denormalise operator_id (and station_id) from the parent the item hangs on (loaded or given
    by foreign key only). A parent of another operator than the one the row states is refused: the
    row is not silently moved to the parent's operator."""
    mapper = sa_inspect(type(item))
    rels = mapper.relationships
    for parent_name in ("connector", "pile", "station", "member", "organization", "order", "template"):
        if parent_name not in rels:
            continue
        parent = getattr(item, parent_name)
        if parent is None:
            state = sa_inspect(item)
            session = state.session or current_app.appbuilder.session
            with session.no_autoflush:
                found = _many_to_one_targets(item, rels[parent_name], state, session)
            parent = found[0] if found else None
        if parent is None:
            continue
        if hasattr(parent, "operator_id") and "operator" in rels and parent.operator_id is not None:
            stated = _stated_operator(item, rels)
            if stated is not None and stated != parent.operator_id:
                raise RelationScopeError(parent_name, _l(
                    "%(field)s: the chosen record belongs to another operator.", field=_field_label(parent_name)))
            item.operator = parent.operator
            item.operator_id = parent.operator_id
        if parent_name in ("pile", "connector") and "station" in rels and getattr(parent, "station", None):
            item.station = parent.station
        return


def _operator_of(obj):
    op, _ = _columns(type(obj))
    return None if op is None else getattr(obj, op.key)


def _owned(model):
    """True for operator-owned models (an operator column per :func:`_columns`)."""
    return getattr(model, "__tablename__", None) is not None and _columns(model)[0] is not None


def _changed(state, key):
    return state.attrs[key].history.has_changes()


def _own_operator_relation(model, rel):
    """The item's own ``operator`` relation (checked as the row itself, not as a link)."""
    op, _ = _columns(model)
    return op is not None and any(col.key == op.key for col in rel.local_columns) and \
        rel.mapper.class_.__tablename__ == "ev_operator"


def _many_to_one_targets(item, rel, state, session):
    """Objects a many-to-one will point at after the write: the assigned object, else the row of
    the foreign-key value (REST or a service may set ``price_template_id`` only)."""
    attr = state.attrs[rel.key]
    added = attr.history.added
    if added:
        return [obj for obj in added if obj is not None]
    mapper = state.mapper
    values = {}
    for local, remote in rel.local_remote_pairs:
        values[remote] = getattr(item, mapper.get_property_by_column(local).key)
    if any(v is None for v in values.values()):
        return []
    loaded = attr.loaded_value
    target = rel.mapper
    if loaded is not NO_VALUE and loaded is not None and all(
            getattr(loaded, target.get_property_by_column(remote).key) == v for remote, v in values.items()):
        return [loaded]
    if set(values) == set(target.primary_key):
        obj = session.get(target.class_, tuple(values[col] for col in target.primary_key))
    else:
        obj = session.scalars(select(target.class_).filter_by(
            **{target.get_property_by_column(remote).key: v for remote, v in values.items()}).limit(1)).first()
    return [obj] if obj is not None else []


def _collection_targets(item, rel, state):
    value = state.attrs[rel.key].loaded_value
    if value is NO_VALUE:
        value = getattr(item, rel.key)
    return [obj for obj in (value or []) if obj is not None]


def relation_targets(item, session=None):
    """``[(field, related object)]`` of every operator-owned many-to-one / many-to-many target the
    written ``item`` links to after the write. Every link is checked, not only the changed ones: FAB
    and services autoflush between setting a link and the check, which erases the change history.
    Derived from the mapper: no list per model."""
    model = type(item)
    mapper = sa_inspect(model)
    state = sa_inspect(item)
    if session is None:
        session = state.session or current_app.appbuilder.session
    out = []
    with session.no_autoflush:
        for rel in mapper.relationships:
            if rel.viewonly or not _owned(rel.mapper.class_) or _own_operator_relation(model, rel):
                continue
            if rel.direction is MANYTOONE:
                targets = _many_to_one_targets(item, rel, state, session)
            elif rel.direction is MANYTOMANY:
                targets = _collection_targets(item, rel, state)
            else:
                continue
            out.extend((rel.key, obj) for obj in targets)
    return out


def _field_label(field):
    """The relation's name as the screens label it ("price_template" -> "Price template", translated
    where the catalogue has it)."""
    from flask_babel import gettext

    text = field.replace("_", " ").capitalize()
    try:
        return gettext(text)  # relation labels are in the catalogue (the screens use them)
    except Exception:  # noqa: BLE001 - outside an app context: the English label
        return text


def check_relations(item, scope=None, session=None):
    """Every operator-owned row the written ``item`` links to must be in ``scope`` and belong to the
    item's own operator (for a row without operator: all links to one operator). Rows of a table
    without operator column (global catalogues: pile models, manufacturers, ...) are free to link.
    Raises :class:`RelationScopeError` naming the field."""
    scope = scope or current_scope()
    owner = _operator_of(item) if _owned(type(item)) else None
    operators = set()
    for field, target in relation_targets(item, session):
        label = _field_label(field)
        if not in_scope(target, scope):
            raise RelationScopeError(field, _l(
                "%(field)s: the chosen record is outside your data scope.", field=label))
        target_op = _operator_of(target)
        if target_op is None:
            continue  # a platform row (e.g. the platform's root department)
        if owner is not None:
            if target_op != owner:
                raise RelationScopeError(field, _l(
                    "%(field)s: the chosen record belongs to another operator.", field=label))
            continue
        operators.add(target_op)
        if len(operators) > 1:
            raise RelationScopeError(field, _l(
                "%(field)s: the chosen records belong to different operators.", field=label))


def check_item(item, scope=None):
    """Called before every write (admin forms, REST, services, jobs). Fills operator from the parent
    or the caller's operator, refuses a row outside the caller's scope and a relation that points
    outside it or at another operator's row (:class:`ScopeError` / :class:`RelationScopeError`).
    Nothing is flushed meanwhile: a refused, half-populated row never reaches the database."""
    session = sa_inspect(item).session or current_app.appbuilder.session
    with session.no_autoflush:
        _check_item(item, scope or current_scope())


def _check_item(item, scope):
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
    elif op is not None and "operator" in sa_inspect(type(item)).relationships \
            and _changed(sa_inspect(item), "operator") and item.operator is not None:
        item.operator_id = item.operator.id  # the assigned operator decides, as it will at flush
    check_relations(item, scope)
    if not in_scope(item, scope):
        raise ScopeError("Not allowed: the record belongs to an operator or station outside your data scope.")


class ScopeFilter(BaseFilter):
    """Base filter and dropdown filter: ``[["id", ScopeFilter, None]]``."""

    name = "Data scope"
    arg_name = None

    def apply(self, query, value):
        return apply_scope(query, self.model)


SCOPE_FILTERS = [["id", ScopeFilter, None]]


class _DatabaseErrorReason(Exception):
    """The cause REST shows for a failed write: the driver's first line, no SQL, no parameters."""


class ScopedSQLAInterface(SQLAInterface):
    """``get()`` re-checks the scope: closes the action / action_post / list/<pk> gap.

    ``add``/``edit``/``delete`` never put the statement's parameters (partner secrets, personal
    data) into the log, a flash message or a REST answer: a database error is reduced to the
    driver's first line (e.g. the violated constraint)."""

    def _db_error(self, action, ex):
        from flask_appbuilder.exceptions import DatabaseException

        orig = getattr(ex, "orig", None)
        lines = str(orig if orig is not None else type(ex).__name__).strip().splitlines()
        reason = lines[0] if lines else type(ex).__name__
        log.warning("%s of %s failed: %s", action, self.obj.__name__, reason)
        self.session.rollback()
        raise DatabaseException(reason) from _DatabaseErrorReason(reason)

    def add(self, item, commit=True):
        from sqlalchemy.exc import SQLAlchemyError

        try:
            self.session.add(item)
            if commit:
                self.session.commit()
        except SQLAlchemyError as ex:
            self._db_error("add", ex)

    def edit(self, item, commit=True):
        from sqlalchemy.exc import SQLAlchemyError

        try:
            self.session.merge(item)
            if commit:
                self.session.commit()
        except SQLAlchemyError as ex:
            self._db_error("edit", ex)

    def delete(self, item, commit=True):
        from sqlalchemy.exc import SQLAlchemyError

        try:
            self._delete_files(item)
            self.session.delete(item)
            if commit:
                self.session.commit()
        except SQLAlchemyError as ex:
            self._db_error("delete", ex)

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
        if item is None or _columns(type(item))[0] is None:
            return item  # global catalogues (no operator column) are readable by everyone
        return item if in_scope(item) else None  # outside a request: the explicit scope (or NoScopeError)


def _refuse_out_of_scope_choices():
    """Scoped dropdowns: FAB's QuerySelectMultipleField checks for submitted ids outside its (scoped)
    choices before it has resolved them, so such ids were dropped silently and the collection was
    saved without them (another operator's station in a campaign: the campaign lost its stations).
    Resolve first, so the form answers "Not a valid choice" and writes nothing."""
    from flask_appbuilder.fields import QuerySelectMultipleField

    original = QuerySelectMultipleField.pre_validate
    if getattr(original, "cpms_resolves_first", False):
        return

    @wraps(original)
    def pre_validate(self, form):
        self.data  # noqa: B018 - resolves the submitted ids, marking ids outside the choices invalid
        return original(self, form)

    pre_validate.cpms_resolves_first = True
    QuerySelectMultipleField.pre_validate = pre_validate


_refuse_out_of_scope_choices()
