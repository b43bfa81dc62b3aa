"""What may be deleted, and why not: the one rule every delete path runs (admin delete, bulk
delete action, REST DELETE: ``app/views/base.py``).

* Money and history rows (models with ``HISTORY = True``: orders and their periods, events and
  samples, bills, wallet entries, payments, invoices, logs, alarms, statistics...) are never
  deleted. Their screens and REST resources have no delete at all (the bases drop the route, the
  permission and the bulk action); :func:`check_deletable` refuses them as a last line.
* Master data (operators, stations, templates, manufacturers, channels...) is deleted only when
  nothing uses it. "Uses" are derived from the foreign keys of the shared SQLAlchemy metadata,
  not from a hand list:

  - a foreign key without ``ON DELETE`` (or RESTRICT / NO ACTION) pointing at the row is a use;
  - a foreign key ``ON DELETE CASCADE`` marks an owned part (a template's periods, a pile's
    connectors, link tables) that goes with the row: its own uses count in turn, and owned parts
    that are history rows (a pile's status log, a partner's push log) count as uses, since
    deleting the row would delete them;
  - ``ON DELETE SET NULL`` references just let go and are no use.

  A refusal names what uses the row and how many ("该计费模版仍被 3 个电站使用"), and suggests
  disabling the row where the model can be disabled.

The database enforces the same foreign keys (PostgreSQL always; SQLite with ``PRAGMA
foreign_keys=ON`` on every connection, ``app/extensions.py``), so a use this check missed (a row
written meanwhile) still fails the delete instead of leaving dangling references; the delete paths
then say so with :func:`in_use_message`.
"""
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, func, or_, select, tuple_
from sqlalchemy import inspect as sa_inspect

__all__ = ["DeletionRefused", "is_history", "uses", "check_deletable", "refusal_message", "in_use_message"]

_MAX_DEPTH = 6


class DeletionRefused(ValueError):
    """The row may not be deleted; the message says why (translated)."""


def is_history(model):
    """A money/history model: never deleted (``HISTORY = True`` on the model class)."""
    return bool(getattr(model, "HISTORY", False))


