"""Figures for the home page, always within the caller's data scope."""
from sqlalchemy import func, select

from app.extensions import db
from app.models import Alarm, Connector, FaultReport, Invoice, Pile, Station
from app.security.scope import apply_scope


def _count(model, *where):
    q = apply_scope(select(func.count()).select_from(model), model)
    return db.session.scalar(q.where(*where)) or 0


def overview():
    statuses = dict(db.session.execute(
        apply_scope(select(Connector.status, func.count()).group_by(Connector.status), Connector)).all())
    return {
        "stations": _count(Station),
        "piles": _count(Pile),
        "piles_online": _count(Pile, Pile.online.is_(True)),
        "connectors": sum(statuses.values()),
        "connector_status": statuses,
        "open_alarms": _count(Alarm, Alarm.handle_status == "pending"),
        "open_fault_reports": _count(FaultReport, FaultReport.status == "pending"),
        "pending_invoices": _count(Invoice, Invoice.status == "applied"),
    }
