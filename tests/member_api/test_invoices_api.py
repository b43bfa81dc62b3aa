"""发票 in the member API: invoiceable orders, requests, the split into electricity and service, the
database constraint (an order on one live invoice), rejection releasing orders, two operators."""
import threading
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import ChargeOrder, Connector, Invoice, Member
from app.models.member import invoice_order
from app.services import invoices
from tests.member_api.support import demo_member_ids, headers_for

D = Decimal
VALID_TAX_NO = "91350100M000100Y43"       # a 统一社会信用代码 with the right check character
OTHER_TAX_NO = "91110108551385082Q"


# ----- helpers (also used by tests/integration/test_invoice_screens.py) ---------------------------------
def make_member(app, operator_id):
    with app.app_context():
        m = Member(operator_id=operator_id, member_no="I" + uuid.uuid4().hex[:12], nickname="inv tester",
                   phone="139" + str(uuid.uuid4().int)[:8], status="active", balance=D("0"))
        db.session.add(m)
        db.session.commit()
        return m.id


def make_order(app, member_id, *, status="settled", pay_status="paid", electricity=D("0"), service=D("0"),
               disc_e=D("0"), disc_s=D("0"), disc_total=None, paid=None, energy=D("1.0000")):
    """A finished charge's figures as settlement leaves them: payable = total − discount_total."""
    with app.app_context():
        member = db.session.get(Member, member_id)
        conn = db.session.query(Connector).filter_by(operator_id=member.operator_id).order_by(Connector.id).first()
        total = electricity + service
        disc_total = disc_e + disc_s if disc_total is None else disc_total
        payable = total - disc_total
        o = ChargeOrder(order_no="9" + str(uuid.uuid4().int)[:12], operator_id=member.operator_id,
                        station_id=conn.station_id, pile_id=conn.pile_id, connector_id=conn.id, member_id=member_id,
                        status=status, pay_status=pay_status, energy=energy, electricity_fee=electricity,
                        service_fee=service, total_amount=total, discount_electricity=disc_e,
                        discount_service=disc_s, discount_total=disc_total, payable_amount=payable,
                        paid_amount=payable if paid is None else paid)
        db.session.add(o)
        db.session.commit()
        return o.id


def two_operators(app):
    a, b = demo_member_ids(app)
    with app.app_context():
        return db.session.get(Member, a).operator_id, db.session.get(Member, b).operator_id


@pytest.fixture
def members(app):
    op_a, op_b = two_operators(app)
    return make_member(app, op_a), make_member(app, op_b)


def _body(**kw):
    out = {"title_type": "person", "title": "王小明", "email": "wang@example.com"}
    out.update(kw)
    return out


# ----- rules ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fees,expected", [
    # (electricity, service, disc_e, disc_s, disc_total, payable) -> (electricity part, service part)
    ((D("8.3100"), D("1.3400"), D("0"), D("0"), D("0"), D("9.6500")), (D("8.3100"), D("1.3400"))),
    # discounts given on each fee reduce that fee
    ((D("10.0000"), D("5.0000"), D("1.0000"), D("0.5000"), D("1.5000"), D("13.5000")), (D("9.0000"), D("4.5000"))),
    # a discount not attributed to a fee comes off the service part first ...
    ((D("10.0000"), D("5.0000"), D("0"), D("0"), D("2.0000"), D("13.0000")), (D("10.0000"), D("3.0000"))),
    # ... then off the electricity part
    ((D("10.0000"), D("1.0000"), D("0"), D("0"), D("3.0000"), D("8.0000")), (D("8.0000"), D("0.0000"))),
    # a free charge (everything discounted) splits into zeros
    ((D("2.0000"), D("1.0000"), D("2.0000"), D("1.0000"), D("3.0000"), D("0.0000")), (D("0.0000"), D("0.0000"))),
])
def test_split_of_an_order_into_electricity_and_service(fees, expected):
    e, s, de, ds, dt, payable = fees
    o = ChargeOrder(electricity_fee=e, service_fee=s, discount_electricity=de, discount_service=ds,
                    discount_total=dt, payable_amount=payable)
    split = invoices.order_split(o)
    assert (split.electricity, split.service) == expected
    assert split.electricity + split.service == split.amount == payable


