"""How values look on the admin screens, in the operator's language.

- ``None``/empty: ``-``; booleans: 是/否 (Yes/No); times: local, to the second; lists: joined.
- Role names: a display-name mapping (the stored names are permission identities).
- Messages the services store or raise (failure, stop and abnormal reasons, order-event remarks,
  :class:`~app.services.errors.ChargingError` texts) are kept as their **English source text**:
  logs, partner pushes and the pile protocol read them, and the text is the msgid. They are
  translated when shown (:func:`display_text`): the catalogue is looked up for the text itself and,
  for texts with parameters, for the msgid pattern they were formatted from
  (``"The gun is not free (status: %(status)s)."`` matches ``"... (status: charging)."``; the
  parameters are translated too when they are msgids or status codes).

:func:`install` wraps every view's ``formatters_columns`` so FAB's list and show widgets use
:func:`display_value` for any column without a formatter of its own.
"""
from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache

from flask import current_app
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

EMPTY = "-"

#: stored role name -> display name
ROLE_LABELS = {
    "Admin": _l("Platform administrator"),
    "Public": _l("Anonymous visitor"),
    "OperatorAdmin": _l("Operator administrator"),
    "OperatorStaff": _l("Operator staff (read only)"),
}


def role_label(name) -> str:
    name = getattr(name, "name", name)
    label = ROLE_LABELS.get(name)
    return str(label) if label is not None else (name or EMPTY)


def yes_no(value) -> str:
    if value is None:
        return EMPTY
    return _("Yes") if value else _("No")


def local_time(value):
    """Naive UTC datetime -> local time to the second (TIMEZONE); None -> "-"."""
    from app.views.base import local_time as _local

    if value is None:
        return EMPTY
    return _local(value)


_PARAM = re.compile(r"%\((\w+)\)[sdif]|%\((\w+)\)\+d")


def _pattern(msgid: str):
    """A regex matching the texts ``msgid % params`` produces (None when it has no parameters)."""
    if "%(" not in msgid:
        return None
    out, pos, names = [], 0, []
    for m in re.finditer(r"%\((\w+)\)[+]?[sdif]", msgid):
        out.append(re.escape(msgid[pos:m.start()]))
        name = m.group(1)
        if name in names:
            out.append(f"(?P={name})")
        else:
            names.append(name)
            out.append(f"(?P<{name}>.+?)")
        pos = m.end()
    out.append(re.escape(msgid[pos:]))
    return re.compile("^" + "".join(out) + "$", re.S)


@lru_cache(maxsize=8)
def _patterns(locale: str):
    """(regex, msgid) of every catalogue msgid with parameters, most literal text first."""
    from babel.support import Translations

    dirs = current_app.config.get("BABEL_TRANSLATION_DIRECTORIES", "translations")
    found = []
    for d in str(dirs).split(";"):
        path = d if os.path.isabs(d) else os.path.join(current_app.root_path, d)
        trans = Translations.load(path, [locale])
        catalog = getattr(trans, "_catalog", {}) or {}
        for msgid in catalog:
            literal = re.sub(r"%\(\w+\)[+]?[sdif]", "", msgid) if isinstance(msgid, str) else ""
            # only messages with enough text of their own ("%(first)s, %(next)s" would match anything)
            # and string parameters
            if "%(" in msgid and sum(c.isalpha() for c in literal) >= 6 and \
                    not re.search(r"%\(\w+\)[+]?[dif]", msgid):
                rx = _pattern(msgid)
                if rx is not None:
                    found.append((rx, msgid))
    found.sort(key=lambda p: -len(re.sub(r"%\(\w+\)[+]?[sdif]", "", p[1])))
    return tuple(found)


def iso_local(value) -> str:
    """An ISO 8601 UTC string ("...Z", as the live JSON carries it) -> local time to the second."""
    if not value:
        return ""
    try:
        at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    return local_time(at)


@lru_cache(maxsize=1)
def _status_labels():
    from app.models.order import ORDER_STATUS
    from app.models.pile import CONNECTOR_STATUS

    return {**dict(CONNECTOR_STATUS), **dict(ORDER_STATUS)}


def _translate_param(value: str) -> str:
    """A parameter of a stored message: a status code's label, a msgid's translation, or itself."""
    label = _status_labels().get(value)
    return _(label) if label else display_text(value)


def display_text(text):
    """A stored or raised English message in the current locale (unknown texts unchanged)."""
    if text is None or text == "":
        return EMPTY
    text = str(text)
    translated = _(text)
    if translated != text:
        return translated
    locale = str(get_locale() or "en")
    if locale.startswith("en"):
        return text
    # a text made of sentences each of which is a message (e.g. joined pricing reasons)
    parts = re.split(r"(?<=[.。])\s+", text)
    out = [display_text(p) for p in parts] if len(parts) > 1 else None
    if out and all(o != p for o, p in zip(out, parts, strict=True)):
        return "".join(out)
    for rx, msgid in _patterns(locale):
        m = rx.match(text)
        if m:
            params = {k: _translate_param(v) for k, v in m.groupdict().items()}
            return _(msgid, **params)
    if out and any(o != p for o, p in zip(out, parts, strict=True)):
        return "".join(out)
    return text


def display_value(value):
    """Default display of a column value on list and show pages."""
    if value is None or value == "":
        return EMPTY
    if isinstance(value, bool):
        return yes_no(value)
    if isinstance(value, datetime):
        return local_time(value)
    if isinstance(value, date | Decimal | int | float):
        return value
    if isinstance(value, list | tuple | set):
        return "、".join(str(display_value(v)) for v in value) or EMPTY
    if isinstance(value, dict):
        return "；".join(f"{k}：{display_value(v)}" for k, v in value.items()) or EMPTY
    if type(value).__name__ == "Role":
        return role_label(value)
    return value


