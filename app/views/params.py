"""Request arguments checked before any view runs, so bad input gets a clear 4xx, never a 500.

One mechanism for every view, ours (CpmsModelView / CpmsModelRestApi) and Flask-AppBuilder's own
(users, roles, permissions, ...):

- URL converter: ``<int:...>`` only matches numbers that fit a PostgreSQL ``integer``; a bigger one
  is a 404 (no route), not an overflow inside the query.
- ``<pk>`` of a model view or model API must be a key its table can hold: else 404.
- List screens: ``page_*`` / ``psize_*`` must be small non-negative numbers (else 400), ``psize``
  is capped (``CPMS_MAX_PAGE_SIZE``, as REST is capped by ``FAB_API_MAX_PAGE_SIZE``), an ``_oc_*``
  sort column the screen does not offer is dropped (default order).
- Actions: an unknown action name is a 400 (list form) / 404 (single row), row ids as ``<pk>``.
- FAB's ``/download/<filename>`` route is closed (404): uploads are served by ``/uploads/`` only,
  which checks the data scope.
- REST: ``q`` must be valid rison (or JSON), ``page`` / ``page_size`` small non-negative numbers,
  no number beyond 64 bits anywhere in it (400); a POST / PUT body holding a relation id or an
  integer column value its column cannot hold is a 422.

A backstop error handler turns a database overflow / invalid-value error that still gets through
into a 400 instead of a 500.
"""
import json
import logging
import re
import urllib.parse

import prison
from flask import abort, current_app, request
from flask_appbuilder.api import BaseApi
from flask_babel import gettext as _
from sqlalchemy import BigInteger, Integer
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import DataError
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.routing import IntegerConverter

log = logging.getLogger(__name__)

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
MAX_PAGE = 10**9 - 1          # page * page size stays far inside 64 bits
DEFAULT_MAX_PAGE_SIZE = 100
_INT_RE = re.compile(r"-?\d+")
_PAGE_RE = re.compile(r"\d{1,9}")


class BoundedIntegerConverter(IntegerConverter):
    """``<int:x>`` that only matches what a PostgreSQL ``integer`` column holds (0 .. 2**31-1)."""

    def __init__(self, map, fixed_digits=0, min=None, max=INT32[1], signed=False):  # noqa: A002
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


# ----------------------------------------------------------------------------------- helpers --
def _views():
    """{endpoint: view} and {class name: view} of the app's FAB views (built once per app)."""
    cache = current_app.extensions.get("cpms_params_views")
    if cache is None:
        by_endpoint, by_class = {}, {}
        for view in current_app.appbuilder.baseviews:
            by_endpoint[view.endpoint] = view
            by_class[type(view).__name__] = view
        cache = current_app.extensions["cpms_params_views"] = (by_endpoint, by_class)
    return cache


def int_range(column):
    return INT64 if isinstance(column.type, BigInteger) else INT32


def valid_int(value, bounds=INT32):
    """``value`` (int or text) is an integer inside ``bounds``."""
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        value = value.strip()
        if not _INT_RE.fullmatch(value) or len(value) > 21:
            return False
        value = int(value)
    if not isinstance(value, int):
        return False
    return bounds[0] <= value <= bounds[1]


def valid_pk(datamodel, pk):
    """Can ``pk`` be a primary key of the datamodel's table? (Only integer keys are checked.)"""
    try:
        keys = sa_inspect(datamodel.obj).primary_key
    except Exception:  # noqa: BLE001 - not an SQLAlchemy model: nothing to check
        return True
    if len(keys) != 1 or not isinstance(keys[0].type, Integer):
        return True
    return valid_int(pk, int_range(keys[0]))


