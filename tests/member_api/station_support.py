"""Rows of the stations / charging / orders API tests (helpers, not fixtures): each test module makes
its own stations far from the demo ones, its own piles (codes 7720...) and its own members."""
from __future__ import annotations

import itertools
import uuid
from decimal import Decimal

from sqlalchemy import select

from app.extensions import db

# valley 00:00-12:00, peak 12:00-24:00 (local): yuan/kWh
TWO_PERIODS = (
    (0, 720, "valley", "0.30000", "0.40000"),
    (720, 1440, "peak", "1.00000", "0.80000"),
)
PILE_PREFIX = "7720"          # outside the gateway tests' pools (7700..., 7710...)
_numbers = itertools.count(1)
_run = uuid.uuid4().hex[:6].upper()


def operator_ids(app):
    """(operator A, operator B): the first two operators of the demo data."""
    from app.models import Operator

    with app.app_context():
        ids = db.session.scalars(select(Operator.id).order_by(Operator.id)).all()
    return ids[0], ids[1]


def next_pile_code() -> str:
    n = next(_numbers)
    return f"{PILE_PREFIX}{int(_run, 16) % 10**6:06d}{n:04d}"


def make_station(app, operator_id, *, lng, lat, status="normal", piles=(2,), periods=TWO_PERIODS, name=None,
                 occupancy=False) -> dict:
    """A station with its own price template and piles (``piles``: gun count of each). Returns
    {"id", "template_id", "piles": [{"id", "code", "guns": [connector ids]}]}."""
    from app.models import Connector, Pile, PricePeriod, PriceTemplate, Station

    n = next(_numbers)
    with app.app_context():
        template = PriceTemplate(operator_id=operator_id, code=f"MB{_run}{n}", name=f"会员测试模版{n}")
        template.periods = [PricePeriod(start_minute=s, end_minute=e, level=lv, electricity_price=Decimal(ep),
                                        service_price=Decimal(sp)) for s, e, lv, ep, sp in periods]
        station = Station(operator_id=operator_id, code=f"MB{_run}{n}", name=name or f"会员测试站{n}",
                          address=f"测试路{n}号", lng=Decimal(str(lng)), lat=Decimal(str(lat)), status=status,
                          price_template=template, business_hours="00:00-24:00",
                          occupancy_enabled=occupancy, occupancy_free_minutes=15 if occupancy else 0,
                          occupancy_price=Decimal("0.50000") if occupancy else Decimal("0"))
        db.session.add(station)
        db.session.flush()
        out = {"id": station.id, "template_id": template.id, "piles": []}
        for guns in piles:
            code = next_pile_code()
            pile = Pile(operator_id=operator_id, station_id=station.id, code=code, name=f"会员测试桩{code[-4:]}",
                        protocol="ykc15", gun_count=guns, power_kw=Decimal("60"))
            for g in range(1, guns + 1):
                pile.connectors.append(Connector(operator_id=operator_id, station_id=station.id, gun_no=g,
                                                 code=f"{code}{g:02d}", name=f"{g}号枪"))
            db.session.add(pile)
            db.session.flush()
            out["piles"].append({"id": pile.id, "code": code, "guns": [c.id for c in pile.connectors]})
        db.session.commit()
    return out


def make_member(app, operator_id, balance=Decimal("0")) -> int:
    """A new active member of the operator (registered through its first channel), with ``balance``
    booked on the wallet ledger (a recharge entry)."""
    from app.models import Channel, Member
    from app.services.wallet import post_entry

    n = next(_numbers)
    with app.app_context():
        channel_id = db.session.scalar(select(Channel.id).where(Channel.operator_id == operator_id)
                                       .order_by(Channel.id))
        member = Member(operator_id=operator_id, member_no=f"MB{_run}{n}", nickname=f"会员{n}",
                        phone=f"139{n:08d}", status="active", channel_id=channel_id)
        db.session.add(member)
        db.session.flush()
        if balance:
            post_entry(member.id, Decimal(balance), "recharge", idempotency_key=f"test-topup:{member.id}",
                       remark="test top-up")
        db.session.commit()
        return member.id


