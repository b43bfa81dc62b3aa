"""QR codes per gun (issue 11 E): content = the channel's prefix + gun code; resolve reads "prefix + gun
code", "prefix + pile code" (what a pile given the prefix by 0xF0 kind 0 prints) and bare codes of the
operator only; PNG / SVG per gun and a PDF sheet per station on the admin, in the row's data scope; the
prefix pushed to YKC piles over 0xF0 — by staff (pile panel, station page) and at login when the pile's
model supports it — tested over real sockets (a scripted pile and the simulator process)."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import segno
from PIL import Image
from sqlalchemy import select

from app.extensions import db
from app.gateway.ykc import QrCodePrefixReply, encode_reply
from app.models import Channel, Connector, Manufacturer, Operator, Pile, PileModel, Station
from app.security.scope import platform_scope
from app.services import pile_commands, qrcodes
from app.services.masterdata import MasterDataError, prepare_channel
from tests.conftest import ADMIN_PASSWORD
from tests.integration.gateway.conftest import ROOT, wait_until
from tests.integration.gateway.ykc_client import PileClient

STAFF_PASSWORD = "staff-pass-1"
PREFIX = "https://example.com/q?c="


def op_id(code):
    return db.session.scalar(select(Operator.id).where(Operator.code == code))


@pytest.fixture(scope="module")
def prefixed(app):
    """Operator A gets a mini program channel with a QR prefix, and a disabled one with another prefix."""
    with app.app_context(), platform_scope("test"):
        a = op_id("MA1NJ0001")
        tag = uuid.uuid4().hex[:6]
        ch = Channel(operator_id=a, code=f"QRMP{tag}", name="二维码小程序", channel_type="mini_program",
                     qr_prefix=PREFIX)
        old = Channel(operator_id=a, code=f"QROLD{tag}", name="旧二维码", channel_type="app",
                      qr_prefix="https://old.example.com/scan/", enabled=False)
        db.session.add_all([ch, old])
        db.session.commit()
        ids = ch.id, old.id
    yield ids
    with app.app_context(), platform_scope("test"):
        for cid in ids:
            db.session.delete(db.session.get(Channel, cid))
        db.session.commit()


def gun_of(code):
    return db.session.scalars(select(Connector).where(Connector.operator_id == op_id(code))
                              .order_by(Connector.id)).first()


# --- content and resolve ---------------------------------------------------------------------------------------


def test_content_is_the_channel_prefix_and_the_gun_code(app, prefixed):
    with app.app_context(), platform_scope("test"):
        gun = gun_of("MA1NJ0001")
        channel = db.session.get(Channel, prefixed[0])
        assert qrcodes.content_for(gun, channel) == f"{PREFIX}{gun.code}"
        assert qrcodes.content_for(gun) == qrcodes.prefix_for(gun.operator_id) + gun.code
        assert qrcodes.prefix_for(gun.operator_id) != ""                   # a default channel exists
        b_gun = gun_of("MA1NJ0002")
        b_prefix = qrcodes.prefix_for(b_gun.operator_id)
        assert qrcodes.content_for(b_gun) == b_prefix + b_gun.code          # B: its own (or the bare code)


def test_resolve_reads_gun_and_pile_codes_of_the_operator_only(app, prefixed):
    with app.app_context(), platform_scope("test"):
        a, b = op_id("MA1NJ0001"), op_id("MA1NJ0002")
        gun = gun_of("MA1NJ0001")
        pile_code = gun.pile.code
        assert qrcodes.resolve(f"{PREFIX}{gun.code}", a) == (pile_code, gun.code)
        assert qrcodes.resolve(f"  {PREFIX}{gun.code}\n", a) == (pile_code, gun.code)
        assert qrcodes.resolve(f"{PREFIX}{pile_code}", a) == (pile_code, None)      # 0xF0 kind 0
        assert qrcodes.resolve(f"https://old.example.com/scan/{gun.code}", a) == (pile_code, gun.code)
        assert qrcodes.resolve(gun.code, a) == (pile_code, gun.code)                 # bare codes
        assert qrcodes.resolve(pile_code, a) == (pile_code, None)
        # another operator's gun, with A's prefix or bare, names nothing for A; A's gun nothing for B
        b_gun = gun_of("MA1NJ0002")
        assert qrcodes.resolve(f"{PREFIX}{b_gun.code}", a) is None
        assert qrcodes.resolve(b_gun.pile.code, a) is None
        assert qrcodes.resolve(f"{PREFIX}{gun.code}", b) is None
        assert qrcodes.resolve(gun.code, b) is None
        # unknown prefixes, unknown codes and junk
        assert qrcodes.resolve(f"https://evil.example.com/?c={gun.code}", a) is None
        assert qrcodes.resolve(f"{PREFIX}9999999999999901", a) is None
        assert qrcodes.resolve(f"{PREFIX}{gun.code}x", a) is None
        assert qrcodes.resolve("", a) is None and qrcodes.resolve(None, a) is None


def test_the_channel_prefix_is_ascii_without_spaces(app):
    with app.app_context(), platform_scope("test"):
        ch = Channel(operator_id=op_id("MA1NJ0001"), code="QRCHK", name="检查", channel_type="app",
                     qr_prefix="  https://example.com/q?c=  ")
        prepare_channel(ch)
        assert ch.qr_prefix == "https://example.com/q?c="
        for bad in ("https://example.com/扫码?c=", "https://example.com/q c=", "h" * 201):
            ch.qr_prefix = bad
            with pytest.raises(MasterDataError) as exc:
                prepare_channel(ch)
            assert "qr_prefix" in exc.value.errors
        ch.qr_prefix = "   "
        prepare_channel(ch)
        assert ch.qr_prefix is None


# --- images on the admin -------------------------------------------------------------------------------------


def modules_of(png: bytes, scale=8, border=2):
    """The dark/light module matrix read back from a segno PNG (scale px per module)."""
    img = Image.open(io.BytesIO(png)).convert("L")
    size = img.width // scale - 2 * border
    return tuple(tuple(img.getpixel(((border + c) * scale + scale // 2, (border + r) * scale + scale // 2)) < 128
                       for c in range(size)) for r in range(size))


def expected_modules(content):
    return tuple(tuple(bool(v) for v in row) for row in segno.make(content, error="m").matrix)


def test_gun_png_and_svg_carry_the_content(app, login, prefixed):
    with app.app_context(), platform_scope("test"):
        gun = gun_of("MA1NJ0001")
        gun_id, content = gun.id, qrcodes.content_for(gun)
    staff = login("viewer_a", STAFF_PASSWORD, lang="zh")                 # read-only staff print codes
    rv = staff.get(f"/qrcode/gun/{gun_id}.png")
    assert rv.status_code == 200 and rv.mimetype == "image/png"
    assert modules_of(rv.data) == expected_modules(content)
    rv = staff.get(f"/qrcode/gun/{gun_id}.svg")
    assert rv.status_code == 200 and rv.mimetype == "image/svg+xml"
    assert rv.data.startswith(b"<?xml") and b"<svg" in rv.data
    assert "attachment" in rv.headers["Content-Disposition"]
    # the connector page links to them
    html = staff.get(f"/connectorview/show/{gun_id}").get_data(as_text=True)
    assert f"/qrcode/gun/{gun_id}.png" in html and f"/qrcode/gun/{gun_id}.svg" in html and "二维码" in html


def test_station_sheet_is_a_pdf_with_every_gun(app, login, prefixed):
    with app.app_context(), platform_scope("test"):
        gun = gun_of("MA1NJ0001")
        station = db.session.get(Station, gun.station_id)
        station_id = station.id
        guns = qrcodes.station_connectors(station_id)
        pages = qrcodes.station_sheet_pages(station)
        assert len(pages) == -(-len(guns) // qrcodes.SHEET_PER_PAGE)
        # the first cell of the first page is the first gun's code
        x, y, px = qrcodes.sheet_cell(0)
        crop = pages[0].crop((x, y, x + px, y + px))
        content = qrcodes.content_for(guns[0])
        size = len(segno.make(content, error="m").matrix) + 4
        read = tuple(tuple(crop.getpixel((int((2 + c + 0.5) * px / size), int((2 + r + 0.5) * px / size)))[0] < 128
                           for c in range(size - 4)) for r in range(size - 4))
        assert read == expected_modules(content)
    staff = login("staff_a", STAFF_PASSWORD, lang="zh")
    rv = staff.get(f"/qrcode/station/{station_id}.pdf")
    assert rv.status_code == 200 and rv.mimetype == "application/pdf" and rv.data.startswith(b"%PDF")
    assert rv.data.count(b"/Type /Page\n") + rv.data.count(b"/Type /Page ") + rv.data.count(b"/Type /Page>") \
        == len(pages)
    html = staff.get(f"/stationview/show/{station_id}").get_data(as_text=True)
    assert f"/qrcode/station/{station_id}.pdf" in html and "二维码打印单" in html


def test_codes_of_another_operator_are_not_found(app, login, prefixed):
    with app.app_context(), platform_scope("test"):
        gun = gun_of("MA1NJ0001")
        gun_id, station_id = gun.id, gun.station_id
    other = login("staff_b", STAFF_PASSWORD)
    assert other.get(f"/qrcode/gun/{gun_id}.png").status_code == 404
    assert other.get(f"/qrcode/gun/{gun_id}.svg").status_code == 404
    assert other.get(f"/qrcode/station/{station_id}.pdf").status_code == 404
    assert other.post(f"/qrcode/station/{station_id}/push").status_code == 404
    viewer = login("viewer_a", STAFF_PASSWORD)
    assert viewer.post(f"/qrcode/station/{station_id}/push").status_code in (302, 403)


# --- 0xF0 over real sockets ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def qr_model(app):
    with app.app_context(), platform_scope("test"):
        maker = db.session.scalars(select(Manufacturer).order_by(Manufacturer.id)).first()
        model = PileModel(code=f"QR{uuid.uuid4().hex[:8]}", name="二维码桩", manufacturer_id=maker.id,
                          supports_qr_prefix=True)
        db.session.add(model)
        db.session.commit()
        model_id = model.id
    yield model_id
    with app.app_context(), platform_scope("test"):
        for pile in db.session.scalars(select(Pile).where(Pile.model_id == model_id)):
            pile.model_id = None
        db.session.delete(db.session.get(PileModel, model_id))
        db.session.commit()


def set_model(app, code, model_id):
    with app.app_context(), platform_scope("test"):
        pile = db.session.scalar(select(Pile).where(Pile.code == code))
        pile.model_id = model_id
        db.session.commit()
        return pile.id


def client_for(app, username, password):
    """A client of its own (requests from a worker thread must not share the fixture client's context)."""
    client = app.test_client()
    rv = client.post("/login/", data={"username": username, "password": password})
    assert rv.status_code == 302
    client.get("/lang/en")
    return client


def test_staff_push_the_prefix_from_the_pile_panel(app, gateway, piles, prefixed):
    code = piles()
    with app.app_context(), platform_scope("test"):
        pile_id = db.session.scalar(select(Pile.id).where(Pile.code == code))
        expected = qrcodes.prefix_for(op_id("MA1NJ0001"))
    pile = PileClient(gateway.port, code)
    try:
        assert pile.login().result == 0
        pile.expect(0x56)
        admin = client_for(app, "admin", ADMIN_PASSWORD)
        html = admin.get(f"/pilecommand/{pile_id}").get_data(as_text=True)
        assert 'value="push_qr"' in html
        with ThreadPoolExecutor(1) as pool:
            sent = pool.submit(admin.post, f"/pilecommand/{pile_id}/command", data={"action": "push_qr"})
            header, msg = pile.expect(0xF0)
            assert (msg.pile_code, msg.prefix_kind, msg.prefix) == (code, 0, expected)
            pile.send_bytes(encode_reply(QrCodePrefixReply(pile_code=code, result=1), header))
            assert sent.result(10).status_code == 302
        html = admin.get(f"/pilecommand/{pile_id}").get_data(as_text=True)
        assert "The pile accepted the command." in html
        # the service call itself, with an explicit prefix
        with ThreadPoolExecutor(1) as pool:
            sent = pool.submit(_push, app, code, "https://x.example/?p=")
            header, msg = pile.expect(0xF0)
            assert msg.prefix == "https://x.example/?p=" and msg.prefix_kind == 0
            pile.send_bytes(encode_reply(QrCodePrefixReply(pile_code=code, result=0), header))
            assert sent.result(10) == 0
    finally:
        pile.close()
    with app.app_context():
        with pytest.raises(ValueError):
            pile_commands.push_qr_prefix(code, "")
        with pytest.raises(pile_commands.PileOffline):
            pile_commands.push_qr_prefix(code, PREFIX)


def _push(app, code, prefix):
    with app.app_context():
        return pile_commands.push_qr_prefix(code, prefix).result


def test_a_pile_whose_model_supports_it_gets_the_prefix_at_login(app, gateway, piles, prefixed, qr_model):
    plain, capable = piles(), piles()
    set_model(app, capable, qr_model)
    with app.app_context(), platform_scope("test"):
        expected = qrcodes.prefix_for(op_id("MA1NJ0001"))
    pile = PileClient(gateway.port, capable)
    try:
        assert pile.login().result == 0
        pile.expect(0x56)
        header, msg = pile.expect(0xF0)
        assert (msg.pile_code, msg.prefix_kind, msg.prefix) == (capable, 0, expected)
        pile.send_bytes(encode_reply(QrCodePrefixReply(pile_code=capable, result=1), header))
    finally:
        pile.close()
    other = PileClient(gateway.port, plain)                    # a model without the flag: no 0xF0
    try:
        assert other.login().result == 0
        other.expect(0x56)
        with pytest.raises(AssertionError, match="no frame 0xF0"):
            other.expect(0xF0, timeout=1.0)
    finally:
        other.close()


def test_the_simulator_takes_the_prefix_at_login_and_from_the_station_page(app, gateway, piles, redis,
                                                                           gw_station, prefixed, qr_model,
                                                                           tmp_path):
    from app.gateway.registry import Registry

    codes = [piles(), piles()]
    for code in codes:
        set_model(app, code, qr_model)
    with app.app_context(), platform_scope("test"):
        expected = qrcodes.prefix_for(op_id("MA1NJ0001"))
    stats = tmp_path / "stats.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.gateway.simulator", "--port", str(gateway.port), "--codes", ",".join(codes),
         "--guns", "2", "--heartbeat", "1", "--realtime-idle", "5", "--duration", "60", "--progress", "0",
         "--stats-file", str(stats)],
        cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        registry = Registry(redis)
        wait_until(lambda: all(registry.owner(c) for c in codes), timeout=20, message="simulated piles online")
        staff = client_for(app, "staff_a", STAFF_PASSWORD)
        rv = staff.post(f"/qrcode/station/{gw_station['station_id']}/push", follow_redirects=True)
        html = rv.get_data(as_text=True)
        # every online supporting pile of the station accepted (the other tests' capable piles are offline)
        assert "QR prefix pushed: 2 accepted, 0 refused" in html, html[-3000:]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    summary = json.loads(stats.read_text())
    assert summary["qr_prefixes"] == {code: [0, expected] for code in codes}
    assert summary["commands"]["0xF0"] == 4                   # at login and from the station page, per pile
    assert summary["errors"] == 0 and summary["refused"] == 0
