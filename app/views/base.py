"""Base classes every admin screen and model API inherits: data scope, choices, local time,
Excel export of the filtered list."""
import logging
from datetime import datetime

from flask import abort, flash, redirect
from flask_appbuilder import ModelRestApi, ModelView, expose, has_access
from flask_appbuilder.actions import action
from flask_appbuilder.exceptions import DatabaseException
from flask_appbuilder.models.sqla.filters import get_field_setup_query
from flask_appbuilder.security.decorators import permission_name
from flask_appbuilder.urltools import get_filter_args, get_order_args
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import DateTime
from sqlalchemy import inspect as sa_inspect
from wtforms import SelectField
from wtforms.validators import DataRequired, Optional

from app.security.scope import SCOPE_FILTERS, RelationScopeError, ScopedSQLAInterface, ScopeError, check_item
from app.services import clock, deletion, excel

log = logging.getLogger(__name__)

__all__ = ["CpmsModelView", "CpmsModelRestApi", "ScopedSQLAInterface", "local_time", "SCOPE_FILTERS",
           "get_field_setup_query"]


def local_time(value):
    """Naive UTC -> display string in TIMEZONE."""
    if not isinstance(value, datetime):
        return "" if value is None else value
    return clock.format_local(value)


def _choice_formatter(choices):
    labels = dict(choices)

    def fmt(value):
        label = labels.get(value)
        return _(label) if label else ("" if value is None else value)

    return fmt


def _is_scoped(model):
    cols = sa_inspect(model).columns
    return "operator_id" in cols or model.__tablename__ == "ev_operator"


def _relation_filters(model):
    """Dropdown filters: every related, scoped model only offers rows in the caller's scope."""
    out = {}
    for rel in sa_inspect(model).relationships:
        if _is_scoped(rel.mapper.class_):
            out[rel.key] = SCOPE_FILTERS
    return out


class ScopedMixin:
    """Scope for reads (base_filters), writes (check_item), dropdowns (*_query_rel_fields) and
    single rows (ScopedSQLAInterface.get). Choices columns become selects with labels.

    Deletes (app/services/deletion.py): a screen or REST resource over a money/history model
    (``HISTORY = True``) has no delete at all (no route, no ``can_delete``, no bulk delete action),
    whatever the subclass declares; any other delete runs ``deletion.check_deletable`` (refused,
    with the reason, while other rows use the row)."""

    choice_columns: dict = {}

    def _init_scope(self):
        model = self.datamodel.obj
        if _is_scoped(model):
            self.base_filters = list(getattr(self, "base_filters", None) or []) + SCOPE_FILTERS
        rel = _relation_filters(model)
        for attr in self._rel_attrs:
            merged = dict(rel)
            merged.update(getattr(self, attr, None) or {})
            setattr(self, attr, merged)

    def _check_write(self, item):
        """check_item; on refusal nothing of the half-populated row may reach the database."""
        try:
            check_item(item)
        except ScopeError:
            self.datamodel.session.rollback()
            raise

    def pre_add(self, item):
        self._check_write(item)

    def pre_update(self, item):
        self._check_write(item)

    def _init_history(self):
        """Before FAB's __init__: a history model gets no delete route and no ``can_delete``."""
        if deletion.is_history(self.datamodel.obj):
            self.exclude_route_methods = set(self.exclude_route_methods or ()) | {"delete"}
            if self.base_permissions is not None:
                self.base_permissions = [p for p in self.base_permissions if p != "can_delete"]

    @property
    def deletable(self):
        return not deletion.is_history(self.datamodel.obj)

    def pre_delete(self, item):
        check_item(item)
        deletion.check_deletable(self.datamodel.session, item)


class DeleteReasonsMixin:
    """FAB's delete with the reasons shown: a refusal (scope, rows still using it) or a use the
    database caught says why; never an empty alert, never the database's English."""

    deletable = True

    def _delete(self, pk):
        if not self.deletable:
            abort(405)
        try:
            item = self.datamodel.get(pk, self._base_filters)
        except ScopeError as exc:
            flash(str(exc), "danger")
            return
        if not item:
            abort(404)
        try:
            self.pre_delete(item)
        except Exception as exc:
            self.datamodel.session.rollback()
            flash(str(exc), "danger")
            return
        try:
            self.datamodel.delete(item)
        except DatabaseException:
            flash(deletion.in_use_message(item), "danger")
            return
        self.post_delete(item)
        flash(self.delete_row_message, "success")
        self.update_redirect()


