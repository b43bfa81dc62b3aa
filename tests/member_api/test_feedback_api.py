"""故障上报 and 意见反馈 in the member API: fault types, reports with photos checked by content, feedback,
the staff reply seen by the member, two operators."""
import base64
import io
import os
import uuid

import pytest
from PIL import Image

from app.extensions import db
from app.models import Connector, FaultReport, FaultType, Feedback
from app.services import member_requests
from tests.member_api.test_invoices_api import make_member, two_operators

API = "/api/app/v1"


def image_b64(fmt="PNG", size=(8, 6)):
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, fmt)
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture
def setup(app):
    """(member A, member B, a gun of A's operator, a gun of B's operator, an enabled and a disabled type)."""
    op_a, op_b = two_operators(app)
    a, b = make_member(app, op_a), make_member(app, op_b)
    with app.app_context():
        gun_a = db.session.query(Connector).filter_by(operator_id=op_a).order_by(Connector.id).first().id
        gun_b = db.session.query(Connector).filter_by(operator_id=op_b).order_by(Connector.id).first().id
        tag = uuid.uuid4().hex[:6]
        on = FaultType(name=f"扫码无反应{tag}", sort=1, enabled=True)
        off = FaultType(name=f"已停用{tag}", sort=2, enabled=False)
        db.session.add_all([on, off])
        db.session.commit()
        return a, b, gun_a, gun_b, on.id, off.id


def _headers(app, member_id):
    from tests.member_api.support import headers_for

    return headers_for(app, member_id)


def test_endpoints_need_a_token(client):
    for method, url in (("get", "/fault-types"), ("post", "/fault-reports"), ("get", "/fault-reports"),
                        ("get", "/fault-reports/1"), ("post", "/feedback"), ("get", "/feedback"),
                        ("get", "/feedback/1")):
        rv = getattr(client, method)(API + url)
        assert rv.status_code == 401 and rv.get_json()["code"] == "token_missing", url


def test_fault_types_lists_enabled_types_in_order(app, client, setup):
    a, _, _, _, on, off = setup
    rv = client.get(f"{API}/fault-types", headers=_headers(app, a))
    assert rv.status_code == 200
    ids = [t["id"] for t in rv.get_json()["items"]]
    assert on in ids and off not in ids


def test_fault_report_with_photos_and_the_reply(app, client, setup):
    from app.security.scope import platform_scope

    a, b, gun_a, gun_b, on, off = setup
    ha, hb = _headers(app, a), _headers(app, b)
    body = {"connector_id": gun_a, "fault_type_id": on, "text": "扫码后枪头没有反应",
            "photos": [image_b64("PNG"), "data:image/jpeg;base64," + image_b64("JPEG")]}
    rv = client.post(f"{API}/fault-reports", json=body, headers=ha)
    assert rv.status_code == 201, rv.get_json()
    report = rv.get_json()
    assert report["status"] == "pending" and report["reply"] is None and report["fault_type_id"] == on
    assert report["connector_id"] == gun_a and report["text"] == "扫码后枪头没有反应"
    names = report["photos"]
    assert len(names) == 2 and names[0].endswith(".png") and names[1].endswith(".jpg")
    folder = app.config["UPLOAD_FOLDER"]
    with open(os.path.join(folder, names[0]), "rb") as fh:
        assert Image.open(fh).format == "PNG"
    with app.app_context():
        row = db.session.get(FaultReport, report["id"])
        conn = db.session.get(Connector, gun_a)
        assert (row.station_id, row.pile_id, row.member_id) == (conn.station_id, conn.pile_id, a)

    # refused: the other operator's gun, unknown / disabled types, photos that are not images, too many
    for patch, status, code in (({"connector_id": gun_b}, 404, "connector_not_found"),
                                ({"connector_id": 999999999}, 404, "connector_not_found"),
                                ({"fault_type_id": off}, 404, "fault_type_not_found"),
                                ({"fault_type_id": 999999999}, 404, "fault_type_not_found"),
                                ({"photos": [base64.b64encode(b"<svg onload=alert(1)>").decode()]}, 400,
                                 "invalid_photo"),
                                ({"photos": ["not base64!"]}, 400, "invalid_photo"),
                                ({"photos": [base64.b64encode(b"GIF89a" + b"\0" * 20).decode()]}, 400,
                                 "invalid_photo"),
                                ({"photos": [image_b64()] * 7}, 400, "invalid_request"),
                                ({"text": ""}, 400, "invalid_request"),
                                ({"text": "   "}, 400, "invalid_request"),
                                ({"connector_id": "1"}, 400, "invalid_request"),
                                ({"connector_id": 2**40}, 400, "invalid_request"),
                                ({"text": "nul\x00"}, 400, "invalid_request")):
        rv = client.post(f"{API}/fault-reports", json={**body, **patch}, headers=ha)
        assert (rv.status_code, rv.get_json()["code"]) == (status, code), patch
    with app.app_context():
        assert db.session.query(FaultReport).filter_by(member_id=a).count() == 1

    listed = client.get(f"{API}/fault-reports", headers=ha).get_json()
    assert [r["id"] for r in listed["items"]] == [report["id"]] and listed["total"] == 1
    assert client.get(f"{API}/fault-reports/{2**40}", headers=ha).status_code == 404
    rv = client.get(f"{API}/fault-reports/{report['id']}", headers=hb)
    assert rv.status_code == 404 and rv.get_json()["code"] == "not_found"
    assert client.get(f"{API}/fault-reports", headers=hb).get_json()["items"] == []

    with app.app_context(), platform_scope("test"):
        with pytest.raises(member_requests.RequestError):
            member_requests.reply_fault_report(report["id"], None, "pending", "x")
        member_requests.reply_fault_report(report["id"], None, "resolved", "已派人维修，请重新扫码")
    detail = client.get(f"{API}/fault-reports/{report['id']}", headers=ha).get_json()
    assert (detail["status"], detail["reply"]) == ("resolved", "已派人维修，请重新扫码")
    assert detail["handled_at"].endswith("Z")


