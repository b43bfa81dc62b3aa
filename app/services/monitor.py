"""电站监控: every connector in the data scope with its live state from Redis.

Which connectors exist (names, codes, station, rated power) comes from the database; what they are
doing comes from the gateway's live state in Redis (:mod:`app.services.live_state`): the status of
a gun of an online pile, and for a charging gun its power, voltage, current, SOC and energy from the
pile's 0x13 frames, whoever started the charge (platform, card or the pile itself). A pile no live
gateway node holds is offline. Nothing here writes, so the page can poll it every few seconds.
"""

from decimal import Decimal, InvalidOperation

from sqlalchemy import func, select

from app.extensions import db, get_redis
from app.gateway.registry import Registry
from app.models import Connector, ConnectorStatusLog, Pile, Station
from app.security.scope import apply_scope
from app.services.clock import utcnow
from app.services.live_state import live_guns

# the monitor's counters; everything else (reserved, unknown) is "other"
STATUS_GROUPS = ("charging", "occupied", "idle", "offline", "fault")
# live figures of a charging gun (0x13), as the gateway wrote them
LIVE_FIGURES = ("power", "voltage", "current", "soc", "energy", "amount", "charged_minutes")


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


def _decimal(text) -> Decimal | None:
    try:
        return Decimal(str(text)) if text not in (None, "") else None
    except InvalidOperation:
        return None


def live_states(redis, guns: list[tuple[str, str, str]]) -> dict[str, dict]:
    """Live state per gun code for ``guns`` = [(gun code, pile code, database status)]: ``status``
    (offline unless a live gateway node holds the pile; then the gun's live status, the database's
    until the pile reported one), ``updated_at`` and, while charging, the live figures."""
    registry = Registry(redis)
    owners = registry.owners(sorted({pile for _, pile, _ in guns}))
    alive = {node: registry.node_alive(node) for node in set(owners.values()) if node}
    hashes = live_guns(redis, [code for code, _, _ in guns])
    out = {}
    for code, pile, db_status in guns:
        live = hashes.get(code, {})
        online = bool(alive.get(owners.get(pile)))
        status = (live.get("status") or db_status or "offline") if online else "offline"
        state = {"status": status, "updated_at": live.get("updated_at") or None}
        for name in LIVE_FIGURES:
            state[name] = live.get(name) if status == "charging" and live.get(name) not in (None, "") else None
        out[code] = state
    return out


def summary(redis=None, **filters):
    """Rated power (database), live power and connectors per live status (Redis)."""
    redis = redis or get_redis()
    ids = _connector_query(**filters).subquery()
    rows = db.session.execute(
        select(Connector.code, Pile.code, Connector.status)
        .join(Pile, Pile.id == Connector.pile_id)
        .where(Connector.id.in_(select(ids.c.id)))
    ).all()
    pile_ids = select(Connector.pile_id).where(Connector.id.in_(select(ids.c.id)))
    rated = db.session.scalar(select(func.coalesce(func.sum(Pile.power_kw), 0)).where(Pile.id.in_(pile_ids)))
    states = live_states(redis, [tuple(r) for r in rows])
    out = {"all": len(rows)}
    for status in STATUS_GROUPS:
        out[status] = 0
    live_power = Decimal("0")
    for state in states.values():
        if state["status"] in STATUS_GROUPS:
            out[state["status"]] += 1
        live_power += _decimal(state["power"]) or 0
    out["other"] = out["all"] - sum(out[s] for s in STATUS_GROUPS)
    out["rated_power"] = Decimal(str(rated or 0))
    out["live_power"] = live_power
    return out


def connectors(page=0, page_size=48, redis=None, **filters):
    """(cards, total): one dict per connector of the page, ordered by station and code, with its
    live state (see :func:`live_states`)."""
    redis = redis or get_redis()
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
    states = live_states(redis, [(c.code, p.code, c.status) for c, p, _ in rows])
    cards = []
    for c, p, s in rows:
        state = states[c.code]
        cards.append(
            {
                "id": c.id,
                "code": c.code,
                "name": c.name,
                "park_no": c.park_no,
                "pile_name": p.name,
                "pile_code": p.code,
                "station_name": s.name,
                "station_id": s.id,
                **state,
                "live_power": state["power"],
            }
        )
    return cards, total


def status_timeline(connector_id, limit=50):
    """The connector's last ``limit`` status changes, newest first, each with how long it lasted
    (until the next change, or until now for the current one); None outside the data scope."""
    connector = db.session.scalar(apply_scope(select(Connector).where(Connector.id == connector_id), Connector))
    if connector is None:
        return None
    logs = db.session.scalars(
        select(ConnectorStatusLog)
        .where(ConnectorStatusLog.connector_id == connector_id)
        .order_by(ConnectorStatusLog.at.desc(), ConnectorStatusLog.id.desc())
        .limit(limit)
    ).all()
    entries = []
    until = utcnow()
    for log in logs:
        entries.append({"at": log.at, "status": log.status, "previous_status": log.previous_status,
                        "reason": log.reason, "seconds": max(int((until - log.at).total_seconds()), 0)})
        until = log.at
    return connector, entries


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
