"""Member app login by phone and SMS code, token refresh and logout, and the rate limits, as members of
two operators (each app names its channel; the same phone at two operators is two members)."""
import random
import re
import time
import uuid

import pytest
from sqlalchemy import select

from app.extensions import db, get_redis
from app.models import Channel, Member
from app.services import events, sms
from tests.conftest import build_app
from tests.member_api.support import demo_member_ids, headers_for

CODE = "/api/app/v1/auth/sms-code"
LOGIN = "/api/app/v1/auth/sms-login"
REFRESH = "/api/app/v1/auth/refresh"
LOGOUT = "/api/app/v1/auth/logout"


def new_phone():
    return f"1{random.choice('3456789')}{random.randrange(10 ** 9):09d}"


def last_code(phone):
    return re.search(r"\d{6}", sms.last_messages(phone)[0]).group(0)


def member_rows(app, phone):
    with app.app_context():
        return db.session.execute(select(Member.id, Member.operator_id, Member.member_no, Member.channel_id)
                                  .where(Member.phone == phone).order_by(Member.id)).all()


@pytest.fixture(scope="module")
def chans(app):
    """An app channel of each demo operator (code and identifier), a disabled one and a pile channel."""
    a, b = demo_member_ids(app)
    tag = uuid.uuid4().hex[:6].upper()
    with app.app_context():
        op_a, op_b = (db.session.get(Member, a).operator_id, db.session.get(Member, b).operator_id)
        made = {}
        for key, op, ctype, enabled in (("A", op_a, "app", True), ("B", op_b, "app", True),
                                        ("off", op_a, "app", False), ("pile", op_a, "pile", True)):
            ch = Channel(operator_id=op, code=f"LG{tag}{key}", name=f"登录测试{key}", channel_type=ctype,
                         identifier=f"com.example.{tag.lower()}.{key.lower()}", enabled=enabled)
            db.session.add(ch)
            made[key] = ch
        db.session.commit()
        return {key: {"code": ch.code, "identifier": ch.identifier, "id": ch.id, "op": ch.operator_id}
                for key, ch in made.items()}


@pytest.fixture
def registered():
    """The member ids announced by ``member_registered`` during the test."""
    seen = []

    def receiver(sender, member_id, **_kw):
        seen.append(member_id)

    events.member_registered.connect(receiver)
    yield seen
    events.member_registered.disconnect(receiver)


def ask_code(client, phone, channel):
    return client.post(CODE, json={"phone": phone, "channel": channel})


def login(client, phone, code, channel):
    return client.post(LOGIN, json={"phone": phone, "code": code, "channel": channel})


def code_and_login(client, phone, channel):
    rv = ask_code(client, phone, channel)
    assert rv.status_code == 200, rv.get_json()
    return login(client, phone, last_code(phone), channel)


def forget_cooldown(phone):
    """As if the resend cool-down (a minute) had passed."""
    get_redis().delete(f"cpms:sms:cooldown:{phone}")


# ----- POST /auth/sms-code --------------------------------------------------------------------
def test_sms_code_is_sent_and_stored_only_as_a_hash_with_its_expiry(app, client, chans):
    phone = new_phone()
    rv = ask_code(client, phone, chans["A"]["code"])
    assert rv.status_code == 200
    assert rv.get_json() == {"expires_in": 300, "resend_in": 60}
    text = sms.last_messages(phone)[0]
    code = last_code(phone)
    assert re.fullmatch(r"\d{6}", code) and "5分钟" in text
    key = sms.code_key(chans["A"]["op"], phone)
    stored = get_redis().hgetall(key)
    assert code.encode() not in b"".join(stored.keys()) + b"".join(stored.values())
    assert 290 <= get_redis().ttl(key) <= 300


def test_sms_code_by_channel_identifier_and_phone_forms(app, client, chans):
    phone = new_phone()
    rv = ask_code(client, f"+86 {phone[:3]}-{phone[3:7]}-{phone[7:]}", chans["B"]["identifier"])
    assert rv.status_code == 200, rv.get_json()
    assert get_redis().exists(sms.code_key(chans["B"]["op"], phone))


@pytest.mark.parametrize("channel", ["NO-SUCH-CHANNEL", "off", "pile"])
def test_sms_code_unknown_disabled_or_wrong_type_channel(app, client, chans, channel):
    name = chans[channel]["code"] if channel in chans else channel
    rv = ask_code(client, new_phone(), name)
    assert rv.status_code == 400
    assert rv.get_json() == {"code": "channel_unknown", "message": "未知的应用渠道"}