#: pile reply type -> what the operator reads
REPLY_TITLES = {
    "TimeSyncReply": _l("Time sync reply"),
    "RemoteRebootReply": _l("Reboot reply"),
    "BillingModelSetReply": _l("Price model reply"),
    "WorkParametersReply": _l("Work parameters reply"),
    "RealtimeData": _l("Realtime data"),
}
#: reply field -> label (fields not listed here are not shown)
REPLY_FIELDS = {
    "pile_code": _l("Pile code"), "gun": _l("Gun no."), "result": _l("Result"),
    "current_time": _l("Pile time"), "status": _l("Gun status"), "output_voltage": _l("Voltage (V)"),
    "output_current": _l("Current (A)"), "soc": _l("SOC"), "energy": _l("Energy (kWh)"),
    "amount": _l("Amount (yuan)"), "gun_temperature": _l("Gun temperature (°C)"),
}
GUN_STATUS = {0: _l("Offline"), 1: _l("Fault"), 2: _l("Idle"), 3: _l("Charging")}


def reply_summary(reply) -> str:
    """A pile's reply as "对时应答：桩编码 …，桩时间 2024-05-01 12:00:00" (no Python repr)."""
    import dataclasses

    name = type(reply).__name__
    title = REPLY_TITLES.get(name)
    parts = []
    fields = dataclasses.fields(reply) if dataclasses.is_dataclass(reply) else []
    for f in fields:
        label = REPLY_FIELDS.get(f.name)
        if label is None:
            continue
        value = getattr(reply, f.name)
        if f.name == "result":
            value = _("Command succeeded") if value == 1 else _("Command failed")
        elif f.name == "status" and value in GUN_STATUS:
            value = GUN_STATUS[value]
        elif isinstance(value, datetime):
            value = value.strftime("%Y-%m-%d %H:%M:%S")  # the pile's own clock, as it sent it
        parts.append(f"{label}：{display_value(value)}")
    head = str(title) if title is not None else _("Pile reply")
    return f"{head}：{'，'.join(parts)}" if parts else head


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def period_summary(periods) -> str:
    """Tariff periods as "00:00-08:00 谷 0.30000+0.40000，..." (level, electricity + service price)."""
    from app.models.station import PRICE_LEVEL

    if not periods:
        return EMPTY
    levels = dict(PRICE_LEVEL)
    return "，".join(
        f"{_clock(p.start_minute)}-{_clock(p.end_minute)} {_(levels[p.level]) if p.level in levels else p.level} "
        f"{p.electricity_price}+{p.service_price}" for p in periods)


class DefaultFormatters(dict):
    """``formatters_columns`` whose ``get`` falls back to :func:`display_value`."""

    def get(self, key, default=None):
        if key in self:
            return self[key]
        if key in MESSAGE_COLUMNS:
            return display_text
        return display_value


#: columns holding messages the services wrote (English source text, translated when shown)
MESSAGE_COLUMNS = frozenset({"abnormal_reason", "stop_reason", "failure_reason", "remark", "reason"})


def install(appbuilder) -> None:
    """Give every registered view the default formatter (FAB's own security views included)."""
    for view in appbuilder.baseviews:
        cols = getattr(view, "formatters_columns", None)
        if cols is not None and not isinstance(cols, DefaultFormatters):
            view.formatters_columns = DefaultFormatters(cols)
        model = getattr(getattr(view, "datamodel", None), "obj", None)
        if model is not None and model.__name__ == "Role" and view.formatters_columns is not None:
            view.formatters_columns.setdefault("name", role_label)
        _role_options(view)
        labels = getattr(view, "label_columns", None) or {}
        # FAB's own views label some relations only with the capitalised column name
        plain = {k: v for k, v in AUTO_LABELS.items() if isinstance(labels.get(k), str)}
        if plain:
            _relabel(view, plain)


#: column -> label where FAB's views have none of their own (they show "User", "Roles")
AUTO_LABELS = {"user": _l("Users"), "users": _l("Users"), "role": _l("Role"), "roles": _l("Roles"),
               "groups": _l("Groups")}


def _relabel(view, labels) -> None:
    view.label_columns.update(labels)
    for attr in ("search_form", "add_form", "edit_form"):
        form = getattr(view, attr, None)
        for name, label in labels.items():
            field = vars(form).get(name) if form is not None else None
            if field is not None and getattr(field, "args", None):
                field.args = (label, *field.args[1:])


def _role_options(view) -> None:
    """Role dropdowns of the view's forms offer the roles by their display names."""
    from flask_appbuilder.fields import QuerySelectField, QuerySelectMultipleField
    from wtforms.fields.core import UnboundField

    QUERY_FIELDS = (QuerySelectField, QuerySelectMultipleField)

    datamodel = getattr(view, "datamodel", None)
    for attr in ("add_form", "edit_form"):
        form = getattr(view, attr, None)
        if form is None or datamodel is None:
            continue
        for name in list(vars(form)):
            field = vars(form)[name]
            if not isinstance(field, UnboundField) or not issubclass(field.field_class, QUERY_FIELDS):
                continue
            try:
                related = datamodel.get_related_model(name)
            except Exception:  # not a relation
                continue
            if related is not None and related.__name__ == "Role":
                field.kwargs["get_label"] = role_label


def register_jinja(app) -> None:
    app.jinja_env.filters.setdefault("display", display_value)
    app.jinja_env.filters.setdefault("display_text", display_text)
    app.jinja_env.filters.setdefault("local_time", local_time)
    app.jinja_env.filters.setdefault("yes_no", yes_no)
    app.jinja_env.filters.setdefault("role_label", role_label)
    app.jinja_env.filters.setdefault("iso_local", iso_local)