@pytest.mark.parametrize("tax_no,ok", [
    (VALID_TAX_NO, True), (OTHER_TAX_NO, True), ("91350100m000100y43", True),
    ("91350100M000100Y42", False),          # wrong check character
    ("91350100M000100Y4", False),           # 17 characters
    ("91350100M000100I43", False),          # I is not in the code's alphabet
    ("", False), (None, False),
])
def test_unified_social_credit_code(tax_no, ok):
    assert invoices.valid_tax_no(tax_no) is ok


# ----- API ----------------------------------------------------------------------------------------------------
def test_invoice_endpoints_need_a_token(client):
    for method, url in (("get", "/api/app/v1/invoices/orders"), ("post", "/api/app/v1/invoices"),
                        ("get", "/api/app/v1/invoices"), ("get", "/api/app/v1/invoices/1")):
        rv = getattr(client, method)(url)
        assert rv.status_code == 401 and rv.get_json()["code"] == "token_missing"


def test_request_over_chosen_orders_with_the_worked_split(app, client, members):
    a, b = members
    ha, hb = headers_for(app, a), headers_for(app, b)
    o1 = make_order(app, a, electricity=D("8.3100"), service=D("1.3400"))                     # 9.6500
    o2 = make_order(app, a, electricity=D("10.0000"), service=D("5.0000"), disc_e=D("1.0000"),
                    disc_s=D("0.5000"))                                                          # 13.5000
    o3 = make_order(app, a, status="finished", pay_status="unpaid", electricity=D("1"), service=D("1"))
    o4 = make_order(app, a, pay_status="partial", electricity=D("3"), service=D("1"), paid=D("2.0000"))
    o5 = make_order(app, a, electricity=D("2"), service=D("1"), disc_e=D("2"), disc_s=D("1"))      # free charge
    ob = make_order(app, b, electricity=D("5"), service=D("1"))

    rv = client.get("/api/app/v1/invoices/orders?page_size=100", headers=ha)
    assert rv.status_code == 200
    page = rv.get_json()
    ids = [i["id"] for i in page["items"]]
    assert set(ids) == {o1, o2} and page["total"] == 2
    row = next(i for i in page["items"] if i["id"] == o2)
    assert (row["payable_amount"], row["electricity_amount"], row["service_amount"]) == ("13.5000", "9.0000",
                                                                                        "4.5000")
    assert [i["id"] for i in client.get("/api/app/v1/invoices/orders", headers=hb).get_json()["items"]] == [ob]

    # refused requests write nothing
    for order_ids in ([o3], [o4], [o5], [o1, o3], [ob], [999999999]):
        rv = client.post("/api/app/v1/invoices", json=_body(order_ids=order_ids), headers=ha)
        assert rv.status_code == 409 and rv.get_json()["code"] == "order_not_invoiceable", order_ids
    rv = client.post("/api/app/v1/invoices", json=_body(order_ids=[o1], title_type="company", title="某某科技有限公司",
                                                         tax_no="91350100M000100Y42"), headers=ha)
    assert rv.status_code == 400 and rv.get_json()["code"] == "invalid_tax_no"
    rv = client.post("/api/app/v1/invoices", json=_body(order_ids=[o1], title_type="company", title="某某科技有限公司"),
                     headers=ha)
    assert rv.status_code == 400 and rv.get_json()["code"] == "invalid_tax_no"
    rv = client.post("/api/app/v1/invoices", json=_body(order_ids=[o1], email="not-an-address"), headers=ha)
    assert rv.status_code == 400 and rv.get_json()["code"] == "invalid_request"
    assert "email" in rv.get_json()["fields"]
    for bad in (_body(order_ids=[]), _body(order_ids=[o1], title_type="other"), _body(order_ids=[o1], title=""),
                {"order_ids": [o1]}, _body(order_ids=["x"]), _body(order_ids=[2**40]), _body(order_ids=[0]),
                _body(order_ids=[o1], title="a\x00b"), _body(order_ids=list(range(1, 300)))):
        rv = client.post("/api/app/v1/invoices", json=bad, headers=ha)
        assert rv.status_code == 400 and rv.get_json()["code"] == "invalid_request", bad
    with app.app_context():
        assert db.session.query(Invoice).filter_by(member_id=a).count() == 0

    rv = client.post("/api/app/v1/invoices", json=_body(order_ids=[o2, o1], title_type="company",
                                                         title="某某科技有限公司", tax_no=VALID_TAX_NO.lower()),
                     headers=ha)
    assert rv.status_code == 201, rv.get_json()
    inv = rv.get_json()
    # 9.6500 + 13.5000 = 23.1500; electricity 8.3100 + 9.0000 = 17.3100; service 1.3400 + 4.5000 = 5.8400
    assert (inv["amount"], inv["electricity_amount"], inv["service_amount"]) == ("23.1500", "17.3100", "5.8400")
    assert inv["status"] == "applied" and inv["tax_no"] == VALID_TAX_NO and inv["invoice_no"] is None
    assert [o["id"] for o in inv["orders"]] == sorted([o1, o2]) and inv["order_count"] == 2

    # an order is invoiced once
    rv = client.post("/api/app/v1/invoices", json=_body(order_ids=[o1]), headers=ha)
    assert rv.status_code == 409 and rv.get_json()["code"] == "order_already_invoiced"
    assert client.get("/api/app/v1/invoices/orders", headers=ha).get_json()["items"] == []

    listed = client.get("/api/app/v1/invoices", headers=ha).get_json()
    assert [i["id"] for i in listed["items"]] == [inv["id"]] and listed["total"] == 1
    assert "orders" not in listed["items"][0]
    detail = client.get(f"/api/app/v1/invoices/{inv['id']}", headers=ha).get_json()
    assert detail["status"] == "applied" and detail["amount"] == "23.1500"

    # the member of the other operator sees nothing of it and cannot use its orders
    rv = client.get(f"/api/app/v1/invoices/{inv['id']}", headers=hb)
    assert rv.status_code == 404 and rv.get_json()["code"] == "not_found"
    assert client.get("/api/app/v1/invoices", headers=hb).get_json()["items"] == []
    rv = client.post("/api/app/v1/invoices", json=_body(order_ids=[o1]), headers=hb)
    assert rv.status_code == 409 and rv.get_json()["code"] == "order_not_invoiceable"
    rv = client.get("/api/app/v1/invoices/999999999", headers=ha)
    assert rv.status_code == 404 and rv.get_json()["code"] == "not_found"
    assert client.get(f"/api/app/v1/invoices/{2**40}", headers=ha).status_code == 404   # beyond INTEGER


