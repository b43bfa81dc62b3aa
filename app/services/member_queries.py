"""Read-side queries of the member app (``app.member_api``): nearby stations, a station's prices of
today and its guns' live state, a member's own charging and occupancy orders, live figures.

Nothing here writes. Every query applies the data scope (:func:`app.security.scope.apply_scope`): the
member API runs acting as the member's operator, so a row of another operator is simply not found.
Live state is the gateway's (Redis) through :func:`app.services.monitor.live_states` (the admin's
live panel: the same status vocabulary, ``CONNECTOR_STATUS``); live order figures through
:func:`app.services.order_queries.live_figures`; prices through :mod:`app.services.pricing`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import func, select

from app.extensions import db, get_redis
from app.models import ChargeOrder, Connector, OccupancyOrder, Pile, Station
from app.models.order import ACTIVE_ORDER_STATUSES
from app.security.scope import apply_scope
from app.services import clock, pricing
from app.services.money import q_amount, q_energy, q_hundredth, q_live_power

EARTH_RADIUS_KM = 6371.0088
KM_PER_DEGREE = 111.32          # one degree of latitude (and of longitude at the equator)
OPEN_STATION_STATUS = "normal"  # 电站状态 "In use": the only stations the app lists nearby
FREE_STATUS = "idle"
MAX_ID = 2**31 - 1              # ids are 32-bit integers: a larger one names no row (and PostgreSQL refuses it)


def _valid_id(value) -> bool:
    return isinstance(value, int) and 0 < value <= MAX_ID


# ----- geometry ------------------------------------------------------------------------------------------
def haversine_km(lng1, lat1, lng2, lat2) -> float:
    """Great-circle distance in km between two (lng, lat) points in degrees (GCJ-02 is close enough)."""
    p1, p2 = math.radians(float(lat1)), math.radians(float(lat2))
    dp, dl = p2 - p1, math.radians(float(lng2) - float(lng1))
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def bounding_box(lng, lat, radius_km):
    """(min lng, max lng, min lat, max lat) of a box holding the circle (a prefilter for SQL)."""
    lng, lat, radius_km = float(lng), float(lat), float(radius_km)
    dlat = radius_km / KM_PER_DEGREE
    cos_lat = math.cos(math.radians(lat))
    dlng = 180.0 if cos_lat < 1e-6 else min(180.0, radius_km / (KM_PER_DEGREE * cos_lat))
    return lng - dlng, lng + dlng, max(-90.0, lat - dlat), min(90.0, lat + dlat)


def distance_km(value: float) -> Decimal:
    """A distance as shown to the member: km to 2 decimals."""
    return q_hundredth(Decimal(repr(value)))


# ----- prices ---------------------------------------------------------------------------------------------
def _clock_text(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def local_minute(now: datetime | None = None) -> int:
    local = clock.local_now(now)
    return local.hour * 60 + local.minute


def prices_today(template, now: datetime | None = None) -> list[dict]:
    """The template's periods of today (local clock): start/end "HH:MM", level, electricity and service
    price per kWh (5 dp, from the same snapshot the orders are priced with), their sum and whether the
    period is in force now. [] when the station has no (valid) template."""
    if template is None or not template.periods:
        return []
    try:
        periods = pricing.tariff_periods(pricing.snapshot(template))
    except pricing.PricingError:
        return []
    minute = local_minute(now)
    return [{"start": _clock_text(p.start_minute), "end": _clock_text(p.end_minute), "level": p.level,
             "electricity_price": p.electricity_price, "service_price": p.service_price,
             "price": p.electricity_price + p.service_price,
             "current": p.start_minute <= minute < p.end_minute} for p in periods]


def price_now(template, now: datetime | None = None) -> dict | None:
    """The period of ``template`` in force now (see :func:`prices_today`), None without a template."""
    return next((p for p in prices_today(template, now) if p["current"]), None)


# ----- live gun state --------------------------------------------------------------------------------------
def gun_states(connectors) -> dict[int, dict]:
    """{connector id: {"status", "updated_at", "available", live figures while charging}} from the
    gateway's live state (Redis); ``available`` = idle and enabled (gun and pile)."""
    connectors = list(connectors)
    if not connectors:
        return {}
    from app.services.monitor import live_states

    states = live_states(get_redis(), [(c.code, c.pile.code, c.status) for c in connectors])
    out = {}
    for c in connectors:
        state = dict(states[c.code])
        state["enabled"] = bool(c.enabled and c.pile.enabled)
        state["available"] = state["enabled"] and state["status"] == FREE_STATUS
        state["updated_at"] = clock.parse_iso_utc(state.get("updated_at"))
        out[c.id] = state
    return out


