"""故障上报 and 意见反馈: what members send from the app, and the staff reply.

Member side (the member API calls these, acting as the member's operator):

* :func:`submit_fault_report` — a gun of the member's operator (``connector_id``; its pile and station
  are taken from it), a fault type (故障类型, enabled), a text and 0–``MAX_PHOTOS`` photos; status
  ``pending``.
* :func:`submit_feedback` — a text, an optional contact (phone or anything the member writes), 0–
  ``MAX_PHOTOS`` photos; status ``new``; the member's name and phone are copied for the 意见反馈 list.

Photos arrive as bytes (the API decodes base64): each must be a real JPEG / PNG / GIF / WebP image —
checked by content with Pillow (``Image.verify``), never by a name — at most ``MAX_PHOTO_BYTES`` bytes
and ``MAX_PIXELS`` pixels. They are stored like every other upload: ``UPLOAD_FOLDER/<32 hex>.<ext of
the detected format>``, the names kept in the row's ``photos`` JSON list (served to staff in scope by
``/uploads/<name>``). A refused photo refuses the whole submission; files already written for it are
removed.

Staff side: :func:`reply_fault_report` / :func:`reply_feedback` record the status, the reply, who
(``handled_by`` / ``replied_by``) and when (``handled_at`` / ``replied_at``); the member reads the reply
in the API. Both rows are history (never deleted).
"""
from __future__ import annotations

import io
import os
import uuid

from flask import current_app
from flask_babel import lazy_gettext as _l
from PIL import Image, UnidentifiedImageError
from sqlalchemy import select

from app.extensions import db
from app.models import Connector, FaultReport, FaultType, Feedback
from app.models.base import utcnow
from app.models.pile import FAULT_REPORT_STATUS, FEEDBACK_STATUS
from app.security.scope import apply_scope

MAX_PHOTOS = 6
MAX_PHOTO_BYTES = 4 * 1024 * 1024
MAX_PIXELS = 40_000_000
MAX_TEXT = 2000
IMAGE_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "WEBP": ".webp"}
FAULT_STATUSES = tuple(v for v, _ in FAULT_REPORT_STATUS)
FEEDBACK_STATUSES = tuple(v for v, _ in FEEDBACK_STATUS)


class RequestError(Exception):
    """A refused submission or reply; ``code`` is stable (the member API maps it), ``field`` the input."""

    def __init__(self, code, message, field=None):
        super().__init__(str(message))
        self.code = code
        self.message = message
        self.field = field