def _too_big(value):
    """Any number in a parsed rison/JSON structure beyond 64 bits."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return not (INT64[0] <= value <= INT64[1])
    if isinstance(value, float):
        return value != value or value in (float("inf"), float("-inf"))
    if isinstance(value, dict):
        return any(_too_big(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_too_big(v) for v in value)
    return False


def max_page_size():
    """Screens are capped as REST is: CPMS_MAX_PAGE_SIZE, else FAB_API_MAX_PAGE_SIZE, else 100."""
    cfg = current_app.config
    return int(cfg.get("CPMS_MAX_PAGE_SIZE") or cfg.get("FAB_API_MAX_PAGE_SIZE") or DEFAULT_MAX_PAGE_SIZE)


# ------------------------------------------------------------------------------ the checks --
def _check_screen_args(by_class):
    """page_*, psize_*, _oc_* of a FAB screen. Mirrors FAB's own parsing (urltools: any argument
    whose name *contains* ``page_`` / ``psize_`` / ``_oc_`` is read)."""
    changed, out = False, []
    cap = max_page_size()
    for key, value in request.args.items(multi=True):
        if "page_" in key or "psize_" in key:
            if not _PAGE_RE.fullmatch(value.strip()):
                abort(400, description=_("Invalid page number or page size: %(arg)s.", arg=key))
            if "psize_" in key and int(value) > cap:
                value, changed = str(cap), True
        elif "_oc_" in key:
            name = key.split("_oc_", 1)[1]
            view = by_class.get(name)
            columns = getattr(view, "order_columns", None) or []
            if value not in columns:
                changed = True
                continue  # an unknown sort column: the screen's default order
        out.append((key, value))
    if changed:
        request.args = ImmutableMultiDict(out)


def _check_actions(view, method):
    actions = getattr(view, "actions", None) or {}
    if method == "action" and (request.view_args or {}).get("name") not in actions:
        abort(404)
    if method == "action_post" and request.method == "POST":
        name = request.form.get("action")
        if name not in actions:
            abort(400, description=_("Unknown action."))
        for pk in request.form.getlist("rowid"):
            if not valid_pk(view.datamodel, pk):
                abort(404)


def _check_rest(view):
    value = request.args.get("q")
    if value:
        try:
            parsed = prison.loads(value)
        except Exception:  # noqa: BLE001 - prison raises more than ParserException on garbage
            try:
                parsed = json.loads(urllib.parse.parse_qs(f"q={value}").get("q")[0])
            except Exception:  # noqa: BLE001
                return view.response_400(message=_("Not a valid rison or JSON argument."))
        if _too_big(parsed):
            return view.response_400(message=_("A number in the query is out of range."))
        if isinstance(parsed, dict):
            for key in ("page", "page_size"):
                if key in parsed and not valid_int(parsed[key], (0, MAX_PAGE)):
                    return view.response_400(message=_("Invalid page number or page size: %(arg)s.", arg=key))
    if request.method in ("POST", "PUT") and hasattr(view, "datamodel"):
        return _check_body(view)
    return None


def _check_body(view):
    """Relation ids and integer column values of a REST write must fit their columns."""
    body = request.get_json(silent=True)
    if body is not None and not isinstance(body, dict):
        return view.response_400(message=_("The request body must be a JSON object."))
    if body is None:
        return None  # no JSON at all: FAB answers 400 itself
    try:
        mapper = sa_inspect(view.datamodel.obj)
    except Exception:  # noqa: BLE001
        return None
    errors = {}
    for key, value in body.items():
        if key in mapper.relationships:
            target = mapper.relationships[key].mapper.primary_key
            if len(target) != 1 or not isinstance(target[0].type, Integer):
                continue
            bounds = int_range(target[0])
        elif key in mapper.columns and isinstance(mapper.columns[key].type, Integer):
            bounds = int_range(mapper.columns[key])
        else:
            continue
        values = value if isinstance(value, list) else [value]
        for v in values:
            number = isinstance(v, int) and not isinstance(v, bool)
            if (number or (isinstance(v, str) and _INT_RE.fullmatch(v.strip()))) and not valid_int(v, bounds):
                errors[key] = [_("Number out of range.")]
    if errors:
        return view.response_422(message=errors)
    return None


def check_request():
    """before_request: see the module docstring."""
    if not request.endpoint or "." not in request.endpoint:
        return None
    by_endpoint, by_class = _views()
    bp, method = request.endpoint.rsplit(".", 1)
    view = by_endpoint.get(bp)
    if view is None:
        return None
    is_api = isinstance(view, BaseApi)
    datamodel = getattr(view, "datamodel", None)
    pk = (request.view_args or {}).get("pk")
    if pk is not None and datamodel is not None and not valid_pk(datamodel, pk):
        if is_api:
            return view.response_404()
        abort(404)
    if is_api:
        return _check_rest(view)
    if method == "download" and datamodel is not None:
        abort(404)  # FAB's file download: no scope check, no file columns here; see /uploads/
    _check_screen_args(by_class)
    if datamodel is not None:
        _check_actions(view, method)
    return None


# ---------------------------------------------------------------------------------- backstop --
def _bad_value(exc):
    """DataError (PostgreSQL: out of range, invalid input syntax) or SQLite's overflow that got
    past the checks above: a 400, logged, and the session rolled back."""
    if isinstance(exc, OverflowError) and "SQLite INTEGER" not in str(exc):
        raise exc
    log.warning("bad input reached the database: %s", exc)
    try:
        from app.extensions import db

        db.session.rollback()
    except Exception:  # noqa: BLE001 - the answer matters more than the rollback
        log.exception("rollback after a bad-input error failed")
    if request.path.startswith("/api/"):
        return {"message": _("Invalid value.")}, 400
    return _("Invalid value."), 400


def init_app(app):
    """Call before any view is registered (the converter applies to routes added after it)."""
    app.url_map.converters["int"] = BoundedIntegerConverter
    app.before_request(check_request)
    app.register_error_handler(DataError, _bad_value)
    app.register_error_handler(OverflowError, _bad_value)
