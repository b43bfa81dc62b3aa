"""Stations and guns for the member: ``GET /stations/nearby``, ``GET /stations/<id>``, ``GET /guns/by-qr``.

Read side only (:mod:`app.services.member_queries`); the member sees the stations of their own operator
(the view runs acting as that operator): another operator's station or gun is ``not_found``.
"""
from flask import g, jsonify
from flask_babel import force_locale
from flask_babel import gettext as _
from marshmallow import Schema, fields, validate

from app.member_api import bp, dump, load
from app.member_api.auth import member_required
from app.member_api.errors import ApiError, api_locale
from app.member_api.openapi import errors
from app.member_api.schemas import Money, PageMeta, PageQuery, UtcDateTime
from app.models.pile import CONNECTOR_STATUS, PILE_TYPE
from app.models.station import PRICE_LEVEL, STATION_STATUS
from app.services import member_queries

STATUS_LABELS = dict(CONNECTOR_STATUS)
LEVEL_LABELS = dict(PRICE_LEVEL)


def label(choices, code):
    """The Chinese (or English, Accept-Language) label of a choice code; the code when unknown."""
    text = dict(choices).get(code) if not isinstance(choices, dict) else choices.get(code)
    return _(text) if text else (code or "")


def answer(schema_cls, obj, many=False):
    """The JSON answer of ``obj`` dumped with ``schema_cls``; labels in the caller's language."""
    with force_locale(api_locale()):
        return jsonify(dump(schema_cls, obj, many=many))


# ----- schemas ------------------------------------------------------------------------------------------------
class NearbyQuerySchema(PageQuery):
    lng = fields.Float(required=True, validate=validate.Range(-180.0, 180.0),
                       metadata={"description": "longitude (GCJ-02)"})
    lat = fields.Float(required=True, validate=validate.Range(-90.0, 90.0),
                       metadata={"description": "latitude (GCJ-02)"})
    radius_km = fields.Float(load_default=10.0, validate=validate.Range(min=0.1, max=100.0),
                             metadata={"description": "search radius in km (default 10)"})


class QrQuerySchema(Schema):
    content = fields.String(required=True, validate=validate.Length(min=1, max=500),
                            metadata={"description": "the text of the scanned QR code"})


class TariffPeriodSchema(Schema):
    start = fields.String(required=True, metadata={"description": "local time HH:MM"})
    end = fields.String(required=True, metadata={"description": "local time HH:MM (24:00 = midnight)"})
    level = fields.String(required=True, metadata={"description": "sharp, peak, flat or valley"})
    level_label = fields.Function(lambda p: label(LEVEL_LABELS, p["level"]), required=True,
                                  metadata={"type": "string"})
    electricity_price = Money(required=True, metadata={"description": "yuan per kWh"})
    service_price = Money(required=True, metadata={"description": "yuan per kWh"})
    price = Money(required=True, metadata={"description": "electricity + service, yuan per kWh"})
    current = fields.Boolean(required=True, metadata={"description": "the period in force now"})


class GunStateSchema(Schema):
    id = fields.Integer(required=True)
    code = fields.String(required=True, metadata={"description": "16 digits: pile code + gun no."})
    name = fields.String(required=True)
    gun_no = fields.Integer(required=True)
    pile_id = fields.Integer(required=True)
    pile_code = fields.String(required=True)
    pile_name = fields.String(required=True)
    pile_type = fields.String(required=True, metadata={"description": "dc, ac, ..."})
    pile_type_label = fields.Function(lambda g: label(PILE_TYPE, g["pile_type"]), required=True,
                                      metadata={"type": "string"})
    power_kw = Money(allow_none=True, metadata={"description": "rated power, kW"})
    interface_type = fields.String(required=True)
    national_standard = fields.String(required=True)
    park_no = fields.String(allow_none=True)
    status = fields.String(required=True, metadata={
        "description": "live status: " + ", ".join(code for code, _ in CONNECTOR_STATUS)})
    status_label = fields.Function(lambda g: label(STATUS_LABELS, g["status"]), required=True,
                                   metadata={"type": "string"})
    enabled = fields.Boolean(required=True)
    available = fields.Boolean(required=True, metadata={"description": "idle and enabled: a charge can start"})
    updated_at = UtcDateTime(allow_none=True, metadata={"description": "when the pile last reported the gun"})
    power = Money(allow_none=True, metadata={"description": "live power while charging, kW"})
    soc = fields.Integer(allow_none=True, metadata={"description": "battery % while charging"})


def _sf(name, type_="string", **kw):
    """A field read from ``item["station"]`` (documented with its JSON type)."""
    def read(item):
        value = getattr(item["station"], name)
        return str(value) if type_ == "string" and value is not None and not isinstance(value, str) else value

    kw.setdefault("required", not kw.get("allow_none"))
    return fields.Function(read, metadata={"type": type_, **kw.pop("metadata", {})}, **kw)