def test_rejection_releases_the_orders_and_issue_is_seen_by_the_member(app, client, members):
    from app.security.scope import platform_scope

    a, _ = members
    ha = headers_for(app, a)
    o1 = make_order(app, a, electricity=D("1.2000"), service=D("0.3000"))
    first = client.post("/api/app/v1/invoices", json=_body(order_ids=[o1]), headers=ha).get_json()
    with app.app_context(), platform_scope("test"):
        with pytest.raises(invoices.InvoiceError) as err:
            invoices.reject_invoice(first["id"], None, "  ")
        assert err.value.code == "reason_required"
        invoices.reject_invoice(first["id"], None, "抬头与税号不符")
        with pytest.raises(invoices.InvoiceError) as err:
            invoices.issue_invoice(first["id"], None, "NO1")
        assert err.value.code == "already_decided"
    detail = client.get(f"/api/app/v1/invoices/{first['id']}", headers=ha).get_json()
    assert (detail["status"], detail["reject_reason"], detail["invoice_no"]) == ("rejected", "抬头与税号不符", None)
    assert [o["id"] for o in detail["orders"]] == [o1]          # the rejected invoice still shows its orders
    assert detail["handled_at"] is not None
    assert [o["id"] for o in client.get("/api/app/v1/invoices/orders", headers=ha).get_json()["items"]] == [o1]

    rv = client.post("/api/app/v1/invoices", json=_body(order_ids=[o1]), headers=ha)
    assert rv.status_code == 201
    second = rv.get_json()
    assert second["amount"] == "1.5000"
    with app.app_context(), platform_scope("test"):
        with pytest.raises(invoices.InvoiceError) as err:
            invoices.issue_invoice(second["id"], None, "")
        assert err.value.code == "invoice_no_required"
        invoices.issue_invoice(second["id"], None, " 25320000000012345678 ")
    detail = client.get(f"/api/app/v1/invoices/{second['id']}", headers=ha).get_json()
    assert (detail["status"], detail["invoice_no"], detail["reject_reason"]) == ("issued", "25320000000012345678",
                                                                                  None)
    ids = [i["id"] for i in client.get("/api/app/v1/invoices", headers=ha).get_json()["items"]]
    assert ids == [second["id"], first["id"]]


