"""Member app login by WeChat mini program (code2session over real HTTP against a local fake WeChat),
as members of two operators' mini programs; and the channel's AppSecret, write-only in the admin."""
import io
import socket
import uuid

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from app.extensions import db
from app.models import Channel, Member
from app.services import events
from tests.member_api.support import demo_member_ids, headers_for
from tests.member_api.wechat_fake import FakeWeChat

WECHAT = "/api/app/v1/auth/wechat"


@pytest.fixture(scope="module")
def wechat():
    fake = FakeWeChat().start()
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def wechat_base(app, wechat, monkeypatch):
    monkeypatch.setitem(app.config, "WECHAT_API_BASE", wechat.url)


@pytest.fixture(scope="module")
def minis(app, wechat):
    """A mini program channel of each demo operator (AppID + AppSecret, known to the fake WeChat), one
    without a secret and a disabled one."""
    a, b = demo_member_ids(app)
    tag = uuid.uuid4().hex[:10]
    out = {}
    with app.app_context():
        ops = {"A": db.session.get(Member, a).operator_id, "B": db.session.get(Member, b).operator_id}
        for key, op, secret, enabled in (("A", ops["A"], f"secA{tag}", True), ("B", ops["B"], f"secB{tag}", True),
                                         ("nosecret", ops["A"], None, True), ("off", ops["B"], f"secO{tag}", False)):
            appid = f"wx{tag}{key.lower()}"[:18]
            ch = Channel(operator_id=op, code=f"WX{tag[:6]}{key}"[:32], name=f"小程序{key}",
                         channel_type="mini_program", identifier=appid, app_secret=secret, enabled=enabled)
            db.session.add(ch)
            out[key] = {"appid": appid, "secret": secret, "op": op}
            if secret:
                wechat.apps[appid] = secret
        db.session.commit()
        for key, ch in zip(out, db.session.scalars(select(Channel).where(Channel.code.like(f"WX{tag[:6]}%"))
                                                   .order_by(Channel.id)), strict=True):
            out[key]["id"] = ch.id
    return out


@pytest.fixture
def registered():
    seen = []

    def receiver(sender, member_id, **_kw):
        seen.append(member_id)

    events.member_registered.connect(receiver)
    yield seen
    events.member_registered.disconnect(receiver)


def new_code(wechat, appid, openid=None, unionid=None):
    code = uuid.uuid4().hex
    wechat.add_code(code, appid, openid or f"o{uuid.uuid4().hex[:27]}", unionid)
    return code, wechat.codes[code][1]


def members_with(app, openid):
    with app.app_context():
        return db.session.execute(select(Member.id, Member.operator_id, Member.channel_id, Member.unionid)
                                  .where(Member.openid == openid).order_by(Member.id)).all()


