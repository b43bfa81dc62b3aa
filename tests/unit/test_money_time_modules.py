"""One money module (``app/services/money.py``) and one time module (``app/services/clock.py``).

- The scans walk every module of ``app/`` (AST): nobody else reads the clock or the zone
  (``date.today()``, ``datetime.now()`` without a zone, ``datetime.utcnow()``, ``.astimezone()`` to the
  server's zone, ``ZoneInfo(...)``), and nobody else rounds (``.quantize(``, ``ROUND_*``).
- The quantizers keep the pile's convention (half up, pricing docstring's worked example) and the
  one exception (a pile's balance rounds down).
- "Today" is the operator's day: at 23:30 UTC it is already the next day in Asia/Shanghai, in the
  reports' default range and in a new pile's yyMM code (the server clock is frozen at the stdlib
  boundary, ``datetime.now``; nothing of ours is replaced).
"""
import ast
import pathlib
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from types import SimpleNamespace

import pytest

from app.services import clock, money

ROOT = pathlib.Path(__file__).resolve().parents[2]
APP = ROOT / "app"
TIME_MODULE = APP / "services" / "clock.py"
MONEY_MODULE = APP / "services" / "money.py"
D = Decimal


def _modules():
    files = sorted(APP.rglob("*.py"))
    assert len(files) > 50
    return [(f, ast.parse(f.read_text(encoding="utf-8"), filename=str(f))) for f in files]


def _dotted(node) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _has_tz(call: ast.Call, position: int) -> bool:
    args = list(call.args[position:position + 1]) + [k.value for k in call.keywords if k.arg == "tz"]
    return any(not (isinstance(a, ast.Constant) and a.value is None) for a in args)


def _clock_reads(tree) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        last2 = ".".join(name.split(".")[-2:])
        if last2 in ("date.today", "datetime.today", "datetime.utcnow", "datetime.utcfromtimestamp"):
            found.append((node.lineno, f"{name}()"))
        elif last2 == "datetime.now" and not _has_tz(node, 0) or last2 == "datetime.fromtimestamp" and not _has_tz(
                node, 1):
            found.append((node.lineno, f"{name}() without a zone (server-local time)"))
        elif name.endswith(".astimezone") and not node.args and not node.keywords:
            found.append((node.lineno, ".astimezone() without a zone (server-local time)"))
        elif name in ("time.localtime", "time.mktime", "time.strftime", "time.ctime"):
            found.append((node.lineno, f"{name}() (server-local time)"))
        elif name.split(".")[-1] == "ZoneInfo":
            found.append((node.lineno, "ZoneInfo(...): the zone comes from clock.zone()"))
    return found


def test_nobody_but_the_time_module_reads_the_clock_or_the_zone():
    offenders = [f"{path.relative_to(ROOT)}:{line}: {what}"
                 for path, tree in _modules() if path != TIME_MODULE
                 for line, what in _clock_reads(tree)]
    assert offenders == [], "use app.services.clock:\n" + "\n".join(offenders)


def test_the_scan_finds_what_it_looks_for():
    """The scan itself: each forbidden form is caught, the allowed ones are not."""
    bad = ast.parse("from datetime import date, datetime\nimport datetime as dt\n"
                    "date.today()\ndatetime.now()\ndatetime.now(None)\ndatetime.utcnow()\ndt.datetime.now()\n"
                    "x.astimezone()\nZoneInfo('Asia/Shanghai')\ntime.localtime()\ndatetime.fromtimestamp(1)\n")
    assert [line for line, _ in _clock_reads(bad)] == [3, 4, 5, 6, 7, 8, 9, 10, 11]
    good = ast.parse("datetime.now(UTC)\ndatetime.now(tz=UTC)\nx.astimezone(UTC)\ndatetime.fromtimestamp(1, UTC)\n")
    assert _clock_reads(good) == []


def test_nobody_but_the_money_module_rounds():
    offenders = []
    for path, tree in _modules():
        if path == MONEY_MODULE:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "quantize":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: .quantize(...)")
            elif isinstance(node, ast.ImportFrom) and node.module == "decimal":
                offenders += [f"{path.relative_to(ROOT)}:{node.lineno}: imports {a.name}"
                              for a in node.names if a.name.startswith("ROUND_")]
            elif isinstance(node, ast.Attribute) and node.attr.startswith("ROUND_"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.attr}")
    assert offenders == [], "use app.services.money:\n" + "\n".join(offenders)


