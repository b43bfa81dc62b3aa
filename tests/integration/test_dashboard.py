"""首页 (dashboard): figures against direct SQL over orders settled through the real settlement path,
the change against the previous period, data scope (staff A, staff B, admin), every 待办 link landing
on a list with exactly those rows, and the JSON refresh (live terminal state from a real gateway,
a new alarm within 5 s).

The figure tests run on a frozen clock in March 2031 (no other test has orders there): orders are
created and settled "at" their own time, the daily statistics (the dashboard's only source of order
figures) are filled by the aggregation jobs (:func:`app.services.stats.recompute`, ``refresh_today``).
"""
from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from sqlalchemy import select, text

from app.extensions import db
from app.models import (
    Alarm,
    Channel,
    ChargeOrder,
    Connector,
    FaultReport,
    FaultType,
    Feedback,
    Invoice,
    Member,
    Operator,
    Pile,
    PriceTemplate,
    Station,
)
from app.services import clock
from app.services.money import q_amount, q_hundredth
from tests.conftest import ADMIN_PASSWORD
from tests.integration.gateway.conftest import wait_until
from tests.integration.gateway.ykc_client import PileClient
from tests.integration.orders.test_settlement import make_order

D = Decimal
STAFF_PASSWORD = "staff-pass-1"
TODAY = date(2031, 3, 15)
NOW = datetime(2031, 3, 15, 4, 0)            # 12:00 in Asia/Shanghai
OPS = {"A": "MA1NJ0001", "B": "MA1NJ0002"}


class _Frozen(datetime):
    at = NOW

    @classmethod
    def now(cls, tz=None):
        value = cls.at.replace(tzinfo=UTC)
        return value.astimezone(tz) if tz is not None else value.replace(tzinfo=None)


@contextlib.contextmanager
def clock_at(monkeypatch_ctx, when: datetime):
    """The platform clock (app.services.clock) reads ``when`` (naive UTC)."""
    _Frozen.at = when
    monkeypatch_ctx.setattr(clock, "_system_clock", _Frozen)
    try:
        yield
    finally:
        _Frozen.at = NOW


def bj(day: date, hhmm: str) -> datetime:
    """A Beijing wall-clock time as naive UTC."""
    return datetime.combine(day, datetime.strptime(hhmm, "%H:%M").time()) - timedelta(hours=8)


def samples(day: date):
    start = bj(day, "09:30")
    return [(start + timedelta(minutes=m), D(m) / 3) for m in range(0, 61, 15)]   # 20 kWh, 29.70 CNY


def operator_id(key):
    return db.session.scalar(select(Operator.id).where(Operator.code == OPS[key]))


def tou_connector(key):
    n = "1" if key == "A" else "2"
    return db.session.scalars(
        select(Connector).join(Station, Connector.station_id == Station.id)
        .join(PriceTemplate, Station.price_template_id == PriceTemplate.id)
        .where(Station.operator_id == operator_id(key), PriceTemplate.code == f"TPL{n}01",
               Station.occupancy_enabled.is_(False)).order_by(Connector.id)).first()


def new_member(key, balance="500"):
    from app.services.wallet import post_entry

    m = Member(operator_id=operator_id(key), member_no=f"D{uuid.uuid4().hex[:12]}", nickname="dashboard",
               status="active")
    db.session.add(m)
    db.session.flush()
    post_entry(m.id, D(balance), "recharge", idempotency_key=f"test:recharge:{m.member_no}")
    db.session.commit()
    return m.id


def channel_id(code):
    return db.session.scalar(select(Channel.id).where(Channel.code == code))


def settled_order(mp, key, day: date, member_id, channel=None, pile_amount="29.7000"):
    """An order charged 09:30-10:30 Beijing on ``day``, created and settled then (real pricing and
    settlement); returns its id."""
    from app.services.settlement import settle_order

    with clock_at(mp, bj(day, "09:30")):
        oid = make_order(member_id, samples=samples(day), connector=tou_connector(key), pile_amount=pile_amount)
        if channel:
            db.session.get(ChargeOrder, oid).channel_id = channel_id(channel)
            db.session.commit()
    if pile_amount == "29.7000":
        with clock_at(mp, bj(day, "10:31")):
            assert settle_order(oid).pay_status == "paid"
    return oid


# ----- direct SQL ------------------------------------------------------------------------------------
def day_window(start: date, end: date):
    return clock.day_bounds_utc(start)[0], clock.day_bounds_utc(end)[1]


def num(value) -> Decimal:
    """A SUM as Decimal to 4 places (SQLite sums NUMERIC as float)."""
    return q_amount(D(str(value)))


