"""schemathesis against the member API's own OpenAPI document (issue 11 "Done when").

Every operation of ``/api/app/v1/_openapi`` is called in-process (the session app's WSGI client, the
session database) with generated inputs, valid and invalid, by a member of our own with a valid bearer
token. Checks: no server error, every answer's status is documented, every answer's body matches the
documented schema. Deterministic (``derandomize``, no example database) and bounded (EXAMPLES per
operation) so that it runs in CI.

Generated ids rarely name a row of the member, so a second test calls the read endpoints with the ids of
rows the member really has (a settled order, an invoice, wallet entries, its station and gun) and applies
the same checks to those answers.
"""
import uuid
from decimal import Decimal

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance
from sqlalchemy import select

from app.extensions import db
from tests.member_api.support import headers_for
from tests.payments.wechatpay_fake import FakeWeChatPay

OPENAPI = "/api/app/v1/_openapi"
EXAMPLES = 20
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
BALANCE = Decimal("3.0000")          # below CHARGING_MIN_BALANCE: a generated start never reaches a pile


@pytest.fixture(scope="module")
def member_api_schema(app):
    return schemathesis.openapi.from_wsgi(OPENAPI, app)


@pytest.fixture(scope="module")
def wechat_pay(app):
    """A WeChat Pay gateway on a fake WeChat Pay server (top-ups answer as in production, not "no gateway");
    first in line while this module runs, disabled afterwards."""
    from app.models import PaymentGateway
    from app.services import payments

    fake = FakeWeChatPay().start()
    with app.app_context():
        gateway = PaymentGateway(code=f"wxst{uuid.uuid4().hex[:6]}", gateway_type="wechat", name="微信支付模糊测试",
                                 sort=-1000, enabled=True, api_base_url=fake.base_url)
        payments.set_credentials(gateway, mchid=fake.mchid, appid=fake.appid,
                                 merchant_serial_no=fake.merchant_serial_no, api_v3_key=fake.api_v3_key,
                                 private_key=fake.merchant_private_pem, platform_public_key=fake.platform_public_pem,
                                 platform_public_key_id=fake.public_key_id)
        db.session.add(gateway)
        db.session.commit()
        gateway_id = gateway.id
    yield fake
    fake.stop()
    with app.app_context():
        db.session.get(PaymentGateway, gateway_id).enabled = False
        db.session.commit()


@pytest.fixture(scope="module")
def fuzz_member(app, wechat_pay):
    """An active member of the first operator made for this module (a generated logout revokes only its own
    tokens, a generated profile change touches no demo row), with a WeChat openid (top-ups) and rows to show:
    two settled, paid orders on the operator's first gun (one of them on an invoice request) and a wallet
    balance."""
    from app.models import ChargeOrder, Connector, Member, Operator
    from app.services import wallet

    with app.app_context():
        operator_id = db.session.scalar(select(Operator.id).order_by(Operator.id))
        no = f"ST{uuid.uuid4().hex[:12].upper()}"
        member = Member(operator_id=operator_id, member_no=no, nickname="fuzz", status="active",
                        phone=f"139{uuid.uuid4().int % 10 ** 8:08d}", openid=f"o{uuid.uuid4().hex[:27]}",
                        balance=Decimal("0"))
        db.session.add(member)
        db.session.flush()
        wallet.post_entry(member.id, BALANCE, "adjust", idempotency_key=f"test:{no}")
        conn = db.session.scalar(select(Connector).where(Connector.operator_id == operator_id,
                                                         Connector.enabled.is_(True)).order_by(Connector.id))
        orders = []
        for n, (electricity, service) in enumerate(((Decimal("12.3400"), Decimal("5.6600")),
                                                    (Decimal("3.1000"), Decimal("1.9000")))):
            order = ChargeOrder(order_no=f"8{uuid.uuid4().int % 10 ** 12:012d}", operator_id=operator_id,
                                station_id=conn.station_id, pile_id=conn.pile_id, connector_id=conn.id,
                                member_id=member.id, status="settled", pay_status="paid",
                                energy=Decimal("10.5000") - n, electricity_fee=electricity, service_fee=service,
                                total_amount=electricity + service, discount_electricity=Decimal("0"),
                                discount_service=Decimal("0"), discount_total=Decimal("0"),
                                payable_amount=electricity + service, paid_amount=electricity + service)
            db.session.add(order)
            orders.append(order)
        db.session.commit()
        ids = {"member_id": member.id, "order_id": orders[0].id, "invoiced_order_id": orders[1].id,
               "station_id": conn.station_id, "connector_id": conn.id, "gun_code": conn.code}
    rv = app.test_client().post("/api/app/v1/invoices", headers=headers_for(app, ids["member_id"]),
                                json={"order_ids": [ids["invoiced_order_id"]], "title_type": "person",
                                      "title": "模糊测试", "email": "fuzz@example.com"})
    assert rv.status_code == 201, rv.get_json()
    ids["invoice_id"] = rv.get_json()["id"]
    return ids


schema = schemathesis.pytest.from_fixture("member_api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
def test_member_api_conforms_to_its_openapi_document(app, case, fuzz_member):
    # a fresh token per call: a generated POST /auth/logout revokes the member's earlier tokens
    case.call_and_validate(headers=headers_for(app, fuzz_member["member_id"]), checks=CHECKS)


# (path, path parameters, query) of reads over the member's own rows; {name} = a fuzz_member value
OWN_ROWS = [
    ("/me", {}, {}),
    ("/wallet", {}, {}),
    ("/wallet/entries", {}, {}),
    ("/orders", {}, {}),
    ("/orders/{order_id}", {"order_id": "order_id"}, {}),
    ("/charging/{order_id}/live", {"order_id": "order_id"}, {}),
    ("/charging/current", {}, {}),
    ("/invoices/orders", {}, {}),
    ("/invoices", {}, {}),
    ("/invoices/{invoice_id}", {"invoice_id": "invoice_id"}, {}),
    ("/stations/{station_id}", {"station_id": "station_id"}, {}),
    ("/guns/by-qr", {}, {"content": "gun_code"}),
    ("/coupons/usable", {}, {"connector_id": "connector_id"}),
    ("/payments", {}, {}),
]


@pytest.mark.parametrize("path,path_parameters,query", OWN_ROWS, ids=[p for p, _, _ in OWN_ROWS])
def test_answers_over_the_members_own_rows_conform(app, member_api_schema, fuzz_member, path, path_parameters,
                                                   query):
    operation = member_api_schema["/api/app/v1" + path]["GET"]
    case = operation.Case(path_parameters={k: fuzz_member[v] for k, v in path_parameters.items()} or None,
                          query={k: fuzz_member[v] for k, v in query.items()} or None)
    response = case.call(headers=headers_for(app, fuzz_member["member_id"]))
    assert response.status_code == 200, (path, response.status_code, response.text[:500])
    case.validate_response(response, checks=CHECKS)
