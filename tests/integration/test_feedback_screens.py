"""故障上报 (manual §2.3.7) and 意见反馈 (§2.3.11) screens: what members send, the manual's filters, the
reply action (status, reply, who, when) seen by the member, photos, data scope, no edit/delete."""
import uuid

import pytest

from app.extensions import db
from app.models import Connector, FaultReport, FaultType, Feedback
from app.services.demo import STAFF_PASSWORD
from tests.member_api.support import headers_for
from tests.member_api.test_feedback_api import image_b64
from tests.member_api.test_invoices_api import make_member

API = "/api/app/v1"


def _operator_of(app, username):
    with app.app_context():
        sm = app.appbuilder.sm
        return sm.get_user_by_id(sm.find_user(username=username).id).operator_id


@pytest.fixture
def sent(app):
    """A fault report (with a photo) and a feedback sent through the API by a member of staff_a's operator."""
    member_id = make_member(app, _operator_of(app, "staff_a"))
    with app.app_context():
        gun = db.session.query(Connector).filter_by(operator_id=_operator_of(app, "staff_a")).first().id
        ft = FaultType(name=f"屏幕不亮{uuid.uuid4().hex[:6]}", sort=3, enabled=True)
        db.session.add(ft)
        db.session.commit()
        ft_id = ft.id
    api, headers = app.test_client(), headers_for(app, member_id)
    rv = api.post(f"{API}/fault-reports", headers=headers,
                  json={"connector_id": gun, "fault_type_id": ft_id, "text": "屏幕黑屏", "photos": [image_b64()]})
    assert rv.status_code == 201, rv.get_json()
    report = rv.get_json()
    rv = api.post(f"{API}/feedback", headers=headers, json={"text": "客服电话打不通", "contact": "13700000001"})
    assert rv.status_code == 201
    return member_id, report, rv.get_json(), headers


def test_fault_report_list_filters_and_reply(login, app, sent):
    member_id, report, _, headers = sent
    with app.app_context():
        from app.models import Member

        member_no = db.session.get(Member, member_id).member_no
    client = login("staff_a", STAFF_PASSWORD)
    html = client.get(f"/faultreportview/list/?_flt_0_member_no={member_no}").get_data(as_text=True)
    assert html.count("/faultreportview/show/") == 1 and f"/faultreportview/show/{report['id']}" in html
    html = client.get(f"/faultreportview/list/?_flt_0_member_no={member_no}&_flt_0_status=resolved").get_data(
        as_text=True)
    assert "/faultreportview/show/" not in html
    show = client.get(f"/faultreportview/show/{report['id']}").get_data(as_text=True)
    photo = report["photos"][0]
    assert f"/uploads/{photo}" in show and "屏幕黑屏" in show and f"/faultreportview/reply/{report['id']}" in show
    assert client.get(f"/uploads/{photo}").status_code == 200
    assert client.get("/faultreportview/export/").status_code == 200

    rv = client.post(f"/faultreportview/reply/{report['id']}", data={"status": "processing", "reply": ""})
    assert rv.status_code == 200
    rv = client.post(f"/faultreportview/reply/{report['id']}", data={"status": "processing", "reply": "已安排维修"})
    assert rv.status_code == 302
    with app.app_context():
        row = db.session.get(FaultReport, report["id"])
        staff_id = app.appbuilder.sm.find_user(username="staff_a").id
        assert (row.status, row.reply, row.handled_by_id) == ("processing", "已安排维修", staff_id)
        assert row.handled_at is not None
    detail = app.test_client().get(f"{API}/fault-reports/{report['id']}", headers=headers).get_json()
    assert (detail["status"], detail["reply"]) == ("processing", "已安排维修")


def test_feedback_list_and_reply(login, app, sent):
    _, _, fb, headers = sent
    client = login("staff_a", STAFF_PASSWORD)
    html = client.get("/feedbackview/list/?_flt_0_phone=13700000001").get_data(as_text=True)
    assert "客服电话打不通" in html and f"/feedbackview/show/{fb['id']}" in html
    assert client.get("/feedbackview/export/").status_code == 200
    rv = client.post(f"/feedbackview/reply/{fb['id']}", data={"status": "replied", "reply": "已修复线路"})
    assert rv.status_code == 302
    with app.app_context():
        row = db.session.get(Feedback, fb["id"])
        assert (row.status, row.reply) == ("replied", "已修复线路") and row.replied_by_id and row.replied_at
    show = client.get(f"/feedbackview/show/{fb['id']}").get_data(as_text=True)
    assert "已修复线路" in show
    detail = app.test_client().get(f"{API}/feedback/{fb['id']}", headers=headers).get_json()
    assert (detail["status"], detail["reply"]) == ("replied", "已修复线路")


def test_only_operator_admins_of_the_operator_reply(login, app, sent):
    _, report, fb, _ = sent
    viewer = login("viewer_a", STAFF_PASSWORD)
    assert viewer.get(f"/faultreportview/show/{report['id']}").status_code == 200
    for url in (f"/faultreportview/reply/{report['id']}", f"/feedbackview/reply/{fb['id']}"):
        viewer.post(url, data={"status": "processing", "reply": "x"})
    other = login("staff_b", STAFF_PASSWORD)
    assert other.post(f"/faultreportview/reply/{report['id']}",
                      data={"status": "resolved", "reply": "x"}).status_code == 404
    assert other.post(f"/feedbackview/reply/{fb['id']}", data={"status": "closed", "reply": "x"}).status_code == 404
    assert other.get(f"/uploads/{report['photos'][0]}").status_code == 404
    with app.app_context():
        assert db.session.get(FaultReport, report["id"]).status == "pending"
        assert db.session.get(Feedback, fb["id"]).status == "new"


def test_no_edit_or_delete(admin_client, sent):
    _, report, fb, _ = sent
    for url in (f"/faultreportview/edit/{report['id']}", f"/faultreportview/delete/{report['id']}",
                f"/feedbackview/edit/{fb['id']}", f"/feedbackview/delete/{fb['id']}", "/feedbackview/add"):
        assert admin_client.get(url).status_code in (404, 405), url


def test_reply_screens_speak_chinese(login, sent):
    _, report, fb, _ = sent
    client = login("staff_a", STAFF_PASSWORD, lang="zh")
    page = client.get(f"/faultreportview/reply/{report['id']}").get_data(as_text=True)
    assert "处理故障上报" in page and "屏幕黑屏" in page and "处理中" in page
    page = client.get(f"/feedbackview/reply/{fb['id']}").get_data(as_text=True)
    assert "回复意见反馈" in page and "客服电话打不通" in page
    show = client.get(f"/faultreportview/show/{report['id']}").get_data(as_text=True)
    assert "处理并回复" in show and "上报人编号" in show