def sql_figures(start: date, end: date, op_id=None) -> dict:
    lo, hi = day_window(start, end)
    scope = "AND operator_id = :op" if op_id else ""
    row = db.session.execute(text(f"""
        SELECT COALESCE(SUM(energy), 0), COUNT(*), COALESCE(SUM(total_amount), 0), COALESCE(SUM(service_fee), 0)
        FROM ev_charge_order
        WHERE status = 'settled' AND COALESCE(ended_at, settled_at, created_at) >= :lo
          AND COALESCE(ended_at, settled_at, created_at) < :hi {scope}"""), {"lo": lo, "hi": hi, "op": op_id}).one()
    members = db.session.execute(text(f"""
        SELECT COUNT(*) FROM ev_member WHERE created_at >= :lo AND created_at < :hi {scope}"""),
        {"lo": lo, "hi": hi, "op": op_id}).scalar()
    return {"energy": num(row[0]), "order_count": int(row[1]), "total_amount": num(row[2]),
            "service_fee": num(row[3]), "new_members": int(members)}


def sql_channels(start: date, end: date, op_id=None) -> dict:
    lo, hi = day_window(start, end)
    scope = "AND o.operator_id = :op" if op_id else ""
    rows = db.session.execute(text(f"""
        SELECT o.channel_id, SUM(o.energy) FROM ev_charge_order o
        WHERE o.status = 'settled' AND o.channel_id IS NOT NULL
          AND COALESCE(o.ended_at, o.settled_at, o.created_at) >= :lo
          AND COALESCE(o.ended_at, o.settled_at, o.created_at) < :hi {scope}
        GROUP BY o.channel_id"""), {"lo": lo, "hi": hi, "op": op_id}).all()
    return {cid: num(e) for cid, e in rows}


def pct(cur, prev):
    if D(prev) == 0:
        return ""
    return str((abs(D(cur) - D(prev)) / D(prev) * 100).quantize(D("0.1"), ROUND_HALF_UP))


# ----- fixtures --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def seeded(app):
    """Orders of operators A and B in February and March 2031, settled; the daily statistics of the
    days before today filled by the aggregation job; to-do rows of both operators."""
    from app.services import stats

    mp = pytest.MonkeyPatch()
    with app.app_context():
        with clock_at(mp, bj(date(2031, 2, 5), "08:00")):
            a_old = new_member("A")
        with clock_at(mp, bj(date(2031, 3, 2), "08:00")):
            a_new = new_member("A")
        with clock_at(mp, bj(TODAY, "08:00")):
            a_today, b_today = new_member("A"), new_member("B")
        ids = {
            "a_feb10": settled_order(mp, "A", date(2031, 2, 10), a_old, "CH1PILE"),
            "a_feb20": settled_order(mp, "A", date(2031, 2, 20), a_old),        # outside last month's span
            "a_mar03": settled_order(mp, "A", date(2031, 3, 3), a_new, "CH1MP"),
            "a_mar14": settled_order(mp, "A", date(2031, 3, 14), a_new, "CH1PILE"),
            "a_today1": settled_order(mp, "A", TODAY, a_today, "CH1MP"),
            "a_today2": settled_order(mp, "A", TODAY, a_today, "CH1MP"),
            "b_today": settled_order(mp, "B", TODAY, b_today, "CH2MP"),
            "a_abnormal": settled_order(mp, "A", date(2031, 3, 13), a_new, pile_amount="31.0000"),
            "b_abnormal": settled_order(mp, "B", date(2031, 3, 13), b_today, pile_amount="31.0000"),
        }
        with clock_at(mp, NOW):
            stats.recompute(date(2031, 2, 1), TODAY - timedelta(days=1))
            stats.refresh_today()
        mp.undo()
        todo = seed_todo()   # at the real time: the gateway test's new alarm is the newest
        orders = {k: db.session.get(ChargeOrder, v).order_no for k, v in ids.items()}
    return {"orders": orders, "todo": todo}


def seed_todo():
    """One row to do and one done per to-do kind and operator, each with a marker shown in its list."""
    marks = {}
    fault_type = db.session.scalar(select(FaultType.id).order_by(FaultType.id))
    for key in ("A", "B"):
        op = operator_id(key)
        conn = tou_connector(key)
        member = db.session.scalar(select(Member.id).where(Member.operator_id == op).order_by(Member.id))
        for state, inv, fr, fb, al in (("todo", "applied", "pending", "new", "pending"),
                                       ("done", "issued", "resolved", "replied", "handled")):
            tag = f"DB{key}{state}{uuid.uuid4().hex[:6]}"
            db.session.add_all([
                Invoice(operator_id=op, member_id=member, title=f"{tag}-inv", status=inv, amount=D("1")),
                FaultReport(operator_id=op, fault_type_id=fault_type, station_id=conn.station_id, status=fr,
                            reply=f"{tag}-fr"),
                Feedback(operator_id=op, content=f"{tag}-fb", status=fb),
                Alarm(operator_id=op, station_id=conn.station_id, pile_id=conn.pile_id, connector_id=conn.id,
                      pile_code=conn.pile.code, gun_no=conn.gun_no, fault_code=f"{tag}"[:16],
                      handle_status=al),
            ])
            marks[(key, state)] = tag
    db.session.commit()
    return marks


