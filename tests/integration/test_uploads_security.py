"""Uploaded images (issue 7 §4): checked by content with Pillow when uploaded, served with
``nosniff`` and only to users whose data scope covers the station (station photos, fault report
photos)."""
import io
import os
import uuid

import pytest
from PIL import Image
from sqlalchemy import select

from app.extensions import db
from app.models import FaultReport, FaultType, Operator, Station
from tests.conftest import ADMIN_PASSWORD


def image_bytes(fmt="PNG", size=(8, 8)):
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, format=fmt)
    return buf.getvalue()


def station_form(operator_id, name):
    return {"name": name, "station_type": "public", "status": "normal", "site_type": "residential",
            "ownership": "self", "operator": str(operator_id), "address": "江苏省南京市测试路9号",
            "lng": "118.700000", "lat": "32.000000", "park_nums": "4", "occupancy_free_minutes": "0",
            "occupancy_price": "0", "occupancy_unit": "minute"}


@pytest.fixture(scope="module")
def ops(app):
    with app.app_context():
        a = db.session.scalar(select(Operator.id).where(Operator.code == "MA1NJ0001"))
        b = db.session.scalar(select(Operator.id).where(Operator.code == "MA1NJ0002"))
        return a, b


def add_station_with_photo(client, operator_id, name, payload, filename):
    data = station_form(operator_id, name)
    data["photo_uploads"] = [(io.BytesIO(payload), filename)]
    return client.post("/stationview/add", data=data, content_type="multipart/form-data",
                       follow_redirects=True)


def station_photos(app, name):
    with app.app_context():
        st = db.session.scalar(select(Station).where(Station.name == name))
        return None if st is None else list(st.photos or [])


@pytest.mark.parametrize("payload,filename", [
    (b"<html><script>alert(1)</script></html>", "evil.png"),
    (b"GIF89a<script>alert(1)</script>", "evil.gif"),          # magic bytes only, not an image
    (b"%PDF-1.4 not an image", "doc.jpg"),
    (image_bytes("BMP"), "bitmap.png"),                        # a real image, but not an allowed format
])
def test_upload_that_is_not_an_allowed_image_is_refused(app, login, ops, payload, filename):
    client = login("admin", ADMIN_PASSWORD)
    name = f"上传拒绝-{uuid.uuid4().hex[:6]}"
    rv = add_station_with_photo(client, ops[0], name, payload, filename)
    assert rv.status_code == 200
    assert "Only image files (jpg, png, gif, webp) can be uploaded." in rv.get_data(as_text=True)
    assert station_photos(app, name) is None  # nothing saved


def test_upload_is_stored_under_the_detected_format(app, login, ops):
    client = login("admin", ADMIN_PASSWORD)
    name = f"上传格式-{uuid.uuid4().hex[:6]}"
    rv = add_station_with_photo(client, ops[0], name, image_bytes("PNG"), "photo.gif")
    assert rv.status_code == 200
    photos = station_photos(app, name)
    assert photos and photos[0].endswith(".png"), photos
    with open(os.path.join(app.config["UPLOAD_FOLDER"], photos[0]), "rb") as fh:
        assert fh.read() == image_bytes("PNG")


def test_station_photo_is_served_with_nosniff_only_within_scope(app, login, ops):
    client = login("admin", ADMIN_PASSWORD)
    name = f"上传权限-{uuid.uuid4().hex[:6]}"
    add_station_with_photo(client, ops[0], name, image_bytes("JPEG"), "p.jpg")
    photo = station_photos(app, name)[0]
    rv = client.get(f"/uploads/{photo}")
    assert rv.status_code == 200
    assert rv.headers["X-Content-Type-Options"] == "nosniff"
    assert rv.headers["Content-Type"] == "image/jpeg"
    rv.close()
    staff_a = login("staff_a", "staff-pass-1")
    rv = staff_a.get(f"/uploads/{photo}")
    assert rv.status_code == 200 and rv.headers["X-Content-Type-Options"] == "nosniff"
    rv.close()
    staff_b = login("staff_b", "staff-pass-1")
    assert staff_b.get(f"/uploads/{photo}").status_code == 404  # operator B: not their station
    client.get("/logout/")
    assert app.test_client().get(f"/uploads/{photo}").status_code in (302, 401, 403, 404)


def test_fault_report_photo_follows_the_station_scope(app, login, ops):
    folder = app.config["UPLOAD_FOLDER"]
    os.makedirs(folder, exist_ok=True)
    photo = uuid.uuid4().hex + ".webp"
    with open(os.path.join(folder, photo), "wb") as fh:
        fh.write(image_bytes("WEBP"))
    with app.app_context():
        station = db.session.scalar(select(Station).where(Station.operator_id == ops[1]).order_by(Station.id))
        fault_type = db.session.scalar(select(FaultType).limit(1))
        if fault_type is None:
            fault_type = FaultType(name="测试故障")
            db.session.add(fault_type)
            db.session.flush()
        report = FaultReport(fault_type_id=fault_type.id, station_id=station.id, operator_id=ops[1],
                             description="枪头损坏", photos=[photo])
        db.session.add(report)
        db.session.commit()
    rv = login("staff_b", "staff-pass-1").get(f"/uploads/{photo}")
    assert rv.status_code == 200 and rv.headers["Content-Type"] == "image/webp"
    assert rv.headers["X-Content-Type-Options"] == "nosniff"
    rv.close()
    assert login("staff_a", "staff-pass-1").get(f"/uploads/{photo}").status_code == 404


@pytest.mark.parametrize("name", ["../secret_key", "..%2fsecret_key", "secret_key", "x.png",
                                  uuid.uuid4().hex + ".png", uuid.uuid4().hex + ".html"])
def test_names_we_did_not_store_are_404(login, name):
    client = login("admin", ADMIN_PASSWORD)
    assert client.get(f"/uploads/{name}").status_code == 404