def test_first_wechat_login_registers_then_logs_in(app, client, wechat, minis, registered):
    code, openid = new_code(wechat, minis["A"]["appid"], unionid="uUNION" + uuid.uuid4().hex[:10])
    rv = client.post(WECHAT, json={"appid": minis["A"]["appid"], "code": code})
    assert rv.status_code == 200, rv.get_json()
    body = rv.get_json()
    assert body["new_member"] is True and body["member"]["phone"] is None
    rows = members_with(app, openid)
    assert len(rows) == 1 and rows[0].operator_id == minis["A"]["op"] and rows[0].channel_id == minis["A"]["id"]
    assert rows[0].unionid.startswith("uUNION")
    assert registered == [rows[0].id]
    # WeChat got the channel's AppID and AppSecret and the code, over HTTP
    path, query = wechat.requests[-1]
    assert path == "/sns/jscode2session"
    assert query == {"appid": minis["A"]["appid"], "secret": minis["A"]["secret"], "js_code": code,
                     "grant_type": "authorization_code"}
    me = client.get("/api/app/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.get_json()["id"] == rows[0].id

    code2, _ = new_code(wechat, minis["A"]["appid"], openid=openid)
    again = client.post(WECHAT, json={"appid": minis["A"]["appid"], "code": code2}).get_json()
    assert again["new_member"] is False and again["member"]["id"] == rows[0].id
    assert registered == [rows[0].id]
    assert len(members_with(app, openid)) == 1


def test_same_openid_at_two_operators_is_two_members(app, client, wechat, minis):
    openid = f"oSAME{uuid.uuid4().hex[:20]}"
    ids = []
    for key in ("A", "B"):
        code, _ = new_code(wechat, minis[key]["appid"], openid=openid)
        body = client.post(WECHAT, json={"appid": minis[key]["appid"], "code": code}).get_json()
        assert body["new_member"] is True
        ids.append(body["member"]["id"])
    rows = members_with(app, openid)
    assert [r.id for r in rows] == ids
    assert [r.operator_id for r in rows] == [minis["A"]["op"], minis["B"]["op"]]


def test_a_code_of_one_mini_program_is_refused_at_the_other(app, client, wechat, minis):
    code, openid = new_code(wechat, minis["A"]["appid"])
    rv = client.post(WECHAT, json={"appid": minis["B"]["appid"], "code": code})
    assert rv.status_code == 400
    assert rv.get_json() == {"code": "wechat_code_invalid", "message": "微信登录凭证无效或已使用，请重新登录"}
    assert members_with(app, openid) == []


def test_invalid_and_used_codes(app, client, wechat, minis):
    rv = client.post(WECHAT, json={"appid": minis["A"]["appid"], "code": "no-such-code"})   # 40029
    assert rv.status_code == 400 and rv.get_json()["code"] == "wechat_code_invalid"
    code, _ = new_code(wechat, minis["A"]["appid"])
    assert client.post(WECHAT, json={"appid": minis["A"]["appid"], "code": code}).status_code == 200
    rv = client.post(WECHAT, json={"appid": minis["A"]["appid"], "code": code})           # 40163
    assert rv.status_code == 400 and rv.get_json()["code"] == "wechat_code_invalid"


def test_wechat_rate_limit_answer(app, client, wechat, minis):
    code, openid = new_code(wechat, minis["A"]["appid"])
    wechat.busy_codes.add(code)                                                          # 45011
    rv = client.post(WECHAT, json={"appid": minis["A"]["appid"], "code": code})
    assert rv.status_code == 503
    assert rv.get_json() == {"code": "wechat_busy", "message": "微信系统繁忙，请稍后再试"}
    assert members_with(app, openid) == []


def test_wechat_unreachable(app, client, wechat, minis, monkeypatch):
    with socket.socket() as s:          # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setitem(app.config, "WECHAT_API_BASE", f"http://127.0.0.1:{port}")
    code, _ = new_code(wechat, minis["A"]["appid"])
    rv = client.post(WECHAT, json={"appid": minis["A"]["appid"], "code": code})
    assert rv.status_code == 503 and rv.get_json()["code"] == "wechat_busy"


def test_wrong_app_secret_and_missing_secret(app, client, wechat, minis):
    wechat.apps[minis["A"]["appid"]] = "rotated-at-wechat"
    try:
        code, _ = new_code(wechat, minis["A"]["appid"])
        rv = client.post(WECHAT, json={"appid": minis["A"]["appid"], "code": code})          # 40125
    finally:
        wechat.apps[minis["A"]["appid"]] = minis["A"]["secret"]
    assert rv.status_code == 502
    assert rv.get_json() == {"code": "wechat_login_failed", "message": "微信登录失败，请联系运营商"}
    asked = len(wechat.requests)
    rv = client.post(WECHAT, json={"appid": minis["nosecret"]["appid"], "code": "x"})
    assert rv.status_code == 502 and rv.get_json()["code"] == "wechat_login_failed"
    assert len(wechat.requests) == asked           # not even asked


@pytest.mark.parametrize("appid", ["wxunknownappid000", "off", ""])
def test_unknown_or_disabled_mini_program(app, client, wechat, minis, appid):
    appid = minis[appid]["appid"] if appid in minis else appid
    rv = client.post(WECHAT, json={"appid": appid, "code": "abc"})
    assert rv.status_code == 400
    assert rv.get_json()["code"] == ("invalid_request" if appid == "" else "channel_unknown")


def test_an_app_channel_code_is_not_a_mini_program(app, client, wechat, minis):
    with app.app_context():
        pile = db.session.scalar(select(Channel).where(Channel.channel_type == "pile"))
        name = pile.code
    rv = client.post(WECHAT, json={"appid": name, "code": "abc"})
    assert rv.status_code == 400 and rv.get_json()["code"] == "channel_unknown"


def test_frozen_member_cannot_log_in_by_wechat(app, client, wechat, minis):
    code, openid = new_code(wechat, minis["B"]["appid"])
    member_id = client.post(WECHAT, json={"appid": minis["B"]["appid"], "code": code}).get_json()["member"]["id"]
    with app.app_context():
        db.session.get(Member, member_id).status = "frozen"
        db.session.commit()
    code2, _ = new_code(wechat, minis["B"]["appid"], openid=openid)
    rv = client.post(WECHAT, json={"appid": minis["B"]["appid"], "code": code2})
    assert rv.status_code == 403 and rv.get_json()["code"] == "member_disabled"


def test_wechat_login_needs_appid_and_code(app, client):
    rv = client.post(WECHAT, json={"appid": "wx1"})
    assert rv.status_code == 400 and "code" in rv.get_json()["fields"]


# ----- the channel's AppSecret in the admin: write-only -----------------------------------------
def test_app_secret_is_write_only_on_the_channel_form(app, admin_client):
    a, _ = demo_member_ids(app)
    with app.app_context():
        op_id = db.session.get(Member, a).operator_id
    code = f"S{uuid.uuid4().hex[:8]}"
    secret = f"S3cr3t{uuid.uuid4().hex}"[:32]
    rv = admin_client.post("/channelview/add", data={
        "code": code, "name": "密钥渠道", "channel_type": "mini_program", "rate": "0", "identifier": f"wx{code}",
        "app_secret": secret, "operator": str(op_id), "enabled": "y"})
    assert rv.status_code == 302, rv.get_data(as_text=True)[:2000]
    with app.app_context():
        ch = db.session.scalar(select(Channel).where(Channel.code == code))
        assert ch.app_secret == secret
        ch_id = ch.id
    for url in ("/channelview/list/", f"/channelview/show/{ch_id}", f"/channelview/edit/{ch_id}"):
        page = admin_client.get(url)
        assert page.status_code == 200 and secret not in page.get_data(as_text=True), url
    export = admin_client.get("/channelview/export/")
    assert export.status_code == 200
    cells = [str(c) for row in load_workbook(io.BytesIO(export.data)).worksheets[0].iter_rows(values_only=True)
             for c in row if c is not None]
    assert f"wx{code}" in cells and not any(secret in c for c in cells)
    # an edit with the secret left empty keeps it; a new one replaces it
    data = {"code": code, "name": "密钥渠道改", "channel_type": "mini_program", "rate": "0",
            "identifier": f"wx{code}", "app_secret": "", "operator": str(op_id), "enabled": "y"}
    assert admin_client.post(f"/channelview/edit/{ch_id}", data=data).status_code == 302
    with app.app_context():
        ch = db.session.get(Channel, ch_id)
        assert ch.name == "密钥渠道改" and ch.app_secret == secret
    assert admin_client.post(f"/channelview/edit/{ch_id}", data=dict(data, app_secret="NewSecret99")).status_code == 302
    with app.app_context():
        assert db.session.get(Channel, ch_id).app_secret == "NewSecret99"
    # a secret with spaces is refused on the field
    rv = admin_client.post(f"/channelview/edit/{ch_id}", data=dict(data, app_secret="has space"))
    assert rv.status_code == 200 and "without spaces" in rv.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Channel, ch_id).app_secret == "NewSecret99"


