"""故障上报 and 意见反馈 from the member (app/services/member_requests.py).

``GET /fault-types``; ``POST /fault-reports``, ``GET /fault-reports`` (paged), ``GET /fault-reports/<id>``;
``POST /feedback``, ``GET /feedback`` (paged), ``GET /feedback/<id>``.

Photos travel inside the JSON body: ``photos`` is a list of base64 strings (standard alphabet, padded;
a ``data:image/...;base64,`` prefix is accepted), at most 6, each at most 4 MB decoded. Each is checked by
content (a real JPEG / PNG / GIF / WebP image) and stored like every other upload; the answers list the
stored names (``photos``), which staff open under ``/uploads/<name>``.
"""
import base64
import binascii

from flask import jsonify
from marshmallow import Schema, fields, validate

from app.member_api import bp, dump, load
from app.member_api.auth import current_member, member_required
from app.member_api.errors import ApiError
from app.member_api.invoices import ID, MAX_ID, NO_NUL, _page
from app.member_api.openapi import errors
from app.member_api.schemas import PageMeta, PageQuery, UtcDateTime
from app.services import member_requests as requests_svc

_CODES = {"connector_not_found", "fault_type_not_found", "invalid_photo", "photo_too_large"}
_PHOTO_CHARS = (requests_svc.MAX_PHOTO_BYTES * 4) // 3 + 64


def _photos_field():
    return fields.List(fields.String(validate=validate.Length(min=1, max=_PHOTO_CHARS)), load_default=list,
                       validate=validate.Length(max=requests_svc.MAX_PHOTOS),
                       metadata={"description": "base64 images (jpg, png, gif, webp), at most 6, 4 MB each"})


def _decode(photos):
    out = []
    for text in photos or []:
        if text.startswith("data:") and "," in text:
            text = text.split(",", 1)[1]
        try:
            out.append(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            raise ApiError("invalid_photo", fields={"photos": ["base64"]}) from None
    return out


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except requests_svc.RequestError as exc:
        field = {exc.field: [str(exc.message)]} if exc.field else None
        if exc.code in _CODES:
            raise ApiError(exc.code, fields=field) from None
        raise ApiError("invalid_request", fields=field or {"_body": [str(exc.message)]}) from None


class FaultTypeSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)


class FaultTypeList(Schema):
    items = fields.List(fields.Nested(FaultTypeSchema), required=True)


class FaultReportIn(Schema):
    connector_id = fields.Integer(required=True, strict=True, validate=ID,
                                  metadata={"description": "the gun (终端) id"})
    fault_type_id = fields.Integer(required=True, strict=True, validate=ID)
    text = fields.String(required=True, validate=[validate.Length(min=1, max=requests_svc.MAX_TEXT), NO_NUL])
    contact_phone = fields.String(allow_none=True, load_default=None, validate=[validate.Length(max=20), NO_NUL])
    photos = _photos_field()


class FaultReportSchema(Schema):
    id = fields.Integer(required=True)
    fault_type_id = fields.Integer(required=True)
    fault_type = fields.Function(lambda r: r.fault_type.name if r.fault_type else None, allow_none=True)
    connector_id = fields.Integer(allow_none=True)
    connector_code = fields.Function(lambda r: r.connector.code if r.connector else None, allow_none=True)
    station = fields.Function(lambda r: r.station.name if r.station else None, allow_none=True)
    text = fields.String(attribute="description", allow_none=True)
    contact_phone = fields.String(allow_none=True)
    photos = fields.Function(lambda r: list(r.photos or []), required=True)
    status = fields.String(required=True, metadata={"description": "pending, processing, resolved or rejected"})
    reply = fields.String(allow_none=True)
    handled_at = UtcDateTime(allow_none=True)
    created_at = UtcDateTime(allow_none=True)


class FaultReportPage(PageMeta):
    items = fields.List(fields.Nested(FaultReportSchema), required=True)


class FeedbackIn(Schema):
    text = fields.String(required=True, validate=[validate.Length(min=1, max=requests_svc.MAX_TEXT), NO_NUL])
    contact = fields.String(allow_none=True, load_default=None, validate=[validate.Length(max=20), NO_NUL],
                            metadata={"description": "how to reach the member (defaults to their phone)"})
    photos = _photos_field()