@pytest.fixture
def frozen(monkeypatch):
    monkeypatch.setattr(clock, "_system_clock", _Frozen)
    _Frozen.at = NOW


USERS = {"admin": ("admin", ADMIN_PASSWORD, None), "A": ("staff_a", STAFF_PASSWORD, "A"),
         "B": ("staff_b", STAFF_PASSWORD, "B")}


def metrics(html) -> dict:
    out = {}
    for m in re.finditer(r'data-metric="(\w+)\.(\w+)" data-value="([^"]*)"\s+data-previous="([^"]*)" '
                         r'data-direction="(\w+)"\s+data-change="([^"]*)"', html):
        out[(m.group(1), m.group(2))] = {"value": D(m.group(3)), "previous": D(m.group(4)),
                                         "direction": m.group(5), "change": m.group(6)}
    return out


def chart_data(html) -> dict:
    m = re.search(r"var chart = (\{.*?\}), url = ", html, re.S)
    return json.loads(m.group(1))


# ----- figures, change, scope ---------------------------------------------------------------------------
@pytest.mark.parametrize("who", ["admin", "A", "B"])
def test_figures_equal_direct_sql_within_scope(app, client, login, seeded, frozen, who):
    username, password, key = USERS[who]
    login(username, password)
    rv = client.get("/dashboard/")
    assert rv.status_code == 200
    html = rv.get_data(as_text=True)
    found = metrics(html)
    assert len(found) == 10, found
    with app.app_context():
        op = operator_id(key) if key else None
        prev_start, prev_end = date(2031, 2, 1), date(2031, 2, 15)
        yesterday = TODAY - timedelta(days=1)
        expected = {
            "today": (sql_figures(TODAY, TODAY, op), sql_figures(yesterday, yesterday, op)),
            "month": (sql_figures(date(2031, 3, 1), TODAY, op), sql_figures(prev_start, prev_end, op)),
        }
    for period, (cur, prev) in expected.items():
        for metric in ("energy", "order_count", "total_amount", "service_fee", "new_members"):
            got = found[(period, metric)]
            assert got["value"] == cur[metric] and got["previous"] == prev[metric], (period, metric, got, cur, prev)
            assert got["change"] == pct(cur[metric], prev[metric]), (period, metric, got)
            direction = "up" if cur[metric] > prev[metric] else "down" if cur[metric] < prev[metric] else "flat"
            assert got["direction"] == direction
    # the seeded figures themselves (nothing else lives in 2031)
    if who == "A":
        assert found[("today", "order_count")]["value"] == 2 and found[("today", "energy")]["value"] == D("40")
        assert found[("today", "total_amount")]["value"] == D("59.40")
        assert found[("today", "energy")]["change"] == "100.0"           # 40 kWh against 20 yesterday
        assert found[("month", "order_count")]["value"] == 4             # 3rd, 14th, 2 today
        assert found[("month", "energy")]["change"] == "300.0"           # 80 kWh against 20 (Feb 1-15)
        assert found[("month", "new_members")]["value"] == 2 and found[("month", "new_members")]["change"] == "100.0"
        assert "↑100.0%" in html and "↑300.0%" in html
    if who == "B":
        assert found[("today", "order_count")]["value"] == 1
        assert found[("today", "energy")]["change"] == ""                # nothing yesterday: no percentage
        assert seeded["orders"]["a_today1"] not in html


