"""Chinese everywhere an operator looks (issue 9 §6).

The platform admin, on the default (zh) locale, walks every GET screen of ``app.url_map``: lists,
the show page of a real row, add and edit forms and the custom pages (dashboard, monitor, reports,
pile command panel, order detail and curve, set-aside data, user list and info). The visible text
(text nodes outside ``<script>``/``<style>``, ``placeholder``/``title`` attributes, button labels)
must hold no ``None``/``True``/``False``, no Python repr and none of a list of English words. Demo
orders with events, failure, stop and abnormal reasons written by the services themselves are
generated first, so the order screens have content.

Stored reasons and event remarks are kept as their English source text (logs, partner pushes and
the pile protocol read them) and translated when shown: :func:`app.views.formatters.display_text`
looks the text up in the catalogue, parameters included.
"""
import re
from datetime import timedelta
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from flask_babel import force_locale

from app.models import ChargeOrder, Connector, Invoice, OrderEvent
from app.models.base import utcnow
from tests.conftest import ADMIN_PASSWORD

# English words that must not reach a zh screen (whole words, any case)
ENGLISH = [
    "Add", "Cancel", "Secrets", "Cards", "Save", "Search", "List", "Edit", "Delete", "Show", "Actions",
    "Record", "Records", "period", "pile", "piles", "offline", "online", "order", "orders", "charging",
    "failed", "reason", "gun", "station", "member", "balance", "status", "stop", "stopped", "start",
    "started", "abnormal", "finished", "settled", "platform", "issued", "pending", "yes", "no", "none",
    "null", "true", "false", "amount", "energy", "time", "refresh", "back", "submit", "close", "detail",
    "details", "bill", "events", "event", "remark", "reply", "command", "sent", "accepted", "waiting",
    "Administrator", "Admin", "Operator", "Staff", "Public", "Period", "Periods", "Template", "Price",
    "User", "Users", "Role", "Roles", "Permission", "Permissions", "Login", "Logout", "Filter", "Total", "OK", "Groups",
]
ENGLISH_RE = re.compile(r"(?<![\w.@/-])(" + "|".join(map(re.escape, ENGLISH)) + r")(?![\w@/-])", re.I)
REPRS = ("None", "True", "False", "{'", "<app.", "Decimal(", "datetime.", "[<")
REPR_RE = re.compile(r"(?<!\w)(None|True|False)(?!\w)|\{'|<app\.|Decimal\(|datetime\.|\[<")
MICROSECONDS = re.compile(r"\d{2}:\d{2}:\d{2}\.\d+")
ISO_T = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
SKIP_METHODS = {"action", "delete", "download", "export", "totals", "live", "back", "lang", "login", "logout",
                "static", "swagger", "uploads", "start"}