# ----- photos -------------------------------------------------------------------------------------------
def image_extension(data: bytes) -> str:
    """The stored extension of ``data`` if it is a real image within the limits; RequestError otherwise."""
    if not data:
        raise RequestError("invalid_photo", _l("Only image files (jpg, png, gif, webp) can be uploaded."), "photos")
    if len(data) > MAX_PHOTO_BYTES:
        raise RequestError("photo_too_large", _l("A photo may be at most %(mb)s MB.",
                                                 mb=MAX_PHOTO_BYTES // (1024 * 1024)), "photos")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format
            width, height = img.size
            img.verify()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise RequestError("invalid_photo", _l("Only image files (jpg, png, gif, webp) can be uploaded."),
                           "photos") from exc
    if fmt not in IMAGE_FORMATS:
        raise RequestError("invalid_photo", _l("Only image files (jpg, png, gif, webp) can be uploaded."), "photos")
    if width * height > MAX_PIXELS:
        raise RequestError("photo_too_large", _l("The image is too large."), "photos")
    return IMAGE_FORMATS[fmt]


def check_photos(photos) -> list[str]:
    """The extensions of ``photos`` (a list of bytes), all checked before anything is written."""
    photos = list(photos or [])
    if len(photos) > MAX_PHOTOS:
        raise RequestError("too_many_photos", _l("At most %(n)s photos.", n=MAX_PHOTOS), "photos")
    return [image_extension(p) for p in photos]


def _store(photos, exts) -> list[str]:
    folder = current_app.config["UPLOAD_FOLDER"]
    os.makedirs(folder, exist_ok=True)
    names = []
    for data, ext in zip(photos, exts, strict=True):
        name = uuid.uuid4().hex + ext
        with open(os.path.join(folder, name), "wb") as fh:
            fh.write(data)
        names.append(name)
    return names


def _unstore(names):
    folder = current_app.config["UPLOAD_FOLDER"]
    for name in names:
        try:
            os.remove(os.path.join(folder, name))
        except OSError:
            pass


def _text(value, field, required=True, limit=MAX_TEXT, message=None):
    text = (value or "").strip()
    if required and not text:
        raise RequestError("text_required", message or _l("Describe the problem."), field)
    if len(text) > limit:
        raise RequestError("text_too_long", _l("At most %(n)s characters.", n=limit), field)
    return text or None


def _save(row, photos, exts):
    names = _store(photos, exts)
    row.photos = names
    try:
        db.session.add(row)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        _unstore(names)
        raise
    return row


# ----- member: fault types, reports, feedback -------------------------------------------------------------
def fault_types():
    """The enabled 故障类型 in their order (a global catalogue)."""
    return db.session.scalars(select(FaultType).where(FaultType.enabled.is_(True))
                              .order_by(FaultType.sort, FaultType.id)).all()


def submit_fault_report(member, connector_id, fault_type_id, text, photos=(), contact_phone=None) -> FaultReport:
    """Store the member's 故障上报 (module docstring) and commit."""
    text = _text(text, "text")
    exts = check_photos(photos)
    connector = db.session.scalar(select(Connector).where(Connector.id == connector_id,
                                                          Connector.operator_id == member.operator_id))
    if connector is None:
        raise RequestError("connector_not_found", _l("No such charging gun."), "connector_id")
    fault_type = db.session.get(FaultType, fault_type_id)
    if fault_type is None or not fault_type.enabled:
        raise RequestError("fault_type_not_found", _l("No such fault type."), "fault_type_id")
    report = FaultReport(operator_id=member.operator_id, member_id=member.id, fault_type_id=fault_type.id,
                         station_id=connector.station_id, pile_id=connector.pile_id, connector_id=connector.id,
                         description=text, contact_phone=_text(contact_phone, "contact_phone", False, 20)
                         or member.phone, status="pending")
    return _save(report, list(photos or []), exts)


def submit_feedback(member, text, contact=None, photos=()) -> Feedback:
    """Store the member's 意见反馈 (module docstring) and commit."""
    text = _text(text, "text")
    contact = _text(contact, "contact", False, 20)
    exts = check_photos(photos)
    feedback = Feedback(operator_id=member.operator_id, member_id=member.id, name=member.nickname,
                        phone=contact or member.phone, content=text, status="new")
    return _save(feedback, list(photos or []), exts)


def member_fault_reports_query(member):
    return (select(FaultReport).where(FaultReport.member_id == member.id,
                                      FaultReport.operator_id == member.operator_id)
            .order_by(FaultReport.created_at.desc(), FaultReport.id.desc()))


def member_feedback_query(member):
    return (select(Feedback).where(Feedback.member_id == member.id, Feedback.operator_id == member.operator_id)
            .order_by(Feedback.created_at.desc(), Feedback.id.desc()))


# ----- staff: reply -------------------------------------------------------------------------------------------
def _in_scope(model, row_id):
    return db.session.scalar(apply_scope(select(model).where(model.id == row_id), model))


def reply_fault_report(report_id, user, status, reply) -> FaultReport:
    """Record the handling of a fault report: status, reply, who and when; commit."""
    report = _in_scope(FaultReport, report_id)
    if report is None:
        raise RequestError("not_found", _l("No such fault report."))
    if status not in FAULT_STATUSES or status == "pending":
        raise RequestError("invalid_status", _l("Choose the handling status."), "status")
    report.status = status
    report.reply = _text(reply, "reply", True, message=_l("Enter the reply."))
    report.handled_by_id = getattr(user, "id", None)
    report.handled_at = utcnow()
    db.session.commit()
    return report


def reply_feedback(feedback_id, user, status, reply) -> Feedback:
    """Record the reply to a feedback: status, reply, who and when; commit."""
    feedback = _in_scope(Feedback, feedback_id)
    if feedback is None:
        raise RequestError("not_found", _l("No such feedback."))
    if status not in FEEDBACK_STATUSES or status == "new":
        raise RequestError("invalid_status", _l("Choose the handling status."), "status")
    feedback.status = status
    feedback.reply = _text(reply, "reply", True, message=_l("Enter the reply."))
    feedback.replied_by_id = getattr(user, "id", None)
    feedback.replied_at = utcnow()
    db.session.commit()
    return feedback