@pytest.mark.parametrize("who", ["admin", "A", "B"])
def test_trend_and_channel_ranking_equal_direct_sql(app, client, login, seeded, frozen, who):
    username, password, key = USERS[who]
    login(username, password)
    html = client.get("/dashboard/").get_data(as_text=True)
    trend = chart_data(html)["trend"]
    assert len(trend) == 30 and trend[-1]["day"] == TODAY.isoformat()
    with app.app_context():
        op = operator_id(key) if key else None
        for row in trend:
            day = date.fromisoformat(row["day"])
            exp = sql_figures(day, day, op)
            assert (D(row["energy"]), row["order_count"], D(row["total_amount"]), D(row["service_fee"])) == (
                q_hundredth(exp["energy"]), exp["order_count"], q_hundredth(exp["total_amount"]),
                q_hundredth(exp["service_fee"])), row     # the chart's figures as shown (0.01)
        channels = sql_channels(date(2031, 3, 1), TODAY, op)
    ranked = [(int(c), D(e)) for c, e in re.findall(r'data-channel="(\d+)" data-energy="([^"]+)"', html)]
    assert dict(ranked) == channels
    assert [e for _, e in ranked] == sorted(channels.values(), reverse=True)
    if who == "A":
        with app.app_context():
            assert ranked == [(channel_id("CH1MP"), D("60")), (channel_id("CH1PILE"), D("20"))]


def test_change_against_previous_period_rules():
    from app.services.dashboard import change, previous_month_span

    assert change(D("9"), D("8")) == {"direction": "up", "percent": D("12.5")}
    assert change(D("6"), D("8")) == {"direction": "down", "percent": D("25.0")}
    assert change(D("1"), D("3")) == {"direction": "down", "percent": D("66.7")}
    assert change(5, 0) == {"direction": "up", "percent": None}
    assert change(0, 0) == {"direction": "flat", "percent": None}
    assert previous_month_span(date(2031, 3, 31)) == (date(2031, 2, 1), date(2031, 2, 28))
    assert previous_month_span(date(2031, 1, 15)) == (date(2030, 12, 1), date(2030, 12, 15))


# ----- 待办事项 ----------------------------------------------------------------------------------------
TODO_MODELS = {"invoices": (Invoice, "status", "applied"), "fault_reports": (FaultReport, "status", "pending"),
               "feedback": (Feedback, "status", "new"), "alarms": (Alarm, "handle_status", "pending")}
MARK_SUFFIX = {"invoices": "-inv", "fault_reports": "-fr", "feedback": "-fb", "alarms": ""}


def todo_expected(app, key, todo):
    with app.app_context():
        if todo == "abnormal_orders":
            q = select(ChargeOrder.order_no).where((ChargeOrder.status == "abnormal")
                                                   | ChargeOrder.needs_review.is_(True))
            model = ChargeOrder
        else:
            model, col, value = TODO_MODELS[todo]
            q = select(model.id).where(getattr(model, col) == value)
        if key:
            q = q.where(model.operator_id == operator_id(key))
        return db.session.scalars(q).all()


@pytest.mark.parametrize("who", ["admin", "A", "B"])
def test_todo_links_land_on_lists_with_exactly_those_rows(app, client, login, seeded, frozen, who):
    username, password, key = USERS[who]
    login(username, password)
    html = client.get("/dashboard/").get_data(as_text=True)
    links = dict(re.findall(r'<a href="([^"]+)" class="cpms-todo-link" data-todo="(\w+)">', html))
    links = {v: k.replace("&amp;", "&") for k, v in links.items()}
    assert set(links) == {"invoices", "fault_reports", "feedback", "alarms", "abnormal_orders"}
    counts = dict(re.findall(r'<h3 data-live="todo\.(\w+)">(\d+)</h3>', html))
    other = "B" if key == "A" else "A"
    for todo, url in links.items():
        expected = todo_expected(app, key, todo)
        assert int(counts[todo]) == len(expected), (todo, counts[todo], len(expected))
        page = client.get(url)
        assert page.status_code == 200, url
        listing = page.get_data(as_text=True)
        m = re.search(r"Record Count:</strong>\s*(\d+)", listing)
        assert m and int(m.group(1)) == len(expected), (todo, url, m and m.group(1), len(expected))
        if todo == "abnormal_orders":
            mine = seeded["orders"]["a_abnormal" if key != "B" else "b_abnormal"]
            assert mine in listing
            if key:
                assert seeded["orders"][f"{other.lower()}_abnormal"] not in listing
            assert seeded["orders"]["a_today1"] not in listing
            continue
        suffix = MARK_SUFFIX[todo]
        own = key or "A"
        assert seeded["todo"][(own, "todo")] + suffix in listing
        assert seeded["todo"][(own, "done")] + suffix not in listing
        if key:
            assert seeded["todo"][(other, "todo")] + suffix not in listing


# ----- the JSON refresh ---------------------------------------------------------------------------------
def live(client):
    rv = client.get("/dashboard/data/")
    assert rv.status_code == 200 and rv.is_json
    return rv.get_json()