def test_pricing_uses_the_money_module_quantizers_not_copies():
    from app.services import occupancy, order_admin, pricing, settlement, wallet

    assert pricing.q_amount is money.q_amount and pricing.q_energy is money.q_energy
    assert pricing.q_price is money.q_price
    assert order_admin.q_price is money.q_price and settlement.q_amount is money.q_amount
    assert occupancy.q_amount is money.q_amount
    assert wallet.to_amount(D("1.00005")) == D("1.0001")
    with pytest.raises(TypeError, match="money must not be a float"):
        wallet.to_amount(1.5)


# ----- money ------------------------------------------------------------------------------------


def test_quantizers_round_half_up_where_the_default_context_would_round_to_even():
    # 2.00005 -> 2.0001 (half up); the decimal default context (half even) would give 2.0000
    assert D("2.00005").quantize(money.AMOUNT_Q, rounding=ROUND_HALF_EVEN) == D("2.0000")
    assert money.q_amount(D("2.00005")) == D("2.0001")
    assert money.q_energy("0.00025") == D("0.0003")
    assert money.q_price(D("1.000005")) == D("1.00001")
    assert money.q_rate(D("0.95005")) == D("0.9501")
    assert money.q_hundredth(D("0.005")) == D("0.01")  # 18 s = 0.005 h
    assert money.q_power(D("7.0005")) == D("7.001")
    assert money.q_live_power(D("7.005")) == D("7.01")
    assert money.q_amount(D("-1.00005")) == D("-1.0001")  # half up = away from zero, as the pile
    assert str(money.q_amount(3)) == "3.0000" and str(money.q_price("0.6")) == "0.60000"


def test_pricing_docstring_worked_example():
    energy = money.q_energy("12.3457")
    amount = money.q_amount(energy * (D("0.62000") + D("0.60000")))
    electricity = money.q_amount(energy * D("0.62000"))
    assert (amount, electricity, amount - electricity) == (D("15.0618"), D("7.6543"), D("7.4075"))


def test_a_piles_balance_rounds_down_to_the_fen():
    assert money.q_pile_balance(D("12.349")) == D("12.34")
    assert money.q_pile_balance("0.0099") == D("0.00")
    from app.services.charging import pile_balance

    assert pile_balance(D("99.999")) == D("99.99") and pile_balance(None) == D("0.00")


def test_floats_are_refused_and_places_are_checked():
    for q in (money.q_amount, money.q_energy, money.q_price, money.q_pile_balance):
        with pytest.raises(TypeError):
            q(0.1)
    assert money.has_places(D("1.23456"), money.PRICE_Q)
    assert not money.has_places(D("1.234567"), money.PRICE_Q)
    assert money.q_zhe(D("0.9500")) == D("9.5") and money.q_zhe(D("0.9125")) == D("9.125")


def test_the_services_keep_their_figures():
    from app.services.campaigns import rate_to_zhe, zhe_to_rate
    from app.services.price_templates import PriceTemplateError, parse_price

    assert parse_price("0.6", "price") == D("0.60000")
    with pytest.raises(PriceTemplateError):
        parse_price("0.123456", "price")
    assert zhe_to_rate("9.5") == D("0.9500") and rate_to_zhe(D("0.9125")) == D("9.125")


# ----- time -------------------------------------------------------------------------------------


class _FrozenDatetime(datetime):
    """The stdlib clock, frozen: ``now`` answers a fixed UTC instant."""

    frozen = datetime(2026, 1, 31, 23, 30, tzinfo=UTC)

    @classmethod
    def now(cls, tz=None):
        return cls.frozen.astimezone(tz) if tz is not None else cls.frozen.replace(tzinfo=None)


@pytest.fixture
def frozen_clock(monkeypatch):
    """2026-01-31 23:30 UTC = 2026-02-01 07:30 in Asia/Shanghai (and the server clock says the 31st)."""
    monkeypatch.setattr(clock, "_system_clock", _FrozenDatetime)
    return _FrozenDatetime.frozen