class VisibleText(HTMLParser):
    """Text nodes outside script/style plus placeholder/title attributes and button labels."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.skip = 0
        self.chunks = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "code", "pre"):
            self.skip += 1
        a = dict(attrs)
        for name in ("placeholder", "title"):
            if a.get(name):
                self.chunks.append(a[name])
        if (tag == "button" or (tag == "input" and a.get("type") in ("button", "submit", "reset"))) and a.get("value"):
            self.chunks.append(a["value"])

    def handle_endtag(self, tag):
        if tag in ("script", "style", "code", "pre") and self.skip:
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip and data.strip():
            self.chunks.append(data.strip())


def visible_text(html):
    p = VisibleText()
    p.feed(html)
    return p.chunks


# code-like fields: FAB permission identities ("can list on PileView", "menu access on Orders"),
# the platform admin's login name
CODE_LIKE = re.compile(r"^\[?(((can [\w ]+|menu access|\w+) on [A-Z][^,、\]]*)(, |、)?)+\]?$|^admin$")


def problems(html):
    """What on a page is not Chinese: English words, Python reprs, microseconds, ISO times."""
    found = []
    for chunk in visible_text(html):
        if CODE_LIKE.match(chunk):
            continue
        for m in REPR_RE.finditer(chunk):
            found.append(f"repr {m.group(0)!r} in {chunk[:120]!r}")
        for m in ENGLISH_RE.finditer(chunk):
            found.append(f"English {m.group(0)!r} in {chunk[:120]!r}")
        if MICROSECONDS.search(chunk) or ISO_T.search(chunk):
            found.append(f"raw time in {chunk[:120]!r}")
    return found


@pytest.fixture(scope="module")
def zh_app():
    """An app of its own on a fresh database with only the demo data: what other test modules write
    (English names typed by tests) is not what an operator's screens look like."""
    import os

    from app import create_app
    from tests import conftest

    if os.environ.get("TEST_DATABASE_URL"):
        url, info = conftest._make_database()
    else:
        url, info = "sqlite:///" + os.path.join(conftest.TMP, "zh.db"), None
    app = create_app("test", SQLALCHEMY_DATABASE_URI=url, INSTANCE_DIR=conftest.TMP,
                     ADMIN_PASSWORD=ADMIN_PASSWORD)
    with app.app_context():
        from app.cli import setup_platform

        setup_platform(demo=True)
    yield app
    with app.app_context():
        from app.extensions import db

        db.engine.dispose()
    if info:
        conftest._drop_database(info)


@pytest.fixture(scope="module")
def app(zh_app):
    return zh_app


@pytest.fixture
def client(zh_app):
    return zh_app.test_client()


@pytest.fixture(scope="module")
def demo_orders(app):
    """Orders written by the services: a start the pile refused (offline), one charging, one settled
    with a stop reason from the pile, one the checks marked abnormal, and an issued invoice."""
    from app.extensions import db
    from app.gateway.ykc import codes
    from app.services import charging, order_admin

    with app.app_context():
        conn = db.session.query(Connector).order_by(Connector.id).first()
        now = utcnow()
        made = {}
        for n, status in enumerate(("pending", "charging", "finished", "charging")):
            o = ChargeOrder(order_no=f"ZH{n:011d}", operator_id=conn.operator_id, station_id=conn.station_id,
                            pile_id=conn.pile_id, connector_id=conn.id, status=status, start_method="app",
                            started_at=now - timedelta(hours=1, microseconds=123456), energy=Decimal("12.5"),
                            total_amount=Decimal("10"), plate_no="苏A12345", live_power=Decimal("30"),
                            price_template_id=conn.station.price_template_id,
                            live_updated_at=now - timedelta(microseconds=654321))
            db.session.add(o)
            made[n] = o
        db.session.flush()
        # a start the pile never took: failure reason and event remark from charging.py
        made[0].status = "starting"
        charging.event(made[0], "start_sent", remark="no reply yet; waiting for the pile")
        db.session.commit()
        charging._fail(made[0].id, "The pile is offline.")
        # a finished session with the pile's stop reason
        made[2].stop_reason_code = 0x41
        made[2].stop_reason = codes.stop_reason_text(0x41)
        made[2].ended_at = now
        charging.event(made[2], "clock_skew", remark="The pile's clock is +120 s off the platform's.")
        # a session the watchdog flags abnormal
        order_admin.mark_abnormal(made[3], "No realtime data from the pile while charging.")
        db.session.commit()
        invoice_ids = [i.id for i in db.session.query(Invoice).all()]
        return {"orders": [o.id for o in made.values()], "invoices": invoice_ids}


def _pick_pk(app, view):
    from flask import g

    datamodel = getattr(view, "datamodel", None)
    if datamodel is None:
        return None
    with app.test_request_context("/"):
        sm = app.appbuilder.sm
        g.user = sm.get_user_by_id(sm.find_user(username="admin").id)
        _, items = datamodel.query(view._base_filters, order_column=datamodel.get_pk_name(),
                                   order_direction="desc", page=0, page_size=1)
        return str(datamodel.get_pk_value(items[0])) if items else None