# table -> (the row as a sentence subject, one, many); falls back to "this record" / "record(s)"
NOUNS = {
    "ab_user": (_l("This user"), _l("user"), _l("users")),
    "ab_role": (_l("This role"), _l("role"), _l("roles")),
    "ab_group": (_l("This group"), _l("group"), _l("groups")),
    "ab_user_role": (_l("This role assignment"), _l("user holding it"), _l("users holding it")),
    "ab_group_role": (_l("This group role"), _l("group holding it"), _l("groups holding it")),
    "ev_alarm": (_l("This alarm"), _l("alarm"), _l("alarms")),
    "ev_campaign": (_l("This campaign"), _l("campaign"), _l("campaigns")),
    "ev_card": (_l("This card"), _l("card"), _l("cards")),
    "ev_channel": (_l("This channel"), _l("channel"), _l("channels")),
    "ev_charge_order": (_l("This charging order"), _l("charging order"), _l("charging orders")),
    "ev_connector": (_l("This connector"), _l("connector"), _l("connectors")),
    "ev_connector_status_log": (_l("This status log entry"), _l("status log entry"),
                                _l("status log entries")),
    "ev_coupon": (_l("This coupon"), _l("issued coupon"), _l("issued coupons")),
    "ev_coupon_campaign": (_l("This coupon campaign"), _l("coupon campaign"), _l("coupon campaigns")),
    "ev_coupon_campaign_item": (_l("This coupon campaign item"), _l("coupon campaign item"),
                                _l("coupon campaign items")),
    "ev_coupon_template": (_l("This coupon template"), _l("coupon template"), _l("coupon templates")),
    "ev_daily_station_stat": (_l("This daily statistic"), _l("daily statistic"), _l("daily statistics")),
    "ev_daily_channel_stat": (_l("This daily channel statistic"), _l("daily channel statistic"),
                              _l("daily channel statistics")),
    "ev_fault_report": (_l("This fault report"), _l("fault report"), _l("fault reports")),
    "ev_fault_type": (_l("This fault type"), _l("fault type"), _l("fault types")),
    "ev_feedback": (_l("This feedback"), _l("feedback"), _l("feedback entries")),
    "ev_invoice": (_l("This invoice"), _l("invoice"), _l("invoices")),
    "ev_invoice_order": (_l("This invoiced order"), _l("invoiced order"), _l("invoiced orders")),
    "ev_manufacturer": (_l("This manufacturer"), _l("manufacturer"), _l("manufacturers")),
    "ev_member": (_l("This member"), _l("member"), _l("members")),
    "ev_meter_sample": (_l("This meter sample"), _l("meter sample"), _l("meter samples")),
    "ev_occupancy_order": (_l("This occupancy order"), _l("occupancy order"), _l("occupancy orders")),
    "ev_operator": (_l("This operator"), _l("operator"), _l("operators")),
    "ev_order_event": (_l("This order event"), _l("order event"), _l("order events")),
    "ev_order_period": (_l("This order period"), _l("order period"), _l("order periods")),
    "ev_organization": (_l("This organization"), _l("organization"), _l("organizations")),
    "ev_partner": (_l("This partner"), _l("partner platform"), _l("partner platforms")),
    "ev_payment": (_l("This payment"), _l("payment"), _l("payments")),
    "ev_payment_gateway": (_l("This payment gateway"), _l("payment gateway"), _l("payment gateways")),
    "ev_pile": (_l("This pile"), _l("pile"), _l("piles")),
    "ev_pile_bill": (_l("This pile bill"), _l("pile bill"), _l("pile bills")),
    "ev_pile_model": (_l("This pile model"), _l("pile model"), _l("pile models")),
    "ev_price_template": (_l("This price template"), _l("price template"), _l("price templates")),
    "ev_push_log": (_l("This push log entry"), _l("push log entry"), _l("push log entries")),
    "ev_partner_station": (_l("This partner station"), _l("partner station"), _l("partner stations")),
    "ev_reconciliation_dispute": (_l("This reconciliation dispute"), _l("reconciliation dispute"),
                                  _l("reconciliation disputes")),
    "ev_station": (_l("This station"), _l("station"), _l("stations")),
    "ev_wallet_entry": (_l("This wallet entry"), _l("wallet entry"), _l("wallet entries")),
    "ev_organization_entry": (_l("This organization account entry"), _l("organization account entry"),
                              _l("organization account entries")),
    "ev_refund": (_l("This refund"), _l("refund"), _l("refunds")),
    "sys_department": (_l("This department"), _l("department"), _l("departments")),
    "sys_post": (_l("This post"), _l("post"), _l("posts")),
}
_FALLBACK = (_l("This record"), _l("record"), _l("records"))

# Link tables that cascade in the schema but are uses seen from this side: a role still held by users
# or groups is not deleted from under them (the users would silently lose their permissions).
LINK_USES = {"ab_role": {"ab_user_role", "ab_group_role"}}
# the column that disables a row instead of deleting it
DISABLE_COLUMNS = ("enabled", "active")


def _nouns(table):
    return NOUNS.get(table.name, _FALLBACK)


def _history_tables():
    """Names of the tables of history models."""
    from app.extensions import db

    out = set()
    for mapper in db.Model.registry.mappers:
        if is_history(mapper.class_) and mapper.local_table is not None:
            out.add(mapper.local_table.name)
    return out


def _referencing(metadata, table):
    """(child table, fk constraint) for every foreign key of ``metadata`` that points at ``table``."""
    for child in metadata.sorted_tables:
        for fkc in child.foreign_key_constraints:
            if fkc.referred_table is table:
                yield child, fkc