def gun_rows(connectors) -> list[dict]:
    """The guns (ordered by pile code and gun no.) with their live state, for the app's lists."""
    connectors = sorted(connectors, key=lambda c: (c.pile.code, c.gun_no))
    states = gun_states(connectors)
    return [{"id": c.id, "code": c.code, "name": c.name, "gun_no": c.gun_no, "pile_id": c.pile_id,
             "pile_code": c.pile.code, "pile_name": c.pile.name, "pile_type": c.pile.pile_type,
             "power_kw": c.power_kw if c.power_kw is not None else c.pile.power_kw,
             "interface_type": c.interface_type, "national_standard": c.national_standard, "park_no": c.park_no,
             "status": states[c.id]["status"], "enabled": states[c.id]["enabled"],
             "available": states[c.id]["available"], "updated_at": states[c.id]["updated_at"],
             "power": _live_power(states[c.id].get("power")), "soc": _int(states[c.id].get("soc"))}
            for c in connectors]


def _live_power(text):
    try:
        return q_live_power(text) if text not in (None, "") else None
    except ArithmeticError:
        return None


def _int(text):
    try:
        return int(text) if text not in (None, "") else None
    except ValueError:
        return None


def _connectors_of_stations(station_ids) -> dict[int, list]:
    if not station_ids:
        return {}
    rows = db.session.scalars(apply_scope(select(Connector).where(Connector.station_id.in_(station_ids)),
                                          Connector)).all()
    out: dict[int, list] = {sid: [] for sid in station_ids}
    for c in rows:
        out[c.station_id].append(c)
    return out


# ----- stations --------------------------------------------------------------------------------------------
@dataclass
class NearbyPage:
    items: list = field(default_factory=list)
    total: int = 0
    page: int = 1
    page_size: int = 20


def nearby_stations(lng, lat, radius_km, page: int = 1, page_size: int = 20, now: datetime | None = None) -> NearbyPage:
    """The open stations in scope within ``radius_km`` of (lng, lat), nearest first: a bounding box in
    SQL, the exact distance in Python. Each item: the station, ``distance_km``, ``free_guns`` /
    ``total_guns`` (live) and ``price_now``."""
    min_lng, max_lng, min_lat, max_lat = bounding_box(lng, lat, radius_km)
    stmt = apply_scope(select(Station.id, Station.lng, Station.lat).where(
        Station.status == OPEN_STATION_STATUS, Station.lng.is_not(None), Station.lat.is_not(None),
        Station.lng.between(Decimal(repr(min_lng)), Decimal(repr(max_lng))),
        Station.lat.between(Decimal(repr(min_lat)), Decimal(repr(max_lat)))), Station)
    hits = []
    for sid, s_lng, s_lat in db.session.execute(stmt).all():
        d = haversine_km(lng, lat, s_lng, s_lat)
        if d <= float(radius_km):
            hits.append((d, sid))
    hits.sort()
    start = (page - 1) * page_size
    chosen = hits[start:start + page_size]
    ids = [sid for _, sid in chosen]
    stations = {s.id: s for s in db.session.scalars(select(Station).where(Station.id.in_(ids)))} if ids else {}
    guns = _connectors_of_stations(ids)
    states = gun_states([c for cs in guns.values() for c in cs])
    items = []
    for d, sid in chosen:
        station = stations[sid]
        station_guns = guns.get(sid, [])
        items.append({"station": station, "distance_km": distance_km(d), "total_guns": len(station_guns),
                      "free_guns": sum(1 for c in station_guns if states[c.id]["available"]),
                      "price_now": price_now(station.price_template, now)})
    return NearbyPage(items=items, total=len(hits), page=page, page_size=page_size)


def station(station_id):
    """A station in scope, or None."""
    if not _valid_id(station_id):
        return None
    return db.session.scalar(apply_scope(select(Station).where(Station.id == station_id), Station))


def station_detail(station_id, now: datetime | None = None) -> dict | None:
    """A station in scope with its prices of today and its guns' live state; None outside the scope."""
    found = station(station_id)
    if found is None:
        return None
    connectors = _connectors_of_stations([found.id])[found.id]
    guns = gun_rows(connectors)
    return {"station": found, "prices_today": prices_today(found.price_template, now),
            "price_now": price_now(found.price_template, now), "guns": guns,
            "total_guns": len(guns), "free_guns": sum(1 for g in guns if g["available"])}


def connector(connector_id):
    """A gun in scope, or None."""
    if not _valid_id(connector_id):
        return None
    return db.session.scalar(apply_scope(select(Connector).where(Connector.id == connector_id), Connector))


def pile_by_code(code):
    """A pile in scope by its 14-digit code, or None."""
    return db.session.scalar(apply_scope(select(Pile).where(Pile.code == code), Pile))


def pile_view(pile, connector_code=None, now: datetime | None = None) -> dict:
    """What a QR code names: the pile's station (:func:`station_detail`: prices of today, live gun
    counts), the pile, its guns (live state) and ``selected_connector_id`` when the code names one gun
    or the pile has exactly one."""
    detail = station_detail(pile.station_id, now)
    guns = [g for g in (detail["guns"] if detail else []) if g["pile_id"] == pile.id]
    selected = None
    if connector_code is not None:
        selected = next((g["id"] for g in guns if g["code"] == connector_code), None)
    elif len(guns) == 1:
        selected = guns[0]["id"]
    return {"station": detail, "pile": pile, "guns": guns, "selected_connector_id": selected}