class CpmsModelView(ScopedMixin, DeleteReasonsMixin, ModelView):
    page_size = 20
    list_template = "cpms/list.html"
    export_enabled = True
    _rel_attrs = ("add_form_query_rel_fields", "edit_form_query_rel_fields", "search_form_query_rel_fields")

    def __init__(self, *args, **kwargs):
        self._init_scope()
        self._init_choices()
        self._init_history()
        super().__init__(*args, **kwargs)
        self._init_time_formatters()
        if not self.deletable:  # no bulk delete over money/history rows
            self.actions.pop("muldelete", None)
            self.base_permissions = [p for p in self.base_permissions if p not in ("muldelete", "can_delete")]

    def _init_choices(self):
        self.formatters_columns = dict(getattr(self, "formatters_columns", None) or {})
        self.add_form_extra_fields = dict(getattr(self, "add_form_extra_fields", None) or {})
        self.edit_form_extra_fields = dict(getattr(self, "edit_form_extra_fields", None) or {})
        cols = sa_inspect(self.datamodel.obj).columns
        for name, choices in self.choice_columns.items():
            self.formatters_columns.setdefault(name, _choice_formatter(choices))
            required = name in cols and not cols[name].nullable
            field = SelectField(
                self.label_columns.get(name, name),
                choices=[(v, _l(label)) for v, label in choices],
                validators=[DataRequired() if required else Optional()],
            )
            self.add_form_extra_fields.setdefault(name, field)
            self.edit_form_extra_fields.setdefault(name, field)

    def _init_time_formatters(self):
        cols = sa_inspect(self.datamodel.obj).columns
        for col in cols:
            if isinstance(col.type, DateTime):
                self.formatters_columns.setdefault(col.key, local_time)

    @action("muldelete", _l("Delete"), _l("Delete the selected records?"), "fa-trash", single=False)
    def muldelete(self, items):
        """Bulk delete; rows outside the data scope arrive as None and are skipped."""
        items = [it for it in (items if isinstance(items, list) else [items]) if it is not None]
        deleted = 0
        for item in items if self.deletable else []:  # (the action is not even offered then)
            try:
                check_item(item)
                self.pre_delete(item)
                self.datamodel.delete(item)
                deleted += 1
            except DatabaseException:
                self.datamodel.session.rollback()
                flash(f"{item}: {deletion.in_use_message(item)}", "danger")
            except Exception as exc:  # show why a row was kept, go on with the others
                self.datamodel.session.rollback()
                flash(f"{item}: {exc}", "danger")
        if deleted:
            flash(_("%(n)d record(s) deleted.", n=deleted), "success")
        self.update_redirect()
        return redirect(self.get_redirect())

    # ----- Excel export of the filtered list -------------------------------------------------
    def export_rows(self):
        """(header, rows iterator) for the current request's filters, in scope, streamed."""
        get_filter_args(self._filters)
        order_column, order_direction = get_order_args().get(self.__class__.__name__, ("", ""))
        joined = self._filters.get_joined_filters(self._base_filters)
        dm = self.datamodel
        query = dm.apply_all(dm.session.query(dm.obj), joined, order_column or "", order_direction or "")
        columns = list(self.list_columns)
        header = [str(self.label_columns.get(c, c)) for c in columns]

        def rows():
            for item in query.yield_per(1000):
                yield [self._export_value(item, c) for c in columns]

        return header, rows()

    def _export_value(self, item, column):
        value = item
        for part in column.split("."):
            value = getattr(value, part, None) if value is not None else None
        if callable(value):
            value = value()
        fmt = self.formatters_columns.get(column)
        if fmt is not None and value is not None and not hasattr(value, "as_tuple"):
            value = fmt(value)
        return excel.cell_value(value)

    @expose("/export/")
    @has_access
    @permission_name("export")
    def export(self):
        if not self.export_enabled:
            flash(_("Export is not available for this list."), "warning")
            return redirect(self.get_redirect())
        header, rows = self.export_rows()
        name = f"{self.__class__.__name__.removesuffix('View').lower()}.xlsx"
        return excel.send_rows(name, str(self.list_title or name), header, rows)


class CpmsModelRestApi(ScopedMixin, ModelRestApi):
    """Model REST API with the same data scope as the screens (JWT via /api/v1/security/login)."""

    allow_browser_login = False
    page_size = 20
    _rel_attrs = ("add_query_rel_fields", "edit_query_rel_fields")

    def __init__(self, *args, **kwargs):
        self._init_scope()
        self._init_history()
        super().__init__(*args, **kwargs)
        for col in set(self.list_columns) | set(self.show_columns) | set(self.add_columns or []):
            self.description_columns.setdefault(col, col.replace("_", " "))

    def _scoped(self, fn, *args):
        try:
            return fn(*args)
        except RelationScopeError as exc:  # a relation outside the scope / of another operator
            self.datamodel.session.rollback()
            return self.response_422(message={exc.field: [str(exc)]})
        except ScopeError as exc:
            self.datamodel.session.rollback()
            return self.response(403, message=str(exc))
        except deletion.DeletionRefused as exc:  # still used by other rows: the reason, nothing deleted
            self.datamodel.session.rollback()
            return self.response_422(message=str(exc))

    def post_headless(self):
        return self._scoped(super().post_headless)

    def put_headless(self, pk):
        return self._scoped(super().put_headless, pk)

    def delete_headless(self, pk):
        return self._scoped(self._delete_checked, pk)

    def _delete_checked(self, pk):
        """FAB's delete_headless without the database error text: a refusal says why."""
        if not self.deletable:
            return self.response(405, message="Method Not Allowed")
        item = self.datamodel.get(pk, self._base_filters)
        if not item:
            return self.response_404()
        self.pre_delete(item)
        try:
            self.datamodel.delete(item)
        except DatabaseException:
            return self.response_422(message=deletion.in_use_message(item))
        self.post_delete(item)
        return self.response(200, message="OK")
