"""Fixtures of the payment tests: a fake WeChat Pay server, a gateway configured for it, members of our own."""
import uuid
from decimal import Decimal

import pytest

from app.extensions import db
from tests.payments.wechatpay_fake import FakeWeChatPay


@pytest.fixture(scope="session")
def fake_wechat():
    fake = FakeWeChatPay().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def wechat_gateway(app, fake_wechat):
    """A WeChat Pay gateway (code ``wxtest``) whose credentials are the fake server's, entered through the
    service that the admin screen uses. Returns its code."""
    from app.models import PaymentGateway
    from app.services import payments

    with app.app_context():
        gateway = PaymentGateway(code="wxtest", gateway_type="wechat", name="微信支付测试", sort=-1, enabled=True,
                                 api_base_url=fake_wechat.base_url)
        payments.set_credentials(gateway, mchid=fake_wechat.mchid, appid=fake_wechat.appid,
                                 merchant_serial_no=fake_wechat.merchant_serial_no,
                                 api_v3_key=fake_wechat.api_v3_key, private_key=fake_wechat.merchant_private_pem,
                                 platform_public_key=fake_wechat.platform_public_pem,
                                 platform_public_key_id=fake_wechat.public_key_id)
        db.session.add(gateway)
        db.session.commit()
    return "wxtest"


@pytest.fixture
def new_member(app):
    """make(operator_index=0, balance=0) -> id of a fresh active member with an openid."""
    from sqlalchemy import select

    from app.models import Member, Operator
    from app.services import wallet

    def make(operator_index=0, balance=Decimal("0")):
        with app.app_context():
            ops = db.session.scalars(select(Operator.id).order_by(Operator.id)).all()
            no = f"PAY{uuid.uuid4().hex[:12].upper()}"
            member = Member(operator_id=ops[operator_index], member_no=no, nickname="pay test", status="active",
                            openid=f"o{uuid.uuid4().hex[:27]}", balance=Decimal("0"))
            db.session.add(member)
            db.session.flush()
            if balance:
                wallet.post_entry(member.id, Decimal(balance), "adjust", idempotency_key=f"test:{no}")
            db.session.commit()
            return member.id

    return make
