"""Finance screens: invoices (issue form), channels, members, gateways, organizations, cards, bills."""

import io
import uuid
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from app.models import Card, ChargeOrder, Connector, Invoice, Member, Organization

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def assert_xlsx(rv):
    assert rv.status_code == 200, rv.get_data(as_text=True)[:300]
    assert rv.content_type.startswith(XLSX)
    wb = load_workbook(io.BytesIO(rv.data), read_only=True)
    return [list(r) for r in wb.worksheets[0].iter_rows(values_only=True)]


def _db():
    from app.extensions import db

    return db


@pytest.fixture(scope="module")
def invoice_id(app):
    db = _db()
    with app.app_context():
        member = db.session.query(Member).order_by(Member.id).first()
        conn = db.session.query(Connector).filter_by(operator_id=member.operator_id).first()
        order = ChargeOrder(
            order_no="TINV000000001",
            operator_id=member.operator_id,
            station_id=conn.station_id,
            pile_id=conn.pile_id,
            connector_id=conn.id,
            member_id=member.id,
            status="settled",
            pay_status="paid",
            total_amount=Decimal("9.65"),
            paid_amount=Decimal("9.65"),
        )
        inv = Invoice(
            operator_id=member.operator_id,
            member_id=member.id,
            title="ywang",
            amount=Decimal("9.65"),
            electricity_amount=Decimal("8.31"),
            service_amount=Decimal("1.34"),
            orders=[order],
        )
        db.session.add_all([order, inv])
        db.session.commit()
        return inv.id


@pytest.mark.parametrize(
    "url",
    [
        "/invoiceview/list/",
        "/channelview/list/",
        "/memberview/list/",
        "/paymentgatewayview/list/",
        "/organizationview/list/",
        "/cardview/list/",
        "/financialbillview/list/",
        "/occupancybillview/list/",
        "/channelview/add",
        "/paymentgatewayview/add",
        "/organizationview/add",
        "/cardview/add",
    ],
)
def test_pages_render(admin_client, url):
    rv = admin_client.get(url)
    assert rv.status_code == 200, rv.get_data(as_text=True)[:500]


def test_invoice_show_lists_orders_and_issue_rules(admin_client, app, invoice_id):
    # the issue / reject rules and permissions in depth: tests/integration/test_invoice_screens.py
    html = admin_client.get(f"/invoiceview/show/{invoice_id}").get_data(as_text=True)
    assert "TINV000000001" in html
    rv = admin_client.post(f"/invoiceview/issue/{invoice_id}", data={"invoice_no": ""})
    assert rv.status_code == 200
    rv = admin_client.post(f"/invoiceview/issue/{invoice_id}", data={"invoice_no": "NO123"})
    assert rv.status_code == 302
    with app.app_context():
        inv = _db().session.get(Invoice, invoice_id)
        assert (inv.status, inv.invoice_no) == ("issued", "NO123") and inv.issued_at is not None


def test_member_balance_never_editable(admin_client, app):
    with app.app_context():
        m = _db().session.query(Member).order_by(Member.id).first()
        pk, balance = m.id, m.balance
    html = admin_client.get(f"/memberview/edit/{pk}").get_data(as_text=True)
    assert 'name="balance"' not in html
    rv = admin_client.post(
        f"/memberview/edit/{pk}", data={"nickname": "Nick", "status": "frozen", "balance": "99999"}
    )
    assert rv.status_code == 302
    with app.app_context():
        m = _db().session.get(Member, pk)
        assert m.balance == balance and m.nickname == "Nick" and m.status == "frozen"
    rv = admin_client.post(f"/memberview/edit/{pk}", data={"status": "active", "phone": "12345"})
    assert "A mobile number is 11 digits starting with 1." in rv.get_data(as_text=True)


def test_card_number_validation(admin_client, app):
    with app.app_context():
        op_id = _db().session.query(Member.operator_id).first()[0]
    base = {"card_type": "online", "status": "active", "operator": str(op_id)}
    rv = admin_client.post("/cardview/add", data=dict(base, logical_no="12345", physical_no="XYZ"))
    html = rv.get_data(as_text=True)
    assert "The logical card no. must be exactly 16 digits (0-9)." in html
    assert "The physical card no. must be exactly 16 hexadecimal characters (0-9, A-F)." in html
    existing = None
    with app.app_context():
        existing = _db().session.query(Card).first().logical_no
    rv = admin_client.post(
        "/cardview/add", data=dict(base, logical_no=existing, physical_no="00112233445566FF")
    )
    assert "Another card already has this number." in rv.get_data(as_text=True)
    rv = admin_client.post(
        "/cardview/add", data=dict(base, logical_no="7700000000000001", physical_no="00112233445566ff")
    )
    assert rv.status_code == 302
    with app.app_context():
        card = _db().session.query(Card).filter_by(logical_no="7700000000000001").one()
        assert card.physical_no == "00112233445566FF"


def test_channel_and_organization_crud(admin_client, app):
    with app.app_context():
        op_id = _db().session.query(Member.operator_id).first()[0]
    code = f"T{uuid.uuid4().hex[:8]}"
    rv = admin_client.post(
        "/channelview/add",
        data={
            "code": code,
            "name": "Test channel",
            "channel_type": "app",
            "rate": "2",
            "operator": str(op_id),
        },
    )
    assert "Channel rate must be between 0 and 1." in rv.get_data(as_text=True)
    rv = admin_client.post(
        "/channelview/add",
        data={
            "code": code,
            "name": "Test channel",
            "channel_type": "app",
            "rate": "0.006",
            "operator": str(op_id),
            "enabled": "y",
        },
    )
    assert rv.status_code == 302
    rv = admin_client.post(
        "/organizationview/add",
        data={"name": "Fleet X", "company_name": "X Co", "operator": str(op_id), "enabled": "y",
                  "pay_mode": "member"},
    )
    assert rv.status_code == 302
    with app.app_context():
        org = _db().session.query(Organization).filter_by(name="Fleet X").one()
        org_id = org.id
    # other tests add organizations too: find ours by name (the list is oldest first, paged)
    html = admin_client.get("/organizationview/list/?_flt_0_name=Fleet+X").get_data(as_text=True)
    assert f"/memberview/list/?_flt_0_organization={org_id}" in html
    assert admin_client.get(f"/organizationview/show/{org_id}").status_code == 200
    assert admin_client.get(f"/memberview/list/?_flt_0_organization={org_id}").status_code == 200
    rows = assert_xlsx(admin_client.get("/organizationview/export/"))
    assert org_id in [r[0] for r in rows[1:]]


def test_exports(admin_client, invoice_id):
    rows = assert_xlsx(admin_client.get("/financialbillview/export/"))
    assert any("TINV000000001" in [str(c) for c in r] for r in rows[1:])
    assert_xlsx(admin_client.get("/occupancybillview/export/"))
    assert_xlsx(admin_client.get("/memberview/export/"))
    assert_xlsx(admin_client.get("/invoiceview/export/"))
