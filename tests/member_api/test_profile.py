"""The member's own account: GET /me and PATCH /me (nickname, avatar, plate number), for members of two
operators; each token changes its own member only."""
import random

import pytest

from app.extensions import db
from app.models import Member
from app.services import member_accounts
from tests.member_api.support import demo_member_ids, headers_for

ME = "/api/app/v1/me"
FIELD_MESSAGES = {"nickname": "长度为1到32个字符", "avatar": "请填写以http(s)开头的地址，最多255个字符",
                  "plate_no": "车牌号格式不正确，例如苏A12345或苏AD12345"}


@pytest.fixture(scope="module")
def pair(app):
    """A fresh member of each demo operator (registered by the service, as the app's login does)."""
    a, b = demo_member_ids(app)
    out = []
    with app.app_context():
        for demo in (a, b):
            op = db.session.get(Member, demo).operator_id
            member, created = member_accounts.find_or_register(op, phone=f"1{random.randrange(3, 10)}"
                                                                      f"{random.randrange(10 ** 9):09d}")
            assert created
            out.append(member.id)
    return out


def row(app, member_id):
    with app.app_context():
        m = db.session.get(Member, member_id)
        return {"nickname": m.nickname, "avatar": m.avatar, "plate_no": m.plate_no, "phone": m.phone}


def test_patch_changes_only_the_fields_sent(app, client, pair):
    a, b = pair
    before_b = row(app, b)
    rv = client.patch(ME, json={"nickname": "  小明  ", "plate_no": "苏a12345"}, headers=headers_for(app, a))
    assert rv.status_code == 200, rv.get_json()
    body = rv.get_json()
    assert body["id"] == a and body["nickname"] == "小明" and body["plate_no"] == "苏A12345"
    assert row(app, a)["nickname"] == "小明" and row(app, a)["plate_no"] == "苏A12345"
    rv = client.patch(ME, json={"avatar": "https://img.example.com/a.png"}, headers=headers_for(app, a))
    assert rv.get_json()["avatar"] == "https://img.example.com/a.png"
    assert row(app, a)["nickname"] == "小明"                   # untouched
    assert row(app, b) == before_b                             # the other operator's member untouched
    assert client.get(ME, headers=headers_for(app, b)).get_json()["nickname"] == before_b["nickname"]


def test_patch_new_energy_plate_and_clearing(app, client, pair):
    a, _ = pair
    rv = client.patch(ME, json={"plate_no": "苏AD12345", "avatar": "http://x.example/y.jpg"},
                      headers=headers_for(app, a))
    assert rv.status_code == 200 and rv.get_json()["plate_no"] == "苏AD12345"
    rv = client.patch(ME, json={"plate_no": None, "avatar": ""}, headers=headers_for(app, a))
    assert rv.status_code == 200
    assert rv.get_json()["plate_no"] is None and rv.get_json()["avatar"] is None
    assert row(app, a)["plate_no"] is None and row(app, a)["avatar"] is None


@pytest.mark.parametrize("field,value", [
    ("nickname", ""), ("nickname", "   "), ("nickname", "名" * 33),
    ("avatar", "ftp://x.example/a.png"), ("avatar", "not a url"), ("avatar", "https://x.example/" + "a" * 250),
    ("plate_no", "ABC123"), ("plate_no", "苏A1234"), ("plate_no", "苏I12345"),
])
def test_patch_refuses_invalid_values_and_changes_nothing(app, client, pair, field, value):
    _, b = pair
    before = row(app, b)
    rv = client.patch(ME, json={field: value, "nickname": "应不生效"} if field != "nickname" else {field: value},
                      headers=headers_for(app, b))
    assert rv.status_code == 400
    body = rv.get_json()
    assert body["code"] == "invalid_request" and body["message"] == "请求参数有误" and field in body["fields"]
    assert body["fields"][field][0] == FIELD_MESSAGES[field]
    assert row(app, b) == before


def test_patch_refuses_unknown_fields_and_phone(app, client, pair):
    _, b = pair
    before = row(app, b)
    rv = client.patch(ME, json={"phone": "13900000000"}, headers=headers_for(app, b))
    assert rv.status_code == 400 and "phone" in rv.get_json()["fields"]
    rv = client.patch(ME, json={"nickname": None}, headers=headers_for(app, b))
    assert rv.status_code == 400 and "nickname" in rv.get_json()["fields"]
    assert row(app, b) == before


def test_patch_needs_a_valid_token(app, client, pair):
    rv = client.patch(ME, json={"nickname": "x"})
    assert rv.status_code == 401 and rv.get_json()["code"] == "token_missing"
    rv = client.patch(ME, json={"nickname": "x"}, headers={"Authorization": "Bearer nope"})
    assert rv.status_code == 401 and rv.get_json()["code"] == "token_invalid"


def test_patch_by_a_disabled_member(app, client, pair):
    _, b = pair
    headers = headers_for(app, b)
    with app.app_context():
        db.session.get(Member, b).status = "frozen"
        db.session.commit()
    try:
        rv = client.patch(ME, json={"nickname": "停用中"}, headers=headers)
        assert rv.status_code == 403 and rv.get_json()["code"] == "member_disabled"
    finally:
        with app.app_context():
            db.session.get(Member, b).status = "active"
            db.session.commit()
    assert row(app, b)["nickname"] != "停用中"


@pytest.mark.parametrize("payload", [{"nickname": "a\x00b"}, {"avatar": "https://x.example/\x00"},
                                     {"plate_no": "\ud83d"}, {"nickname": 5}, {"nickname": ["x"]}])
def test_patch_odd_input(app, client, pair, payload):
    import json

    _, b = pair
    before = row(app, b)
    rv = client.patch(ME, data=json.dumps(payload), content_type="application/json", headers=headers_for(app, b))
    assert rv.status_code == 400 and rv.get_json()["code"] == "invalid_request"
    assert set(rv.get_json()["fields"]) == set(payload)
    assert row(app, b) == before