@pytest.mark.parametrize("phone", ["12812345678", "1381234567", "138123456789", "abcdefghijk", "23812345678"])
def test_sms_code_invalid_phone(app, client, chans, phone):
    rv = ask_code(client, phone, chans["A"]["code"])
    assert rv.status_code == 400
    assert rv.get_json() == {"code": "phone_invalid", "message": "请输入正确的手机号"}


def test_sms_code_missing_fields_and_bad_body(app, client, chans):
    rv = client.post(CODE, json={"phone": new_phone()})
    assert rv.status_code == 400
    body = rv.get_json()
    assert body["code"] == "invalid_request" and "channel" in body["fields"]
    rv = client.post(CODE, json={"phone": new_phone(), "channel": chans["A"]["code"], "extra": 1})
    assert rv.status_code == 400 and "extra" in rv.get_json()["fields"]
    assert client.post(CODE, data="[1]", content_type="application/json").get_json()["code"] == "invalid_request"


def test_sms_code_resend_cooldown(app, client, chans):
    phone = new_phone()
    assert ask_code(client, phone, chans["A"]["code"]).status_code == 200
    first = last_code(phone)
    rv = ask_code(client, phone, chans["A"]["code"])
    assert rv.status_code == 429
    assert rv.get_json() == {"code": "sms_too_frequent", "message": "验证码已发送，请一分钟后再试"}
    # the cool-down is per phone: the other operator's app cannot bypass it either
    assert ask_code(client, phone, chans["B"]["code"]).get_json()["code"] == "sms_too_frequent"
    assert len(sms.last_messages(phone)) == 1
    forget_cooldown(phone)
    assert ask_code(client, phone, chans["A"]["code"]).status_code == 200
    second = last_code(phone)
    assert len(sms.last_messages(phone)) == 2
    # the new code replaces the old one
    if second != first:
        assert login(client, phone, first, chans["A"]["code"]).get_json()["code"] == "sms_code_wrong"
    assert login(client, phone, second, chans["A"]["code"]).status_code == 200


def test_sms_code_daily_cap(app, client, chans, monkeypatch):
    monkeypatch.setitem(app.config, "MEMBER_SMS_DAILY_LIMIT", 3)
    phone = new_phone()
    for _ in range(3):
        assert ask_code(client, phone, chans["A"]["code"]).status_code == 200
        forget_cooldown(phone)
    rv = ask_code(client, phone, chans["A"]["code"])
    assert rv.status_code == 429
    assert rv.get_json() == {"code": "sms_daily_limit", "message": "该手机号今日获取验证码次数过多，请明天再试"}
    assert len(sms.last_messages(phone)) == 3


class BrokenGateway(sms.SmsSender):
    """An SMS gateway that is down (the external party fails)."""

    def send(self, phone, text):
        raise ConnectionError("gateway down")


def test_sms_code_sender_failure_gives_back_the_cooldown(app, client, chans, monkeypatch):
    monkeypatch.setitem(sms.SENDERS, "broken", BrokenGateway)
    monkeypatch.setitem(app.config, "SMS_SENDER", "broken")
    phone = new_phone()
    rv = ask_code(client, phone, chans["A"]["code"])
    assert rv.status_code == 503
    assert rv.get_json() == {"code": "sms_send_failed", "message": "短信发送失败，请稍后再试"}
    assert not get_redis().exists(sms.code_key(chans["A"]["op"], phone))
    monkeypatch.setitem(app.config, "SMS_SENDER", "log")
    assert ask_code(client, phone, chans["A"]["code"]).status_code == 200   # no cool-down was kept