class FeedbackSchema(Schema):
    id = fields.Integer(required=True)
    text = fields.String(attribute="content", required=True)
    contact = fields.String(attribute="phone", allow_none=True)
    photos = fields.Function(lambda r: list(r.photos or []), required=True)
    status = fields.String(required=True, metadata={"description": "new, replied or closed"})
    reply = fields.String(allow_none=True)
    replied_at = UtcDateTime(allow_none=True)
    created_at = UtcDateTime(allow_none=True)


class FeedbackPage(PageMeta):
    items = fields.List(fields.Nested(FeedbackSchema), required=True)


@bp.get("/fault-types")
@member_required
def fault_types():
    """The fault types a report can name (故障类型).
    ---
    get:
      summary: Fault types
      responses:
        200:
          description: enabled fault types in their order
          content:
            application/json:
              schema: FaultTypeList
    """
    return jsonify(dump(FaultTypeList, {"items": requests_svc.fault_types()}))


@bp.post("/fault-reports")
@member_required
@errors("connector_not_found", "fault_type_not_found", "invalid_photo", "photo_too_large")
def fault_report_create():
    """Report a fault of a gun, with a text and photos (base64, checked by content).
    ---
    post:
      summary: Report a fault
      requestBody:
        required: true
        content:
          application/json:
            schema: FaultReportIn
      responses:
        201:
          description: the stored report (status pending)
          content:
            application/json:
              schema: FaultReportSchema
    """
    data = load(FaultReportIn)
    photos = _decode(data["photos"])
    report = _call(requests_svc.submit_fault_report, current_member(), data["connector_id"], data["fault_type_id"],
                   data["text"], photos, data.get("contact_phone"))
    return jsonify(dump(FaultReportSchema, report)), 201


@bp.get("/fault-reports")
@member_required
def fault_report_list():
    """My fault reports, newest first, with the staff reply.
    ---
    get:
      summary: My fault reports
      parameters:
      - in: query
        schema: PageQuery
      responses:
        200:
          description: a page of reports
          content:
            application/json:
              schema: FaultReportPage
    """
    args = load(PageQuery, location="args")
    return jsonify(dump(FaultReportPage, _page(requests_svc.member_fault_reports_query(current_member()), args)))


@bp.get("/fault-reports/<int:report_id>")
@member_required
def fault_report_detail(report_id):
    """One of my fault reports: status and reply.
    ---
    get:
      summary: My fault report
      responses:
        200:
          description: the report
          content:
            application/json:
              schema: FaultReportSchema
    """
    from app.extensions import db

    report = db.session.scalar(requests_svc.member_fault_reports_query(current_member())
                               .where(requests_svc.FaultReport.id == report_id)) if report_id <= MAX_ID else None
    if report is None:
        raise ApiError("not_found")
    return jsonify(dump(FaultReportSchema, report))


@bp.post("/feedback")
@member_required
@errors("invalid_photo", "photo_too_large")
def feedback_create():
    """Send feedback: a text, an optional contact and photos (base64, checked by content).
    ---
    post:
      summary: Send feedback
      requestBody:
        required: true
        content:
          application/json:
            schema: FeedbackIn
      responses:
        201:
          description: the stored feedback (status new)
          content:
            application/json:
              schema: FeedbackSchema
    """
    data = load(FeedbackIn)
    photos = _decode(data["photos"])
    feedback = _call(requests_svc.submit_feedback, current_member(), data["text"], data.get("contact"), photos)
    return jsonify(dump(FeedbackSchema, feedback)), 201


@bp.get("/feedback")
@member_required
def feedback_list():
    """My feedback, newest first, with the staff reply.
    ---
    get:
      summary: My feedback
      parameters:
      - in: query
        schema: PageQuery
      responses:
        200:
          description: a page of feedback
          content:
            application/json:
              schema: FeedbackPage
    """
    args = load(PageQuery, location="args")
    return jsonify(dump(FeedbackPage, _page(requests_svc.member_feedback_query(current_member()), args)))


@bp.get("/feedback/<int:feedback_id>")
@member_required
def feedback_detail(feedback_id):
    """One of my feedback messages: status and reply.
    ---
    get:
      summary: My feedback message
      responses:
        200:
          description: the feedback
          content:
            application/json:
              schema: FeedbackSchema
    """
    from app.extensions import db

    feedback = db.session.scalar(requests_svc.member_feedback_query(current_member())
                                 .where(requests_svc.Feedback.id == feedback_id)) if feedback_id <= MAX_ID else None
    if feedback is None:
        raise ApiError("not_found")
    return jsonify(dump(FeedbackSchema, feedback))
