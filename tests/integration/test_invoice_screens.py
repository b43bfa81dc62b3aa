"""发票管理 screen (manual §2.5.1): list with the manual's filters, 开票明细, issue (number required) and
reject (reason required) as operator-admin actions, data scope, export."""
from decimal import Decimal

import pytest

from app.extensions import db
from app.models import Invoice, Member
from app.services.demo import STAFF_PASSWORD
from tests.member_api.support import headers_for
from tests.member_api.test_invoices_api import make_member, make_order

D = Decimal


def _operator_of(app, username):
    with app.app_context():
        sm = app.appbuilder.sm
        return sm.get_user_by_id(sm.find_user(username=username).id).operator_id


@pytest.fixture
def invoice(app, client):
    """An applied invoice of a new member of staff_a's operator over two orders: (id, member no, order nos)."""
    member_id = make_member(app, _operator_of(app, "staff_a"))
    o1 = make_order(app, member_id, electricity=D("0.3590"), service=D("0.0547"))
    o2 = make_order(app, member_id, electricity=D("0.1267"), service=D("0.0193"))
    api = app.test_client()
    rv = api.post("/api/app/v1/invoices", headers=headers_for(app, member_id),
                  json={"order_ids": [o1, o2], "title_type": "person", "title": "ywang", "email": "8888@qq.com"})
    assert rv.status_code == 201, rv.get_json()
    with app.app_context():
        inv = db.session.get(Invoice, rv.get_json()["id"])
        return inv.id, db.session.get(Member, member_id).member_no, [o.order_no for o in inv.orders]


def test_list_filters_by_member_no_and_status(login, app, invoice):
    inv_id, member_no, _ = invoice
    client = login("staff_a", STAFF_PASSWORD)
    html = client.get(f"/invoiceview/list/?_flt_0_member_no={member_no}").get_data(as_text=True)
    assert f"/invoiceview/show/{inv_id}" in html and "0.5597" in html
    assert html.count("/invoiceview/show/") == 1
    html = client.get(f"/invoiceview/list/?_flt_0_member_no={member_no}&_flt_0_status=issued").get_data(as_text=True)
    assert f"/invoiceview/show/{inv_id}" not in html
    assert client.get("/invoiceview/export/").status_code == 200


def test_detail_shows_the_orders_and_the_split(login, invoice):
    inv_id, _, order_nos = invoice
    client = login("staff_a", STAFF_PASSWORD)
    html = client.get(f"/invoiceview/show/{inv_id}").get_data(as_text=True)
    for no in order_nos:
        assert no in html
    # 0.3590 + 0.1267 = 0.4857 electricity, 0.0547 + 0.0193 = 0.0740 service, 0.5597 in all
    assert "0.4857" in html and "0.0740" in html and "0.5597" in html
    assert "/invoiceview/issue/" in html and "/invoiceview/reject/" in html


def test_issue_needs_the_number_and_records_who(login, app, invoice):
    inv_id, _, _ = invoice
    client = login("staff_a", STAFF_PASSWORD)
    page = client.get(f"/invoiceview/issue/{inv_id}").get_data(as_text=True)
    assert "ywang" in page and "8888@qq.com" in page and "0.5597" in page
    rv = client.post(f"/invoiceview/issue/{inv_id}", data={"invoice_no": "  "})
    assert rv.status_code == 200
    with app.app_context():
        assert db.session.get(Invoice, inv_id).status == "applied"
    rv = client.post(f"/invoiceview/issue/{inv_id}", data={"invoice_no": "24320000000000012345"})
    assert rv.status_code == 302
    with app.app_context():
        inv = db.session.get(Invoice, inv_id)
        staff_id = app.appbuilder.sm.find_user(username="staff_a").id
        assert (inv.status, inv.invoice_no, inv.issued_by_id) == ("issued", "24320000000000012345", staff_id)
        assert inv.issued_at is not None
    # decided once: a second decision changes nothing
    rv = client.post(f"/invoiceview/reject/{inv_id}", data={"reject_reason": "重复"}, follow_redirects=True)
    assert "This invoice has already been handled." in rv.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Invoice, inv_id).status == "issued"


def test_reject_needs_a_reason_and_releases_the_orders(login, app, invoice):
    inv_id, _, _ = invoice
    client = login("staff_a", STAFF_PASSWORD)
    rv = client.post(f"/invoiceview/reject/{inv_id}", data={"reject_reason": ""})
    assert rv.status_code == 200
    rv = client.post(f"/invoiceview/reject/{inv_id}", data={"reject_reason": "抬头有误"})
    assert rv.status_code == 302
    with app.app_context():
        inv = db.session.get(Invoice, inv_id)
        assert (inv.status, inv.reject_reason) == ("rejected", "抬头有误")
        member = inv.member
    api = app.test_client()
    rv = api.get("/api/app/v1/invoices/orders", headers=headers_for(app, member.id))
    assert len(rv.get_json()["items"]) == 2


def test_only_operator_admins_of_the_operator_decide(login, app, invoice):
    inv_id, _, _ = invoice
    viewer = login("viewer_a", STAFF_PASSWORD)
    assert viewer.get(f"/invoiceview/show/{inv_id}").status_code == 200
    for url in (f"/invoiceview/issue/{inv_id}", f"/invoiceview/reject/{inv_id}"):
        rv = viewer.post(url, data={"invoice_no": "X1", "reject_reason": "x"})
        assert rv.status_code in (302, 403) and "/invoiceview/show" not in rv.headers.get("Location", "")
    other = login("staff_b", STAFF_PASSWORD)
    assert other.get(f"/invoiceview/show/{inv_id}").status_code in (302, 404)
    assert other.post(f"/invoiceview/issue/{inv_id}", data={"invoice_no": "X1"}).status_code == 404
    with app.app_context():
        assert db.session.get(Invoice, inv_id).status == "applied"


def test_no_edit_add_or_delete_routes(admin_client, invoice):
    inv_id, _, _ = invoice
    for url in (f"/invoiceview/edit/{inv_id}", "/invoiceview/add", f"/invoiceview/delete/{inv_id}"):
        assert admin_client.get(url).status_code in (404, 405), url


def test_screens_speak_chinese(login, invoice):
    inv_id, _, _ = invoice
    client = login("staff_a", STAFF_PASSWORD, lang="zh")
    show = client.get(f"/invoiceview/show/{inv_id}").get_data(as_text=True)
    for text in ("开票明细", "开票电费(元)", "个人", "申请中"):
        assert text in show, text
    issue = client.get(f"/invoiceview/issue/{inv_id}").get_data(as_text=True)
    assert "确认开票" in issue and "电子发票" in issue
    reject = client.get(f"/invoiceview/reject/{inv_id}").get_data(as_text=True)
    assert "驳回开票申请" in reject
    assert "Invoice" not in issue.split("<body")[-1] and "None" not in reject.split("<body")[-1]