# ----- POST /auth/sms-login -------------------------------------------------------------------
def test_first_login_registers_once_then_logs_in(app, client, chans, registered):
    phone = new_phone()
    rv = code_and_login(client, phone, chans["A"]["code"])
    assert rv.status_code == 200, rv.get_json()
    body = rv.get_json()
    assert body["new_member"] is True and body["token_type"] == "Bearer"
    assert body["member"]["phone"] == phone and body["member"]["balance"] == "0.0000"
    assert body["member"]["member_no"].isdigit()
    rows = member_rows(app, phone)
    assert len(rows) == 1
    assert rows[0].operator_id == chans["A"]["op"] and rows[0].channel_id == chans["A"]["id"]
    assert registered == [rows[0].id]
    me = client.get("/api/app/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.get_json()["id"] == rows[0].id

    forget_cooldown(phone)
    again = code_and_login(client, phone, chans["A"]["code"]).get_json()
    assert again["new_member"] is False and again["member"]["id"] == rows[0].id
    assert registered == [rows[0].id]            # not announced again
    assert len(member_rows(app, phone)) == 1


def test_same_phone_at_two_operators_is_two_members(app, client, chans, registered):
    phone = new_phone()
    a = code_and_login(client, phone, chans["A"]["code"]).get_json()
    forget_cooldown(phone)
    b = code_and_login(client, phone, chans["B"]["identifier"]).get_json()
    assert a["new_member"] and b["new_member"] and a["member"]["id"] != b["member"]["id"]
    assert a["member"]["member_no"] != b["member"]["member_no"]
    rows = member_rows(app, phone)
    assert {r.operator_id for r in rows} == {chans["A"]["op"], chans["B"]["op"]}
    assert sorted(registered) == sorted(r.id for r in rows)
    # each token sees its own member only
    for body in (a, b):
        me = client.get("/api/app/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"}).get_json()
        assert me["id"] == body["member"]["id"]


def test_member_numbers_follow_the_sequence(app, client, chans):
    with app.app_context():
        numbers = [int(n) for n in db.session.scalars(select(Member.member_no)) if n.isdigit()]
    body = code_and_login(client, new_phone(), chans["A"]["code"]).get_json()
    assert int(body["member"]["member_no"]) == max(numbers) + 1


def test_a_code_of_one_operator_does_not_log_in_at_the_other(app, client, chans):
    phone = new_phone()
    assert ask_code(client, phone, chans["A"]["code"]).status_code == 200
    rv = login(client, phone, last_code(phone), chans["B"]["code"])
    assert rv.status_code == 400 and rv.get_json()["code"] == "sms_code_expired"
    assert member_rows(app, phone) == []
    assert login(client, phone, last_code(phone), chans["A"]["code"]).status_code == 200


def test_wrong_code_then_right_code(app, client, chans):
    phone = new_phone()
    ask_code(client, phone, chans["A"]["code"])
    code = last_code(phone)
    wrong = f"{(int(code) + 1) % 10 ** 6:06d}"
    rv = login(client, phone, wrong, chans["A"]["code"])
    assert rv.status_code == 400
    assert rv.get_json() == {"code": "sms_code_wrong", "message": "验证码错误"}
    assert login(client, phone, code, chans["A"]["code"]).status_code == 200


def test_the_code_is_void_after_the_allowed_attempts(app, client, chans):
    phone = new_phone()
    ask_code(client, phone, chans["A"]["code"])
    code = last_code(phone)
    wrong = f"{(int(code) + 7) % 10 ** 6:06d}"
    for _ in range(5):   # MEMBER_SMS_CODE_ATTEMPTS
        assert login(client, phone, wrong, chans["A"]["code"]).get_json()["code"] == "sms_code_wrong"
    assert not get_redis().exists(sms.code_key(chans["A"]["op"], phone))
    rv = login(client, phone, code, chans["A"]["code"])
    assert rv.status_code == 400
    assert rv.get_json() == {"code": "sms_code_expired", "message": "验证码已失效，请重新获取"}
    assert member_rows(app, phone) == []


def test_the_last_allowed_attempt_may_still_be_right(app, client, chans, monkeypatch):
    monkeypatch.setitem(app.config, "MEMBER_SMS_CODE_ATTEMPTS", 2)
    phone = new_phone()
    ask_code(client, phone, chans["A"]["code"])
    code = last_code(phone)
    assert login(client, phone, f"{(int(code) + 3) % 10 ** 6:06d}", chans["A"]["code"]).status_code == 400
    assert login(client, phone, code, chans["A"]["code"]).status_code == 200


def test_an_expired_code_is_refused(app, client, chans):
    phone = new_phone()
    ask_code(client, phone, chans["A"]["code"])
    key = sms.code_key(chans["A"]["op"], phone)
    get_redis().pexpire(key, 1)      # the code's time is up
    time.sleep(0.05)
    rv = login(client, phone, last_code(phone), chans["A"]["code"])
    assert rv.status_code == 400 and rv.get_json()["code"] == "sms_code_expired"