def screens(app):
    """(url, endpoint) of every GET screen of the admin with the id of a real row."""
    views = {v.blueprint.name: v for v in app.appbuilder.baseviews if getattr(v, "blueprint", None) is not None}
    pks = {}
    out = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if "GET" not in rule.methods or rule.rule.startswith("/api/"):
            continue
        bp, _, meth = rule.endpoint.partition(".")
        if meth in SKIP_METHODS or bp in SKIP_METHODS or rule.endpoint in SKIP_METHODS:
            continue
        view = views.get(bp)
        url = rule.rule
        if "<" in url:
            if view is None or not re.fullmatch(r"[^<]*<(?:int:)?pk>[^<]*", url):
                continue
            if bp not in pks:
                source = views.get("PileView") if bp == "PileCommandView" else view
                pks[bp] = _pick_pk(app, source)
            if pks[bp] is None:
                continue
            url = re.sub(r"<(?:int:)?pk>", pks[bp], url)
        out.append((url, rule.endpoint))
    return out


@pytest.fixture
def zh_admin(app, client):
    client.post("/logout/")
    rv = client.post("/login/", data={"username": "admin", "password": ADMIN_PASSWORD})
    assert rv.status_code == 302
    client.get("/lang/zh")
    return client


def test_every_screen_is_chinese(app, zh_admin, demo_orders):
    walked, bad = [], {}
    for url, _endpoint in screens(app):
        rv = zh_admin.get(url)
        assert rv.status_code < 500, f"{url}: {rv.status_code}"
        if rv.status_code != 200 or not rv.content_type.startswith("text/html"):
            continue
        walked.append(url)
        found = problems(rv.get_data(as_text=True))
        if found:
            bad[url] = sorted(set(found))
    # the screens the issue names were really walked
    for must in ("/dashboard/", "/stationmonitor/", "/operationreport/", "/stationreport/", "/setasidedata/",
                 "/users/list/", "/users/userinfo/", "/historyorderview/list/", "/pricetemplateview/list/"):
        assert must in walked, must
    for prefix in ("/pilecommand/", "/historyorderview/show/", "/abnormalorderview/show/", "/users/show/",
                   "/pileview/edit/", "/stationview/add"):
        assert any(u.startswith(prefix) for u in walked), prefix
    assert not bad, "\n".join(f"{u}:\n    " + "\n    ".join(p) for u, p in bad.items())


def test_order_screens_show_reasons_and_remarks_in_chinese(app, zh_admin, demo_orders):
    ids = demo_orders["orders"]
    html = zh_admin.get(f"/historyorderview/show/{ids[0]}").get_data(as_text=True)
    assert "电桩离线" in html or "电桩不在线" in html, "failure reason and remark in Chinese"
    assert "尚未应答" in html
    html = zh_admin.get(f"/historyorderview/show/{ids[2]}").get_data(as_text=True)
    assert "SOC" in html and "充满" in html, "the pile's stop reason in Chinese"
    html = zh_admin.get(f"/abnormalorderview/show/{ids[3]}").get_data(as_text=True)
    assert "实时数据" in html, "abnormal reason in Chinese"
    with app.app_context():
        from app.extensions import db

        remarks = [e.remark for e in db.session.query(OrderEvent).filter(OrderEvent.order_id.in_(ids))]
    assert "The pile is offline." in remarks, "stored as the English source text (msgid)"