def test_a_phone_member_binds_wechat_once(app, client, wechat, minis):
    """A member who logged in by phone binds the mini program's WeChat identity (for WeChat Pay); an openid
    that belongs to someone else, another operator's mini program and a second openid are refused."""
    from app.services import member_accounts

    with app.app_context():
        member, _ = member_accounts.find_or_register(minis["A"]["op"], phone=f"139{uuid.uuid4().int % 10**8:08d}")
        member_id = member.id
    headers = headers_for(app, member_id)
    bind = "/api/app/v1/auth/wechat/bind"
    assert client.post(bind, json={"appid": minis["A"]["appid"], "code": "x"}).status_code == 401
    code, _ = new_code(wechat, minis["B"]["appid"])
    rv = client.post(bind, json={"appid": minis["B"]["appid"], "code": code}, headers=headers)
    assert rv.status_code == 400 and rv.get_json()["code"] == "channel_unknown"
    taken = f"oTAKEN{uuid.uuid4().hex[:20]}"
    login_code, _ = new_code(wechat, minis["A"]["appid"], openid=taken)
    assert client.post(WECHAT, json={"appid": minis["A"]["appid"], "code": login_code}).status_code == 200
    code, _ = new_code(wechat, minis["A"]["appid"], openid=taken)
    rv = client.post(bind, json={"appid": minis["A"]["appid"], "code": code}, headers=headers)
    assert rv.status_code == 409
    assert rv.get_json() == {"code": "wechat_already_bound", "message": "该微信已绑定其他会员"}
    code, openid = new_code(wechat, minis["A"]["appid"])
    rv = client.post(bind, json={"appid": minis["A"]["appid"], "code": code}, headers=headers)
    assert rv.status_code == 200 and rv.get_json()["id"] == member_id
    assert [r.id for r in members_with(app, openid)] == [member_id]
    code, _ = new_code(wechat, minis["A"]["appid"])
    rv = client.post(bind, json={"appid": minis["A"]["appid"], "code": code}, headers=headers)
    assert rv.status_code == 409 and rv.get_json()["code"] == "wechat_already_bound"
    # the WeChat login now finds the phone member
    code, _ = new_code(wechat, minis["A"]["appid"], openid=openid)
    body = client.post(WECHAT, json={"appid": minis["A"]["appid"], "code": code}).get_json()
    assert body["new_member"] is False and body["member"]["id"] == member_id