def test_today_moves_when_the_refresh_job_has_run(app, client, login, seeded, frozen):
    """A new settled order of today shows once ``stats.refresh_today`` (cron) has aggregated it."""
    from app.services import stats

    login("staff_b", STAFF_PASSWORD)
    before = live(client)["overview"]["today"]["order_count"]["value"]
    mp = pytest.MonkeyPatch()
    with app.app_context():
        settled_order(mp, "B", TODAY, new_member("B"), "CH2MP")
    mp.undo()
    assert live(client)["overview"]["today"]["order_count"]["value"] == before   # not aggregated yet
    with app.app_context():
        stats.refresh_today()
        expected = sql_figures(TODAY, TODAY, operator_id("B"))
    after = live(client)["overview"]["today"]
    assert after["order_count"]["value"] == before + 1 == expected["order_count"]
    assert D(after["energy"]["value"]) == expected["energy"]


def test_json_endpoint_needs_login_and_is_scoped(app, client, login, seeded, frozen):
    client.post("/logout/")
    assert client.get("/dashboard/data/").status_code in (401, 302)
    for who in ("admin", "A", "B"):
        username, password, key = USERS[who]
        login(username, password)
        d = live(client)
        assert d["interval"] <= 5
        for todo in ("invoices", "fault_reports", "feedback", "alarms", "abnormal_orders"):
            assert d["todo"][todo] == len(todo_expected(app, key, todo)), (who, todo)
        with app.app_context():
            op = operator_id(key) if key else None
            today = sql_figures(TODAY, TODAY, op)
            q = select(Connector.id)
            if op:
                q = q.where(Connector.operator_id == op)
            guns = len(db.session.scalars(q).all())
            piles_q = select(Pile.id) if not op else select(Pile.id).where(Pile.operator_id == op)
            pile_count = len(db.session.scalars(piles_q).all())
            month = sql_figures(date(2031, 3, 1), TODAY, op)
        for period, figures in (("today", today), ("month", month)):
            for metric, value in figures.items():
                assert D(str(d["overview"][period][metric]["value"])) == value, (who, period, metric)
        assert d["stations"]["guns"] == guns == sum(d["terminal"].values())
        assert d["stations"]["piles"] == pile_count
        alarm_codes = {a["fault_code"] for a in d["alarms"]}
        if key:
            other = "B" if key == "A" else "A"
            assert not any(c.startswith(f"DB{other}") for c in alarm_codes)


def test_live_terminal_state_and_new_alarm_within_five_seconds(app, client, login, gateway, piles):  # noqa: F811
    """A real pile on a real gateway: its guns count as idle / charging from Redis, and the alarm
    its fault opens shows in staff A's JSON within 5 s; staff B sees none of it."""
    code = piles()
    login("staff_b", STAFF_PASSWORD)
    before_b = live(client)
    login("staff_a", STAFF_PASSWORD)
    before = live(client)
    from app.gateway.ykc import RealtimeData

    def realtime(gun, status, **fields):
        return RealtimeData(transaction_serial="0" * 32, pile_code=code, gun=gun, status=status, **fields)

    with PileClient(gateway.port, code) as pile:
        assert pile.login().result == 0
        pile.start_heartbeats(5)
        pile.send(realtime("01", 3))   # charging
        pile.send(realtime("02", 2))   # idle
        started = time.monotonic()
        d = wait_until(lambda: (lambda x: x if x["terminal"]["charging"] == before["terminal"]["charging"] + 1
                                and x["terminal"]["idle"] == before["terminal"]["idle"] + 1 else None)(live(client)),
                       timeout=5, interval=0.2, message="terminal state on the dashboard")
        assert d["stations"]["piles_online"] == before["stations"]["piles_online"] + 1
        assert d["terminal"]["offline"] == before["terminal"]["offline"] - 2
        assert time.monotonic() - started < 5

        pile.send(realtime("02", 1))   # fault: the gateway opens an alarm
        started = time.monotonic()
        # the alarm (database) and the gun's fault state (live state in Redis) are written by separate
        # flushes of the gateway: both must show within the 5 s
        d = wait_until(lambda: (lambda x: x if any(a["pile_code"] == code for a in x["alarms"])
                                and x["terminal"]["fault"] == before["terminal"]["fault"] + 1 else None)(
            live(client)), timeout=5, interval=0.2, message="new alarm and the faulty gun on the dashboard")
        assert time.monotonic() - started < 5
        assert d["todo"]["alarms"] > before["todo"]["alarms"]
        login("staff_b", STAFF_PASSWORD)
        after_b = live(client)
        assert after_b["terminal"] == before_b["terminal"] and after_b["todo"]["alarms"] == before_b["todo"]["alarms"]
        assert not any(a["pile_code"] == code for a in after_b["alarms"])
