"""电站监控: connector states from the database (Connector.status), within the data scope.

Live figures (power, SOC) come from the connector's active order; a later issue reads Redis.
"""

from decimal import Decimal

from sqlalchemy import func, select

from app.extensions import db
from app.models import ChargeOrder, Connector, Pile, Station
from app.models.order import ACTIVE_ORDER_STATUSES
from app.security.scope import apply_scope

# the monitor's counters; everything else (reserved, unknown) is "other"
STATUS_GROUPS = ("charging", "occupied", "idle", "offline", "fault")


def _connector_query(station_id=None, pile_name=None, pile_code=None, connector_code=None):
    q = apply_scope(select(Connector.id).join(Pile, Pile.id == Connector.pile_id), Connector)
    if station_id:
        q = q.where(Connector.station_id == station_id)
    if pile_name:
        q = q.where(Pile.name.contains(pile_name.strip(), autoescape=True))
    if pile_code:
        q = q.where(Pile.code.startswith(pile_code.strip(), autoescape=True))
    if connector_code:
        q = q.where(Connector.code.startswith(connector_code.strip(), autoescape=True))
    return q


def summary(**filters):
    ids = _connector_query(**filters).subquery()
    counts = dict(
        db.session.execute(
            select(Connector.status, func.count())
            .where(Connector.id.in_(select(ids.c.id)))
            .group_by(Connector.status)
        ).all()
    )
    pile_ids = select(Connector.pile_id).where(Connector.id.in_(select(ids.c.id)))
    rated = db.session.scalar(select(func.coalesce(func.sum(Pile.power_kw), 0)).where(Pile.id.in_(pile_ids)))
    live = db.session.scalar(
        select(func.coalesce(func.sum(ChargeOrder.live_power), 0)).where(
            ChargeOrder.connector_id.in_(select(ids.c.id)), ChargeOrder.status.in_(ACTIVE_ORDER_STATUSES)
        )
    )
    out = {"all": sum(counts.values())}
    for status in STATUS_GROUPS:
        out[status] = counts.get(status, 0)
    out["other"] = out["all"] - sum(out[s] for s in STATUS_GROUPS)
    out["rated_power"] = Decimal(str(rated or 0))
    out["live_power"] = Decimal(str(live or 0))
    return out


def connectors(page=0, page_size=48, **filters):
    """(cards, total): one dict per connector of the page, ordered by station and code."""
    base = _connector_query(**filters)
    total = db.session.scalar(select(func.count()).select_from(base.subquery())) or 0
    q = (
        select(Connector, Pile, Station)
        .join(Pile, Pile.id == Connector.pile_id)
        .join(Station, Station.id == Connector.station_id)
        .where(Connector.id.in_(base))
        .order_by(Station.code, Connector.code)
        .limit(page_size)
        .offset(page * page_size)
    )
    rows = db.session.execute(q).all()
    live = {}
    if rows:
        ids = [c.id for c, _, _ in rows]
        for o in db.session.scalars(
            select(ChargeOrder).where(
                ChargeOrder.connector_id.in_(ids), ChargeOrder.status.in_(ACTIVE_ORDER_STATUSES)
            )
        ):
            live[o.connector_id] = o
    cards = []
    for c, p, s in rows:
        order = live.get(c.id)
        cards.append(
            {
                "id": c.id,
                "code": c.code,
                "name": c.name,
                "status": c.status,
                "park_no": c.park_no,
                "pile_name": p.name,
                "pile_code": p.code,
                "station_name": s.name,
                "station_id": s.id,
                "live_power": order.live_power if order else None,
                "soc": order.live_soc if order else None,
                "order_no": order.order_no if order else None,
            }
        )
    return cards, total


def station_counts():
    """Per station in scope: piles, connectors and connectors per status (for the dashboard)."""
    rows = db.session.execute(
        apply_scope(
            select(Connector.station_id, Connector.status, func.count()).group_by(
                Connector.station_id, Connector.status
            ),
            Connector,
        )
    ).all()
    piles = dict(
        db.session.execute(
            apply_scope(select(Pile.station_id, func.count()).group_by(Pile.station_id), Pile)
        ).all()
    )
    stations = db.session.execute(
        apply_scope(select(Station.id, Station.code, Station.name).order_by(Station.code), Station)
    ).all()
    by_station = {}
    for sid, status, n in rows:
        by_station.setdefault(sid, {})[status] = n
    out = []
    for sid, code, name in stations:
        st = by_station.get(sid, {})
        row = {
            "id": sid,
            "code": code,
            "name": name,
            "piles": piles.get(sid, 0),
            "connectors": sum(st.values()),
        }
        for status in STATUS_GROUPS:
            row[status] = st.get(status, 0)
        row["other"] = row["connectors"] - sum(row[s] for s in STATUS_GROUPS)
        out.append(row)
    return out