def test_the_database_refuses_a_second_live_link_of_an_order(app, members):
    a, _ = members
    o1 = make_order(app, a, electricity=D("1"), service=D("1"))
    with app.app_context():
        m = db.session.get(Member, a)
        invs = [Invoice(operator_id=m.operator_id, member_id=a, title=f"t{i}", amount=D("2")) for i in range(3)]
        db.session.add_all(invs)
        db.session.commit()
        ids = [i.id for i in invs]
        db.session.execute(insert(invoice_order).values(invoice_id=ids[0], order_id=o1))
        db.session.commit()
        with pytest.raises(IntegrityError):
            db.session.execute(insert(invoice_order).values(invoice_id=ids[1], order_id=o1))
            db.session.commit()
        db.session.rollback()
        # a released link (rejected invoice) does not count
        from app.models.base import utcnow

        db.session.execute(invoice_order.update().where(invoice_order.c.invoice_id == ids[0])
                           .values(released_at=utcnow()))
        db.session.execute(insert(invoice_order).values(invoice_id=ids[2], order_id=o1))
        db.session.commit()


def test_two_concurrent_requests_over_the_same_order_one_wins(app, members):
    a, _ = members
    orders = [make_order(app, a, electricity=D("3"), service=D("1")) for _ in range(2)]
    headers = headers_for(app, a)
    barrier = threading.Barrier(2)
    results = []

    def request(order_ids):
        client = app.test_client()
        barrier.wait()
        rv = client.post("/api/app/v1/invoices", json=_body(order_ids=order_ids), headers=headers)
        results.append((rv.status_code, rv.get_json().get("code")))

    threads = [threading.Thread(target=request, args=(ids,)) for ids in (orders, list(reversed(orders)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(r[0] for r in results) == [201, 409], results
    assert [r[1] for r in results if r[0] == 409] == ["order_already_invoiced"]
    with app.app_context():
        rows = db.session.execute(invoice_order.select().where(invoice_order.c.order_id.in_(orders),
                                                               invoice_order.c.released_at.is_(None))).all()
        assert len(rows) == 2 and len({r.invoice_id for r in rows}) == 1


def test_openapi_documents_the_invoice_endpoints(client):
    doc = client.get("/api/app/v1/_openapi").get_json()
    post = doc["paths"]["/api/app/v1/invoices"]["post"]
    assert {"201", "400", "401", "409"} <= set(post["responses"])
    assert "order_already_invoiced" in post["responses"]["409"]["description"]
    assert "404" in doc["paths"]["/api/app/v1/invoices/{invoice_id}"]["get"]["responses"]