def _match(fkc, selection):
    """Condition on fkc's table: its foreign key points into ``selection``.

    ``selection`` is ("row", {column: value}) for the row itself or ("rows", table, where) for the
    rows of an owned part."""
    local = list(fkc.columns)
    remote = [el.column for el in fkc.elements]
    if selection[0] == "row":
        values = selection[1]
        conds = [lc == values[rc.key] for lc, rc in zip(local, remote, strict=True)]
        return and_(*conds)
    _, table, where = selection
    sub = select(*remote).where(where).correlate(None)
    if len(local) == 1:
        return local[0].in_(sub)
    return tuple_(*local).in_(sub)


def uses(session, item):
    """[(table, count)] of the rows that still use ``item`` (see the module docstring), biggest
    first; empty: ``item`` may be deleted."""
    mapper = sa_inspect(item).mapper
    table = mapper.local_table
    metadata = table.metadata
    history = _history_tables()
    row = {}
    for col in table.columns:
        prop = mapper.get_property_by_column(col)
        row[col.key] = getattr(item, prop.key)
    if any(v is None for k, v in row.items() if table.c[k].primary_key):
        return []
    conditions = {}  # using table -> its conditions (a row using the item in two ways counts once)

    def walk(tbl, selection, depth, path):
        for child, fkc in _referencing(metadata, tbl):
            ondelete = (fkc.ondelete or "").upper()
            if ondelete in ("SET NULL", "SET DEFAULT"):
                continue
            cond = _match(fkc, selection)
            if depth == 0 and child.name in LINK_USES.get(tbl.name, ()):
                ondelete = "RESTRICT"
            if ondelete != "CASCADE" or child.name in history:
                conditions.setdefault(child, []).append(cond)
            elif depth < _MAX_DEPTH and child.name not in path:
                walk(child, ("rows", child, cond), depth + 1, path | {child.name})

    counts = []
    with session.no_autoflush:
        walk(table, ("row", row), 0, {table.name})
        for child, conds in conditions.items():
            n = session.execute(select(func.count()).select_from(child).where(or_(*conds))).scalar_one()
            if n:
                counts.append((child, n))
    return sorted(counts, key=lambda kv: (-kv[1], kv[0].name))


def _count_phrase(table, n):
    _what, one, many = _nouns(table)
    return _("%(count)d %(things)s", count=n, things=str(one if n == 1 else many))


def refusal_message(table, found):
    """The translated reason ``found`` (from :func:`uses`) keeps a row of ``table``."""
    what = str(_nouns(table)[0])
    if len(found) == 1:
        (child, n), = found
        things = _nouns(child)[1 if n == 1 else 2]
        msg = _("%(what)s is still used by %(count)d %(things)s.", what=what, count=n, things=str(things))
    else:
        phrases = [_count_phrase(child, n) for child, n in found]
        listed = phrases[0]
        for phrase in phrases[1:]:
            listed = _("%(first)s, %(next)s", first=listed, next=phrase)
        msg = _("%(what)s is still used by %(uses)s.", what=what, uses=listed)
    if any(name in table.c for name in DISABLE_COLUMNS):
        msg = _("%(reason)s Disable it instead.", reason=msg)
    return msg


def check_deletable(session, item):
    """Raise DeletionRefused (with the translated reason) unless ``item`` may be deleted."""
    model = type(item)
    table = sa_inspect(item).mapper.local_table
    if is_history(model):
        raise DeletionRefused(_("%(what)s is a money or history record and is never deleted.",
                                what=str(_nouns(table)[0])))
    found = uses(session, item)
    if found:
        raise DeletionRefused(refusal_message(table, found))


def in_use_message(item):
    """The reason a delete the database refused (a use written after the check) did not happen."""
    table = sa_inspect(item).mapper.local_table
    return _("%(what)s is still in use and was not deleted.", what=str(_nouns(table)[0]))
