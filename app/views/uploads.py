"""Uploaded images (station photos, fault report and feedback photos): checked by content when
uploaded, served to logged-in staff whose data scope covers the row that holds the photo.

- Upload: :func:`check_image` opens the file with Pillow; only real JPEG / PNG / GIF / WebP images
  pass, and the stored name takes the extension of the detected format (never the client's).
- Serve: the name must look like one we stored (32 hex + image extension); the photo must belong
  to a station / fault report / feedback in the caller's scope (else 404, the same answer as for a
  name that does not exist); the answer carries ``X-Content-Type-Options: nosniff`` and the image
  type of its extension.
"""
import os
import re

from flask import abort, current_app, send_from_directory
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import lazy_gettext as _l
from PIL import Image, UnidentifiedImageError
from sqlalchemy import String, cast, select
from wtforms.validators import ValidationError

from app.extensions import db
from app.security.scope import apply_scope

IMAGE_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "WEBP": ".webp"}
MIMETYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif",
             ".webp": "image/webp"}
STORED_NAME = re.compile(r"[0-9a-f]{32}\.(jpg|jpeg|png|gif|webp)")
MAX_PIXELS = 40_000_000  # 40 megapixels: a photo, not a decompression bomb


def check_image(storage):
    """The stored extension for an uploaded file (werkzeug FileStorage) that is a real image;
    :class:`ValidationError` otherwise. The stream is rewound for saving."""
    stream = storage.stream
    try:
        stream.seek(0)
        with Image.open(stream) as img:
            fmt = img.format
            width, height = img.size
            img.verify()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValidationError(_l("Only image files (jpg, png, gif, webp) can be uploaded.")) from exc
    finally:
        stream.seek(0)
    if fmt not in IMAGE_FORMATS:
        raise ValidationError(_l("Only image files (jpg, png, gif, webp) can be uploaded."))
    if width * height > MAX_PIXELS:
        raise ValidationError(_l("The image is too large."))
    return IMAGE_FORMATS[fmt]


def _owner_models():
    from app.models import FaultReport, Feedback, Station

    return (Station, FaultReport, Feedback)


def _tip_image_columns():
    """Campaign tip images (赠券提示, a JSON list of names like ``photos``)."""
    from app.models import Campaign, CouponCampaign

    return ((Campaign, Campaign.gift_tip_images), (CouponCampaign, CouponCampaign.gift_tip_images))


def photo_in_scope(filename):
    """Does a row in the caller's scope hold this photo?"""
    needle = f'%"{filename}"%'  # photos is a JSON list of names; the name is [0-9a-f.] only
    columns = [(model, model.photos) for model in _owner_models()] + list(_tip_image_columns())
    for model, column in columns:
        query = select(model.id).where(cast(column, String).like(needle)).limit(1)
        if db.session.execute(apply_scope(query, model)).first() is not None:
            return True
    return False


class UploadsView(BaseView):
    route_base = "/uploads"
    default_view = "serve"

    @expose("/<path:filename>")
    @has_access
    def serve(self, filename):
        if not STORED_NAME.fullmatch(filename) or not photo_in_scope(filename):
            abort(404)
        ext = os.path.splitext(filename)[1]
        response = send_from_directory(os.path.abspath(current_app.config["UPLOAD_FOLDER"]), filename,
                                       mimetype=MIMETYPES[ext])
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
        return response
