"""Partner keys are write-only over REST: the eight secrets are accepted on POST/PUT and never come
back in a response (POST, PUT, GET item, GET list), a database error's answer or log line, the
model's repr, or an Excel export (not even the platform admin's)."""
import io
import logging

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from app.extensions import db
from app.models import Operator, Partner
from app.services import partners
from tests.conftest import ADMIN_PASSWORD, api_token

STAFF = ("staff_a", "staff-pass-1")  # operator A's administrator: may write partners, not see keys


def secrets(tag):
    """Eight distinct, valid keys that appear nowhere else (16 printable characters each)."""
    return {field: f"{tag}{i}{'Q' * 16}"[:16] for i, field in enumerate(partners.SECRET_FIELDS)}


def payload(op_id, code, tag, **extra):
    data = {"name": f"密钥测试{code}", "partner_type": "platform", "partner_operator_code": code,
            "our_operator_code": "MA1NJ0001", "base_url": "https://partner.example.com/evcs/v1.0/",
            "operator": op_id}
    data.update(secrets(tag))
    data.update(extra)
    return data


def assert_no_secret(text, keys):
    for field, value in keys.items():
        assert value not in text, f"{field} leaked"


@pytest.fixture(scope="module")
def op_a(app):
    with app.app_context():
        return db.session.scalar(select(Operator.id).where(Operator.code == "MA1NJ0001"))


@pytest.fixture(scope="module")
def staff_headers(app):
    return api_token(app, *STAFF)


def test_staff_has_no_can_show_secrets(app):
    with app.app_context():
        sm = app.appbuilder.sm
        user = sm.find_user(username=STAFF[0])
        perms = {(p.permission.name, p.view_menu.name) for r in user.roles for p in r.permissions}
        assert ("can_post", "PartnerApi") in perms and ("can_put", "PartnerApi") in perms
        assert ("can_show_secrets", "PartnerView") not in perms


@pytest.mark.parametrize("who", ["staff", "admin"])
def test_rest_post_put_get_never_return_secrets(app, op_a, staff_headers, who):
    headers = staff_headers if who == "staff" else api_token(app, "admin", ADMIN_PASSWORD)
    c = app.test_client()
    code = "SECRT0001" if who == "staff" else "SECRT0002"
    keys = secrets("P" + who[0])
    rv = c.post("/api/v1/partner/", json=payload(op_a, code, "P" + who[0]), headers=headers)
    assert rv.status_code == 201, rv.get_json()
    body = rv.get_data(as_text=True)
    assert_no_secret(body, keys)
    assert not set(rv.get_json()["result"]) & set(partners.SECRET_FIELDS)
    pk = rv.get_json()["id"]
    with app.app_context():
        stored = db.session.get(Partner, pk)
        assert {f: getattr(stored, f) for f in partners.SECRET_FIELDS} == keys  # written as given

    # PUT: a new key is written, absent and empty keys keep the stored value; nothing comes back
    new_sig = "NEWSIG" + "7" * 10
    rv = c.put(f"/api/v1/partner/{pk}", json={"name": "改名伙伴", "sig_secret": new_sig, "data_secret": ""},
               headers=headers)
    assert rv.status_code == 200, rv.get_json()
    body = rv.get_data(as_text=True)
    assert_no_secret(body, dict(keys, sig_secret=new_sig))
    assert not set(rv.get_json()["result"]) & set(partners.SECRET_FIELDS)
    with app.app_context():
        stored = db.session.get(Partner, pk)
        assert stored.name == "改名伙伴" and stored.sig_secret == new_sig
        assert stored.data_secret == keys["data_secret"] and stored.our_sig_secret == keys["our_sig_secret"]

    for url in (f"/api/v1/partner/{pk}", "/api/v1/partner/?q=(page_size:100)", "/api/v1/partner/_info"):
        rv = c.get(url, headers=headers)
        assert rv.status_code == 200
        assert_no_secret(rv.get_data(as_text=True), dict(keys, sig_secret=new_sig))


def test_rest_validates_keys(app, op_a, staff_headers):
    c = app.test_client()
    rv = c.post("/api/v1/partner/", json=payload(op_a, "SECRT0003", "V", data_secret="short"),
                headers=staff_headers)
    assert rv.status_code == 422
    assert "data_secret" in rv.get_json()["message"]
    with app.app_context():
        assert db.session.scalar(select(Partner).where(Partner.partner_operator_code == "SECRT0003")) is None


def test_database_error_leaks_no_secret_in_answer_or_log(app, op_a, staff_headers, caplog):
    c = app.test_client()
    rv = c.post("/api/v1/partner/", json=payload(op_a, "SECRT0004", "D1"), headers=staff_headers)
    assert rv.status_code == 201, rv.get_json()
    keys = secrets("D2")
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        # same (operator, partner OperatorID): the unique constraint refuses the row
        rv = c.post("/api/v1/partner/", json=payload(op_a, "SECRT0004", "D2"), headers=staff_headers)
    assert 400 <= rv.status_code < 500, rv.get_data(as_text=True)
    assert_no_secret(rv.get_data(as_text=True), keys)
    logged = "\n".join(r.getMessage() + (str(r.exc_info[1]) if r.exc_info else "") for r in caplog.records)
    assert_no_secret(logged, keys)
    # PUT to a duplicate code, with a new key in the body
    other = c.post("/api/v1/partner/", json=payload(op_a, "SECRT0005", "D3"), headers=staff_headers)
    assert other.status_code == 201
    caplog.clear()
    new_key = {"operator_secret": "DUPKEY" + "8" * 10}
    with caplog.at_level(logging.DEBUG):
        rv = c.put(f"/api/v1/partner/{other.get_json()['id']}",
                   json=dict(new_key, partner_operator_code="SECRT0004"), headers=staff_headers)
    assert 400 <= rv.status_code < 500
    assert_no_secret(rv.get_data(as_text=True), new_key)
    logged = "\n".join(r.getMessage() + (str(r.exc_info[1]) if r.exc_info else "") for r in caplog.records)
    assert_no_secret(logged, new_key)


def test_repr_and_str_carry_no_secret(app):
    with app.app_context():
        p = db.session.scalar(select(Partner).order_by(Partner.id))
        keys = {f: getattr(p, f) for f in partners.SECRET_FIELDS}
        assert_no_secret(repr(p) + str(p) + f"{p!r} {p}", keys)


def test_excel_export_has_no_secret_even_for_the_platform_admin(app, admin_client):
    with app.app_context():
        rows = db.session.scalars(select(Partner)).all()
        keys = {f"{p.id}.{f}": getattr(p, f) for p in rows for f in partners.SECRET_FIELDS}
        first = rows[0].operator_secret
    html = admin_client.get("/partnerview/list/").get_data(as_text=True)
    assert first in html  # the admin holds can_show_secrets: the screen shows them
    rv = admin_client.get("/partnerview/export/")
    assert rv.status_code == 200
    cells = "\n".join(str(c) for r in load_workbook(io.BytesIO(rv.data)).worksheets[0].iter_rows(values_only=True)
                      for c in r if c is not None)
    assert_no_secret(cells, keys)
    assert "****" in cells  # masked, not dropped
