"""互联平台 form: the partner's dialect (field spelling, money field, base path, status as array) is shown,
saved and validated; left out of a post, the T/CEC standard is kept."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Operator, Partner


@pytest.fixture
def form(app):
    with app.app_context():
        op = db.session.scalar(select(Operator).order_by(Operator.id))
        operator_id = op.id

    def build(code, **kw):
        data = {"name": "方言测试", "partner_type": "platform", "partner_operator_code": code,
                "operator_secret": "abcdefgh12345678", "data_secret": "0123456789abcdef",
                "data_secret_iv": "fedcba9876543210", "sig_secret": "sigsecret0123456",
                "our_operator_code": "MA1NJ0001", "our_operator_secret": "oursecret0123456",
                "our_data_secret": "ourdata012345678", "our_data_secret_iv": "ouriv01234567890",
                "our_sig_secret": "oursig0123456789", "enabled": "y", "push_enabled": "y",
                "operator": str(operator_id)}
        data.update(kw)
        return data

    return build


def saved(app, code):
    with app.app_context():
        p = db.session.scalar(select(Partner).where(Partner.partner_operator_code == code))
        return None if p is None else (p.field_spelling, p.money_field, p.base_path, p.status_as_array)


def test_form_shows_the_dialect_in_chinese(app, client, login):
    from tests.conftest import ADMIN_PASSWORD

    login("admin", ADMIN_PASSWORD, lang="zh")
    html = client.get("/partnerview/add").get_data(as_text=True)
    for text in ("服务费字段拼写", "充电电费字段名", "接口基础路径", "设备状态以数组推送",
                 "Sevice*（标准拼写）", "ElecMoney（标准）", 'value="/evcs/v1.0/"'):
        assert text in html, text


def test_dialect_saved_and_defaults(app, admin_client, form):
    rv = admin_client.post("/partnerview/add", data=form("H1DIALCT1", field_spelling="service",
                                                         money_field="ElectMoney", base_path="/evcs/v1/",
                                                         status_as_array="y"))
    assert rv.status_code == 302, rv.get_data(as_text=True)[:1000]
    assert saved(app, "H1DIALCT1") == ("service", "ElectMoney", "/evcs/v1/", True)
    rv = admin_client.post("/partnerview/add", data=form("H1DIALCT2"))
    assert rv.status_code == 302
    assert saved(app, "H1DIALCT2") == ("sevice", "ElecMoney", "/evcs/v1.0/", False)


def test_dialect_validation(app, admin_client, form):
    html = admin_client.post("/partnerview/add", data=form("H1DIALCT3", field_spelling="servise",
                                                           base_path="evcs v1")).get_data(as_text=True)
    assert "Not a valid choice" in html and "A path starting with /, e.g. /evcs/v1.0/" in html
    assert saved(app, "H1DIALCT3") is None