def test_a_photo_over_the_size_limit_is_refused(app, client, setup):
    a, _, gun_a, _, on, _ = setup
    too_big = base64.b64encode(b"\x89PNG" + b"\0" * member_requests.MAX_PHOTO_BYTES).decode()
    rv = client.post(f"{API}/fault-reports", json={"connector_id": gun_a, "fault_type_id": on, "text": "坏了",
                                                  "photos": [too_big]}, headers=_headers(app, a))
    assert (rv.status_code, rv.get_json()["code"]) == (400, "photo_too_large")


def test_feedback_and_the_reply(app, client, setup):
    from app.security.scope import platform_scope

    a, b, *_ = setup
    ha, hb = _headers(app, a), _headers(app, b)
    rv = client.post(f"{API}/feedback", json={"text": "希望增加夜间优惠", "contact": "13800000000",
                                              "photos": [image_b64("WEBP")]}, headers=ha)
    assert rv.status_code == 201, rv.get_json()
    fb = rv.get_json()
    assert (fb["status"], fb["contact"], fb["reply"]) == ("new", "13800000000", None)
    assert fb["photos"][0].endswith(".webp")
    rv = client.post(f"{API}/feedback", json={"text": "没有联系方式也可以"}, headers=ha)
    assert rv.status_code == 201 and rv.get_json()["photos"] == []
    with app.app_context():
        row = db.session.get(Feedback, rv.get_json()["id"])
        assert row.phone == row.member.phone and row.name == "inv tester"
    for bad, code in (({"text": ""}, "invalid_request"), ({"text": "x", "photos": ["aGVsbG8="]}, "invalid_photo"),
                      ({"text": "x", "extra": 1}, "invalid_request")):
        rv = client.post(f"{API}/feedback", json=bad, headers=ha)
        assert rv.status_code == 400 and rv.get_json()["code"] == code, bad

    listed = client.get(f"{API}/feedback", headers=ha).get_json()
    assert listed["total"] == 2 and listed["items"][-1]["id"] == fb["id"]
    assert client.get(f"{API}/feedback", headers=hb).get_json()["items"] == []
    assert client.get(f"{API}/feedback/{2**40}", headers=ha).status_code == 404
    rv = client.get(f"{API}/feedback/{fb['id']}", headers=hb)
    assert rv.status_code == 404 and rv.get_json()["code"] == "not_found"

    with app.app_context(), platform_scope("test"):
        member_requests.reply_feedback(fb["id"], None, "replied", "感谢建议，已转交运营")
    detail = client.get(f"{API}/feedback/{fb['id']}", headers=ha).get_json()
    assert (detail["status"], detail["reply"]) == ("replied", "感谢建议，已转交运营") and detail["replied_at"]


def test_openapi_documents_fault_and_feedback_endpoints(client):
    doc = client.get(f"{API}/_openapi").get_json()
    post = doc["paths"][f"{API}/fault-reports"]["post"]
    assert {"201", "400", "401", "404"} <= set(post["responses"])
    assert "invalid_photo" in post["responses"]["400"]["description"]
    assert "404" in doc["paths"][f"{API}/feedback/{{feedback_id}}"]["get"]["responses"]