def settled_order(app, connector_id, member_id, start_utc, readings, pile_amount):
    """A charge on ``connector_id`` for the member, priced and settled by the real services: started at
    ``start_utc`` (naive UTC), meter samples ``readings`` [(minutes after the start, kWh so far)], the
    pile's bill with the last reading and ``pile_amount``. Returns the order id."""
    from datetime import timedelta

    from app.models import ChargeOrder, Connector, Member, MeterSample, PileBill
    from app.security.scope import platform_scope
    from app.services import charging, pricing, settlement

    with app.app_context(), platform_scope("test-member-orders"):
        connector = db.session.get(Connector, connector_id)
        order = charging.create_order(connector, origin="app", member=db.session.get(Member, member_id))
        samples = [(start_utc + timedelta(minutes=m), Decimal(e)) for m, e in readings]
        order.started_at, order.ended_at = start_utc, samples[-1][0]
        order.duration_seconds = int((order.ended_at - order.started_at).total_seconds())   # as record_bill does
        charging.set_status(order, "charging", "started")
        charging.set_status(order, "stopping", "stopped")
        db.session.flush()
        db.session.add_all(MeterSample(order_id=order.id, at=at, energy=e, power=Decimal("20")) for at, e in samples)
        order.pile_energy, order.pile_amount = samples[-1][1], Decimal(pile_amount)
        db.session.add(PileBill(operator_id=order.operator_id, serial=order.serial, pile_code=connector.pile.code,
                                gun_no=connector.gun_no, raw_hex="00", order_id=order.id, status="matched",
                                total_energy=samples[-1][1], total_amount=Decimal(pile_amount)))
        db.session.commit()
        order_id = order.id
        pricing.reprice_order(db.session.get(ChargeOrder, order_id))
        db.session.commit()
        settlement.settle_order(order_id)
        return order_id


def failed_order(app, connector_id, member_id):
    """An order the pile refused (start → failed), through the real services. Returns its id."""
    from app.models import Connector, Member
    from app.security.scope import platform_scope
    from app.services import charging

    with app.app_context(), platform_scope("test-member-orders"):
        connector = db.session.get(Connector, connector_id)
        order = charging.create_order(connector, origin="app", member=db.session.get(Member, member_id))
        order.failure_reason = "The gun is not plugged in"
        charging.set_status(order, "failed", "start_failed", remark=order.failure_reason)
        db.session.commit()
        return order.id


def _json_schema(node, components):
    """An OpenAPI 3.0 schema as JSON Schema: $refs inlined, ``nullable`` as a "null" type, and objects
    closed (an answer with a field the document does not name fails)."""
    if isinstance(node, list):
        return [_json_schema(n, components) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _json_schema(components[node["$ref"].rsplit("/", 1)[1]], components)
    out = {k: _json_schema(v, components) for k, v in node.items() if k not in ("nullable", "readOnly", "writeOnly")}
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if "properties" in out:
        out.setdefault("additionalProperties", False)
    return out


def conforms(app, rv, method, path):
    """Assert that the answer ``rv`` of ``method path`` (``path`` as documented, e.g.
    "/stations/{station_id}") is one the OpenAPI document allows: its status is documented and its
    JSON body matches the documented schema. Returns the body."""
    import jsonschema

    doc = app.extensions.get("cpms_member_openapi", {}).get("doc")
    if doc is None:
        doc = app.test_client().get("/api/app/v1/_openapi").get_json()
    op = doc["paths"]["/api/app/v1" + path][method]
    assert str(rv.status_code) in op["responses"], (path, rv.status_code, sorted(op["responses"]))
    spec = op["responses"][str(rv.status_code)]["content"]["application/json"]["schema"]
    body = rv.get_json()
    jsonschema.validate(body, _json_schema(spec, doc["components"]["schemas"]))
    return body