def test_code_expiry_follows_the_config(app, client, chans, monkeypatch):
    monkeypatch.setitem(app.config, "MEMBER_SMS_CODE_SECONDS", 120)
    phone = new_phone()
    rv = ask_code(client, phone, chans["A"]["code"])
    assert rv.get_json()["expires_in"] == 120
    assert 110 <= get_redis().ttl(sms.code_key(chans["A"]["op"], phone)) <= 120
    assert "2分钟" in sms.last_messages(phone)[0]


def test_a_code_is_used_once(app, client, chans):
    phone = new_phone()
    ask_code(client, phone, chans["A"]["code"])
    code = last_code(phone)
    assert login(client, phone, code, chans["A"]["code"]).status_code == 200
    rv = login(client, phone, code, chans["A"]["code"])
    assert rv.status_code == 400 and rv.get_json()["code"] == "sms_code_expired"


def test_login_without_a_code_requested(app, client, chans):
    rv = login(client, new_phone(), "123456", chans["A"]["code"])
    assert rv.status_code == 400 and rv.get_json()["code"] == "sms_code_expired"


def test_login_invalid_phone_and_unknown_channel(app, client, chans):
    rv = login(client, "1234", "123456", chans["A"]["code"])
    assert rv.status_code == 400 and rv.get_json()["code"] == "phone_invalid"
    rv = login(client, new_phone(), "123456", chans["off"]["code"])
    assert rv.status_code == 400 and rv.get_json()["code"] == "channel_unknown"
    rv = client.post(LOGIN, json={"phone": new_phone(), "channel": chans["A"]["code"]})
    assert rv.status_code == 400 and "code" in rv.get_json()["fields"]


def test_a_frozen_member_cannot_log_in(app, client, chans):
    phone = new_phone()
    member_id = code_and_login(client, phone, chans["A"]["code"]).get_json()["member"]["id"]
    with app.app_context():
        db.session.get(Member, member_id).status = "frozen"
        db.session.commit()
    forget_cooldown(phone)
    rv = code_and_login(client, phone, chans["A"]["code"])
    assert rv.status_code == 403
    assert rv.get_json() == {"code": "member_disabled", "message": "账号已停用"}
    assert len(member_rows(app, phone)) == 1       # no second account instead


def test_errors_in_english_on_request(app, client, chans):
    rv = client.post(CODE, json={"phone": "1", "channel": chans["A"]["code"]}, headers={"Accept-Language": "en"})
    assert rv.get_json()["message"] == "Please enter a valid mobile number."