def test_utcnow_is_naive_utc(frozen_clock):
    assert clock.utcnow() == datetime(2026, 1, 31, 23, 30) and clock.utcnow().tzinfo is None
    from app.models.base import utcnow

    assert utcnow is clock.utcnow


def test_today_at_2330_utc_is_the_next_local_day_in_shanghai(frozen_clock):
    assert clock.local_today() == date(2026, 2, 1)  # no app: the default zone, Asia/Shanghai
    assert clock.local_today(datetime(2026, 1, 31, 15, 59)) == date(2026, 1, 31)
    assert clock.local_today(datetime(2026, 1, 31, 16, 0)) == date(2026, 2, 1)


def test_today_follows_the_configured_timezone(app, frozen_clock, monkeypatch):
    with app.app_context():
        assert clock.timezone_name() == "Asia/Shanghai"
        assert clock.local_today() == date(2026, 2, 1)
        monkeypatch.setitem(app.config, "TIMEZONE", "America/New_York")
        assert clock.local_today() == date(2026, 1, 31)  # 18:30 there
        assert clock.format_local(datetime(2026, 1, 31, 23, 30)) == "2026-01-31 18:30:00"


def test_reports_default_range_ends_on_the_local_today(frozen_clock):
    """Reproduction: ``date.today()`` on a UTC server gave 2026-01-31 at 07:30 Beijing on Feb 1."""
    from app.services import reports

    assert reports.default_range() == (date(2026, 1, 3), date(2026, 2, 1))
    start, end, error = reports.parse_range("", "", None)
    assert (start, end, error) == (date(2026, 1, 3), date(2026, 2, 1), None)


def test_a_new_pile_code_carries_the_local_month(app, frozen_clock):
    """Reproduction: a pile created at 07:30 Beijing on Feb 1 got 2601 (the server's UTC Jan 31)."""
    from app.extensions import db
    from app.services.masterdata import new_pile_code

    with app.app_context():
        code = new_pile_code(db.session, SimpleNamespace(area_code="320105", district_code=None))
    assert code[:10] == "3201052602" and len(code) == 14


def test_local_display_and_input_round_trip():
    stored = datetime(2026, 1, 1, 16, 30)
    local = clock.to_local(stored)
    assert (local.year, local.month, local.day, local.hour, local.minute) == (2026, 1, 2, 0, 30)
    assert clock.format_local(stored) == "2026-01-02 00:30:00"
    assert clock.format_local(None) == "" and clock.format_local("x") == "x"
    assert clock.local_to_utc(datetime(2026, 1, 2, 0, 30)) == stored
    assert clock.local_to_utc(datetime(2026, 1, 2, 0, 30, tzinfo=UTC)) == datetime(2026, 1, 2, 0, 30)
    assert clock.local_date(stored) == date(2026, 1, 2)


def test_day_bounds_of_a_local_day_in_utc():
    assert clock.day_bounds_utc(date(2026, 3, 1)) == (datetime(2026, 2, 28, 16), datetime(2026, 3, 1, 16))
    # a zone with daylight saving: the local day of the spring change has 23 hours
    start, end = clock.day_bounds_utc(date(2026, 3, 8), "America/New_York")
    assert (start, end) == (datetime(2026, 3, 8, 5), datetime(2026, 3, 9, 4))


def test_iso_times_are_read_as_utc_never_server_local():
    assert clock.parse_iso_utc("2026-01-02T03:04:05Z") == datetime(2026, 1, 2, 3, 4, 5)
    assert clock.parse_iso_utc("2026-01-02T11:04:05+08:00") == datetime(2026, 1, 2, 3, 4, 5)
    assert clock.parse_iso_utc("2026-01-02T03:04:05") == datetime(2026, 1, 2, 3, 4, 5)
    assert clock.parse_iso_utc("") is None and clock.parse_iso_utc("not a time") is None


def test_the_admin_shows_times_through_the_time_module(app, monkeypatch):
    from app.views.base import local_time

    with app.test_request_context():
        assert local_time(datetime(2026, 1, 1, 16, 30)) == "2026-01-02 00:30:00"
        monkeypatch.setitem(app.config, "TIMEZONE", "Europe/London")
        assert local_time(datetime(2026, 7, 1, 16, 30)) == "2026-07-01 17:30:00"