# ----- the member's orders -----------------------------------------------------------------------------------
def _member_orders(model, member_id):
    return apply_scope(select(model).where(model.member_id == member_id), model)


def _day_window(stmt, column, date_from: date | None, date_to: date | None):
    if date_from is not None:
        stmt = stmt.where(column >= clock.day_bounds_utc(date_from)[0])
    if date_to is not None:
        stmt = stmt.where(column < clock.day_bounds_utc(date_to)[1])
    return stmt


def _page(stmt, order_by, page, page_size):
    total = db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = db.session.scalars(stmt.order_by(*order_by).limit(page_size).offset((page - 1) * page_size)).all()
    return rows, total


def member_orders(member_id, *, status=None, date_from=None, date_to=None, page=1, page_size=20):
    """(orders, total) of the member's charging orders, newest first; ``status`` one order status,
    ``date_from``/``date_to`` local days of the order's creation (both included)."""
    stmt = _member_orders(ChargeOrder, member_id)
    if status:
        stmt = stmt.where(ChargeOrder.status == status)
    stmt = _day_window(stmt, ChargeOrder.created_at, date_from, date_to)
    return _page(stmt, (ChargeOrder.created_at.desc(), ChargeOrder.id.desc()), page, page_size)


def member_order(member_id, order_id):
    """The member's own charging order, or None (another member's, another operator's)."""
    if not _valid_id(order_id):
        return None
    return db.session.scalar(_member_orders(ChargeOrder, member_id).where(ChargeOrder.id == order_id))


def active_orders(member_id):
    """The member's orders in progress (pending, starting, charging, stopping), newest first."""
    return db.session.scalars(_member_orders(ChargeOrder, member_id).where(
        ChargeOrder.status.in_(ACTIVE_ORDER_STATUSES)).order_by(ChargeOrder.id.desc())).all()


def member_occupancy_orders(member_id, *, status=None, date_from=None, date_to=None, page=1, page_size=20):
    """(occupancy orders, total) of the member, newest first (filters as :func:`member_orders`, on the
    start of the occupation)."""
    stmt = _member_orders(OccupancyOrder, member_id)
    if status:
        stmt = stmt.where(OccupancyOrder.status == status)
    stmt = _day_window(stmt, OccupancyOrder.started_at, date_from, date_to)
    return _page(stmt, (OccupancyOrder.started_at.desc(), OccupancyOrder.id.desc()), page, page_size)


def member_occupancy_order(member_id, occupancy_id):
    """The member's own occupancy order, or None."""
    if not _valid_id(occupancy_id):
        return None
    return db.session.scalar(_member_orders(OccupancyOrder, member_id).where(OccupancyOrder.id == occupancy_id))


# ----- live figures of an order ----------------------------------------------------------------------------
def _dec(value, quantizer):
    """A figure of :func:`order_queries.live_figures` (a float from a stored decimal) back as a Decimal."""
    if value is None:
        return None
    return quantizer(Decimal(repr(value)) if isinstance(value, float) else value)


def live(order, now: datetime | None = None) -> dict:
    """Status, energy (kWh), amount so far (yuan), power (kW), voltage, current, SOC and duration of an
    order the caller may see: the gateway's live figures while it runs, the order's own once it ended."""
    from app.services.order_queries import live_figures

    figures = live_figures([order.id], now=now).get(order.id) or {}
    active = order.status in ACTIVE_ORDER_STATUSES
    if active:
        energy, amount = _dec(figures.get("energy"), q_energy), _dec(figures.get("amount"), q_amount)
    else:                         # ended: the order's own (priced) figures, not the last realtime frame
        energy, amount = q_energy(order.energy or 0), q_amount(order.total_amount or 0)
    return {"order_id": order.id, "order_no": order.order_no, "status": order.status,
            "energy": energy if energy is not None else Decimal("0.0000"),
            "amount": amount if amount is not None else Decimal("0.0000"),
            "power": _dec(figures.get("power"), q_live_power) if active else None,
            "voltage": _dec(figures.get("voltage"), q_hundredth) if active else None,
            "current": _dec(figures.get("current"), q_hundredth) if active else None,
            "soc": figures.get("soc") if active else order.end_soc,
            "remaining_minutes": figures.get("remaining_minutes") if active else None,
            "duration_seconds": int(figures.get("duration_seconds") or 0),
            "updated_at": clock.parse_iso_utc(figures.get("updated_at")),
            "started_at": order.started_at, "prepaid_amount": order.prepaid_amount,
            "connector_id": order.connector_id, "station_id": order.station_id}