# ----- POST /auth/refresh and /auth/logout ----------------------------------------------------
def test_refresh_gives_new_working_tokens(app, client, chans):
    body = code_and_login(client, new_phone(), chans["B"]["code"]).get_json()
    rv = client.post(REFRESH, json={"refresh_token": body["refresh_token"]})
    assert rv.status_code == 200
    tokens = rv.get_json()
    assert set(tokens) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert tokens["expires_in"] == 120 * 60
    me = client.get("/api/app/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.get_json()["id"] == body["member"]["id"]


def test_refresh_refuses_an_access_token_and_garbage(app, client, chans):
    body = code_and_login(client, new_phone(), chans["A"]["code"]).get_json()
    for token in (body["access_token"], "garbage"):
        rv = client.post(REFRESH, json={"refresh_token": token})
        assert rv.status_code == 401
        assert rv.get_json() == {"code": "token_invalid", "message": "登录已失效，请重新登录"}
    assert client.post(REFRESH, json={}).get_json()["code"] == "invalid_request"


def test_refresh_of_a_disabled_member(app, client, chans):
    body = code_and_login(client, new_phone(), chans["A"]["code"]).get_json()
    with app.app_context():
        db.session.get(Member, body["member"]["id"]).status = "closed"
        db.session.commit()
    rv = client.post(REFRESH, json={"refresh_token": body["refresh_token"]})
    assert rv.status_code == 403 and rv.get_json()["code"] == "member_disabled"


def test_logout_revokes_every_token_of_the_member_only(app, client, chans):
    phone = new_phone()
    first = code_and_login(client, phone, chans["A"]["code"]).get_json()
    forget_cooldown(phone)
    second = code_and_login(client, phone, chans["A"]["code"]).get_json()   # another device
    other = code_and_login(client, new_phone(), chans["B"]["code"]).get_json()
    auth = {"Authorization": f"Bearer {first['access_token']}"}
    rv = client.post(LOGOUT, headers=auth)
    assert rv.status_code == 200 and rv.get_json() == {"ok": True}
    for body in (first, second):
        me = client.get("/api/app/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
        assert me.status_code == 401 and me.get_json()["code"] == "token_invalid"
        assert client.post(REFRESH, json={"refresh_token": body["refresh_token"]}).status_code == 401
    assert client.post(LOGOUT, headers=auth).get_json()["code"] == "token_invalid"
    # the other operator's member is untouched
    me = client.get("/api/app/v1/me", headers={"Authorization": f"Bearer {other['access_token']}"})
    assert me.status_code == 200
    # and a new login works again
    forget_cooldown(phone)
    again = code_and_login(client, phone, chans["A"]["code"]).get_json()
    assert client.get("/api/app/v1/me", headers={"Authorization": f"Bearer {again['access_token']}"}).status_code == 200


def test_logout_needs_a_token(app, client):
    rv = client.post(LOGOUT)
    assert rv.status_code == 401 and rv.get_json()["code"] == "token_missing"


def test_openapi_documents_the_login_endpoints_and_their_errors(app, client):
    doc = client.get("/api/app/v1/_openapi").get_json()
    paths = doc["paths"]
    for path in ("/auth/sms-code", "/auth/sms-login", "/auth/wechat", "/auth/refresh", "/auth/logout"):
        assert "post" in paths[f"/api/app/v1{path}"], path
    login_doc = paths["/api/app/v1/auth/sms-login"]["post"]
    assert "sms_code_wrong" in login_doc["responses"]["400"]["description"]
    assert "member_disabled" in login_doc["responses"]["403"]["description"]
    code_doc = paths["/api/app/v1/auth/sms-code"]["post"]
    assert {"200", "400", "429", "503"} <= set(code_doc["responses"])
    assert "security" not in code_doc
    assert paths["/api/app/v1/auth/logout"]["post"]["security"] == [{"bearerAuth": []}]
    assert "patch" in paths["/api/app/v1/me"] and "get" in paths["/api/app/v1/me"]
    assert "sms_daily_limit" in doc["info"]["description"]


# ----- rate limits ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def limited_app(app):
    """Its own app on the session's database and Redis with tight member API limits and its own
    limiter keys (RATELIMIT_KEY_PREFIX), so no other test is limited."""
    return build_app(MEMBER_RATE_LIMIT_MEMBER="3 per minute", MEMBER_RATE_LIMIT_IP="8 per minute",
                     MEMBER_LOGIN_RATE_LIMIT="2 per minute", RATELIMIT_KEY_PREFIX=f"member-rl-{uuid.uuid4().hex[:6]}")


def _client(app, addr):
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = addr
    return c


def test_rate_limit_per_member(app, limited_app):
    a, b = demo_member_ids(app)
    c = _client(limited_app, "10.77.0.1")
    ha, hb = headers_for(app, a), headers_for(app, b)
    for _ in range(3):
        assert c.get("/api/app/v1/me", headers=ha).status_code == 200
    rv = c.get("/api/app/v1/me", headers=ha)
    assert rv.status_code == 429
    assert rv.get_json() == {"code": "rate_limited", "message": "请求过于频繁，请稍后再试"}
    # the same member from another address is still limited (the key is the member) ...
    assert _client(limited_app, "10.77.0.2").get("/api/app/v1/me", headers=ha).status_code == 429
    # ... another member from the first address is not
    assert c.get("/api/app/v1/me", headers=hb).status_code == 200


def test_rate_limit_per_address(app, limited_app):
    c = _client(limited_app, "10.77.1.1")
    for _ in range(8):
        assert c.get("/api/app/v1/_openapi").status_code == 200
    rv = c.get("/api/app/v1/_openapi")
    assert rv.status_code == 429 and rv.get_json()["code"] == "rate_limited"
    assert _client(limited_app, "10.77.1.2").get("/api/app/v1/_openapi").status_code == 200


def test_rate_limit_on_logins_per_address(app, limited_app, chans):
    c = _client(limited_app, "10.77.2.1")
    for _ in range(2):
        assert ask_code(c, "1", chans["A"]["code"]).get_json()["code"] == "phone_invalid"
    rv = ask_code(c, new_phone(), chans["A"]["code"])
    assert rv.status_code == 429 and rv.get_json()["code"] == "rate_limited"
    # each login endpoint counts on its own (app/member_api/__init__.py): logins by code too
    for _ in range(2):
        assert login(c, new_phone(), "123456", chans["A"]["code"]).get_json()["code"] == "sms_code_expired"
    rv = login(c, new_phone(), "123456", chans["A"]["code"])
    assert rv.status_code == 429 and rv.get_json()["code"] == "rate_limited"
    # another address may still log in
    phone = new_phone()
    c2 = _client(limited_app, "10.77.2.2")
    assert ask_code(c2, phone, chans["A"]["code"]).status_code == 200
    assert login(c2, phone, last_code(phone), chans["A"]["code"]).status_code == 200


# ----- odd input is refused with a documented answer, never a server error -----------------------
@pytest.mark.parametrize("payload,field", [
    ({"phone": "13800000000", "channel": "CH\x00"}, "channel"),
    ({"phone": "1380000\x000000", "channel": "x"}, "phone"),
    ({"phone": "13800000000", "channel": "\ud800"}, "channel"),
    ({"phone": None, "channel": "x"}, "phone"),
    ({"phone": 13800000000, "channel": "x"}, "phone"),
    ({"phone": "13800000000", "channel": "x" * 65}, "channel"),
])
def test_sms_code_odd_input(app, client, payload, field):
    import json

    rv = client.post(CODE, data=json.dumps(payload), content_type="application/json")
    assert rv.status_code == 400
    assert rv.get_json()["code"] == "invalid_request" and field in rv.get_json()["fields"]


def test_unicode_digits_are_not_a_phone(app, client, chans):
    rv = ask_code(client, "1３８００１３８０００", chans["A"]["code"])
    assert rv.status_code == 400 and rv.get_json()["code"] == "phone_invalid"
    rv = ask_code(client, "1٣٨٠٠١٣٨٠٠٠", chans["A"]["code"])
    assert rv.status_code == 400 and rv.get_json()["code"] == "phone_invalid"


def test_sms_login_odd_code(app, client, chans):
    rv = login(client, new_phone(), "12\x0034", chans["A"]["code"])
    assert rv.status_code == 400 and "code" in rv.get_json()["fields"]


# ----- registration under concurrency -----------------------------------------------------------
def _race(app, calls):
    """Run ``calls`` (functions) at the same moment, each in its own thread and app context."""
    import threading

    barrier = threading.Barrier(len(calls))
    results, failures = [], []

    def run(fn):
        try:
            with app.app_context():
                barrier.wait()
                results.append(fn())
        except Exception as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(fn,)) for fn in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures, failures
    return results


def test_racing_first_logins_of_one_phone_register_one_member(app, chans, registered):
    from app.services import member_accounts

    phone = new_phone()

    def first_login():
        member, created = member_accounts.find_or_register(chans["A"]["op"], phone=phone, channel_id=chans["A"]["id"])
        return member.id, created

    results = _race(app, [first_login] * 4)
    assert len({member_id for member_id, _ in results}) == 1
    assert sorted(created for _, created in results) == [False, False, False, True]
    assert len(member_rows(app, phone)) == 1
    assert registered == [results[0][0]]


def test_racing_registrations_get_distinct_member_numbers(app, chans, registered):
    from app.services import member_accounts

    phones = [new_phone() for _ in range(4)]

    def register(phone):
        return lambda: member_accounts.find_or_register(chans["B"]["op"], phone=phone)[0].member_no

    numbers = _race(app, [register(p) for p in phones])
    assert len(set(numbers)) == 4 and all(n.isdigit() for n in numbers)
    assert len(registered) == 4


def test_member_numbers_ignore_many_longer_non_numeric_numbers(app):
    """Member numbers made elsewhere (imports, other systems: letters, longer) do not hide the sequence."""
    from app.services import member_accounts

    with app.app_context():
        op = db.session.scalars(select(Member.operator_id)).first()
        before = member_accounts.next_member_no()
        tag = uuid.uuid4().hex[:8]
        db.session.add_all([Member(operator_id=op, member_no=f"X{tag}{n:06d}", status="active", balance=0)
                            for n in range(60)])
        db.session.commit()
        assert member_accounts.next_member_no() == before
        assert int(before) > 100