class StationBaseSchema(Schema):
    id = _sf("id", "integer")
    code = _sf("code")
    name = _sf("name")
    address = _sf("address")
    lng = _sf("lng", allow_none=True, metadata={"description": "GCJ-02 longitude (decimal string)"})
    lat = _sf("lat", allow_none=True, metadata={"description": "GCJ-02 latitude (decimal string)"})
    status = _sf("status")
    status_label = fields.Function(lambda i: label(STATION_STATUS, i["station"].status), required=True,
                                   metadata={"type": "string"})
    business_hours = _sf("business_hours", allow_none=True)
    total_guns = fields.Integer(required=True)
    free_guns = fields.Integer(required=True, metadata={"description": "guns idle and enabled now (live)"})
    price_now = fields.Nested(TariffPeriodSchema, allow_none=True, metadata={"description": "the period in force now"})


class NearbyStationSchema(StationBaseSchema):
    distance_km = Money(required=True)


class NearbyPageSchema(PageMeta):
    items = fields.List(fields.Nested(NearbyStationSchema), required=True)


class StationInfoSchema(StationBaseSchema):
    park_info = _sf("park_info", allow_none=True)
    park_fee = _sf("park_fee", allow_none=True)
    site_guide = _sf("site_guide", allow_none=True)
    service_tel = _sf("service_tel", allow_none=True)
    station_tel = _sf("station_tel", allow_none=True)
    services = fields.Function(lambda i: list(i["station"].services or []), required=True,
                               metadata={"type": "array", "items": {"type": "string"}})
    occupancy_enabled = _sf("occupancy_enabled", "boolean")
    occupancy_free_minutes = _sf("occupancy_free_minutes", "integer")
    occupancy_price = _sf("occupancy_price", metadata={"description": "yuan per unit"})
    occupancy_unit = _sf("occupancy_unit", metadata={"description": "minute or hour"})
    prices_today = fields.List(fields.Nested(TariffPeriodSchema), required=True)


class StationDetailSchema(StationInfoSchema):
    guns = fields.List(fields.Nested(GunStateSchema), required=True)


class QrPileSchema(Schema):
    id = fields.Integer(required=True)
    code = fields.String(required=True)
    name = fields.String(required=True)
    pile_type = fields.String(required=True)
    power_kw = Money(required=True)
    gun_count = fields.Integer(required=True)


class QrTargetSchema(Schema):
    station = fields.Nested(StationInfoSchema, required=True)
    pile = fields.Nested(QrPileSchema, required=True)
    guns = fields.List(fields.Nested(GunStateSchema), required=True, metadata={"description": "the pile's guns"})
    selected_connector_id = fields.Integer(allow_none=True, metadata={
        "description": "the gun the code names (or the pile's only gun); null: let the member choose"})


# ----- views --------------------------------------------------------------------------------------------------
@bp.get("/stations/nearby")
@member_required
def stations_nearby():
    """Open stations of my operator near a point, nearest first.
    ---
    get:
      summary: Nearby stations
      description: Stations in use within radius_km of (lng, lat), with distance, free/total guns (live)
        and the price in force now.
      parameters:
        - in: query
          schema: NearbyQuerySchema
      responses:
        200:
          description: a page of stations
          content:
            application/json:
              schema: NearbyPageSchema
    """
    args = load(NearbyQuerySchema, location="args")
    page = member_queries.nearby_stations(args["lng"], args["lat"], args["radius_km"], args["page"],
                                          args["page_size"])
    return answer(NearbyPageSchema, {"items": page.items, "total": page.total, "page": page.page,
                                     "page_size": page.page_size})


@bp.get("/stations/<int:station_id>")
@member_required
def station_detail(station_id):
    """A station with today's prices per period and its guns' live status.
    ---
    get:
      summary: Station detail
      responses:
        200:
          description: the station
          content:
            application/json:
              schema: StationDetailSchema
    """
    detail = member_queries.station_detail(station_id)
    if detail is None:
        raise ApiError("not_found")
    return answer(StationDetailSchema, detail)


@bp.get("/guns/by-qr")
@member_required
@errors("qr_not_recognized")
def gun_by_qr():
    """What a scanned QR code names: the station, the pile and its guns.
    ---
    get:
      summary: Gun by QR code
      description: The content is a channel prefix + a 16-digit gun code, or prefix + a 14-digit pile code
        (piles given only a prefix print that); a bare code is read too.
      parameters:
        - in: query
          schema: QrQuerySchema
      responses:
        200:
          description: the pile and its guns
          content:
            application/json:
              schema: QrTargetSchema
    """
    args = load(QrQuerySchema, location="args")
    target = resolve_qr(args["content"])
    return answer(QrTargetSchema, target)


def resolve_qr(content):
    """The pile view (:func:`member_queries.pile_view`) of a QR content for the current member;
    ApiError("qr_not_recognized") when it names nothing of the member's operator."""
    from app.services import qrcodes

    found = qrcodes.resolve(content, g.member.operator_id)
    pile = member_queries.pile_by_code(found[0]) if found else None
    target = member_queries.pile_view(pile, found[1]) if pile is not None else None
    if target is None or target["station"] is None:
        raise ApiError("qr_not_recognized")
    return target