def test_display_text_translates_stored_messages(app):
    from app.gateway.ykc import codes
    from app.services import charging
    from app.views.formatters import display_text

    with app.test_request_context("/"), force_locale("zh"):
        assert display_text("The pile is offline.") == "电桩离线。"
        assert display_text("The gun is not free (status: charging).") == "充电枪不空闲（状态：充电中）。"
        assert display_text("The pile's clock is -75 s off the platform's.") == "电桩时钟与平台相差 -75 秒。"
        assert display_text(None) == "-"
        assert display_text("Start refused (0x1F)") == "启动被拒绝（0x1F）"
        assert display_text("stop by admin") == "由admin停止"
        joined = ("Amount differs from the pile's bill: platform 10.0000, pile 9.5000 (difference 0.5000, "
                  "tolerance 0.0100). Energy differs from the pile's bill: platform 12.500 kWh, pile 12.000 kWh "
                  "(tolerance 0.100).")
        assert display_text(joined) == ("金额与电桩账单不符：平台 10.0000，电桩 9.5000（差额 0.5000，容差 0.0100）。"
                                        "电量与电桩账单不符：平台 12.500 kWh，电桩 12.000 kWh（容差 0.100）。")
        assert display_text("苏A12345") == "苏A12345"
        for text in [*codes.STOP_REASONS.values(), *charging.START_FAILURES.values(),
                     *charging.STOP_FAILURES.values()]:
            assert display_text(text) != text, f"no Chinese for the pile's reason {text!r}"
    with app.test_request_context("/"), force_locale("en"):
        assert display_text("The pile is offline.") == "The pile is offline."


def test_live_time_is_local_to_the_second(app, zh_admin, demo_orders):
    from app.views.formatters import iso_local

    with app.test_request_context("/"):
        assert iso_local("2024-05-01T04:00:05.123456Z") == "2024-05-01 12:00:05"  # Asia/Shanghai
    html = zh_admin.get(f"/realtimeorderview/show/{demo_orders['orders'][1]}").get_data(as_text=True)
    m = re.search(r'data-live="updated_at">([^<]*)<', html)
    assert m and re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", m.group(1)), m and m.group(1)


def test_charging_error_shown_in_chinese(app):
    from app.services.errors import PileNotOnline
    from app.views.formatters import display_text

    with app.test_request_context("/"), force_locale("zh"):
        assert display_text(str(PileNotOnline("The pile is offline."))) == "电桩离线。"


def test_roles_booleans_empties_and_times(app, zh_admin, demo_orders):
    with app.app_context():
        admin_id = app.appbuilder.sm.find_user(username="admin").id
    html = zh_admin.get(f"/users/show/{admin_id}").get_data(as_text=True)
    assert "平台管理员" in html, "role names in Chinese"
    assert "是" in html, "booleans 是/否"
    html = zh_admin.get("/users/list/").get_data(as_text=True)
    text = " ".join(visible_text(html))
    assert not MICROSECONDS.search(text)
    html = zh_admin.get("/pricetemplateview/list/").get_data(as_text=True)
    assert re.search(r"00:00-\d{2}:\d{2} (尖|峰|平|谷) \d", html), "计费时段 filled"
    html = zh_admin.get("/historyorderview/list/").get_data(as_text=True)
    assert "订单数" in html, "the order count is not labelled 订单管理"


def test_pile_command_reply_is_readable_chinese(app):
    """The pile-command flash: the reply's type and fields in Chinese, no Python repr."""
    from datetime import datetime

    from app.gateway.ykc import TimeSyncReply, WorkParametersReply
    from app.views.formatters import reply_summary

    with app.test_request_context("/"), force_locale("zh"):
        text = reply_summary(TimeSyncReply(pile_code="32010524030024", current_time=datetime(2024, 5, 1, 12, 0, 5)))
        assert text == "对时应答：设备编号：32010524030024，电桩时间：2024-05-01 12:00:05"
        text = reply_summary(WorkParametersReply(pile_code="32010524030024", result=1))
        assert text == "工作参数设置应答：设备编号：32010524030024，结果：成功"
        assert not REPR_RE.search(text)


def test_invoice_issued_label(app):
    from app.models.member import INVOICE_STATUS

    with app.test_request_context("/"), force_locale("zh"):
        from flask_babel import gettext

        assert gettext(dict(INVOICE_STATUS)["issued"]) == "已发放"
