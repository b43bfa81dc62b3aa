"""Daily statistics (app/services/stats.py): a seeded month of orders settled through the real pricing
and settlement code, aggregated into DailyStationStat / DailyChannelStat, equals a direct SQL aggregate
over the orders; the aggregation is idempotent; a charge across local midnight lands on its end day;
the reports read the aggregate within the user's data scope.

Seeded month: June 2025 (Asia/Shanghai), demo operator MA1NJ0001 (orders in the 尖峰平谷 station).
"""
import io
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from app.extensions import db
from app.models import Channel, ChargeOrder, DailyChannelStat, DailyStationStat, OrderPeriod, Station
from app.models.operator import Operator
from app.services.money import q_rate
from tests.integration.orders.test_settlement import make_order, new_member, run_threads, tou_connector

D = Decimal
MONTH = (date(2025, 6, 1), date(2025, 6, 30))
STAFF_PASSWORD = "staff-pass-1"
TZ_OFFSET = timedelta(hours=8)   # Asia/Shanghai, no DST


def bj(day, hh, mm):
    """Beijing wall time -> naive UTC."""
    return datetime(day.year, day.month, day.day, hh, mm) - TZ_OFFSET


def samples(start, minutes=60, kw=20):
    return [(start + timedelta(minutes=m), D(kw * m) / 60) for m in range(0, minutes + 1, 15)]


def settled_order(member_id, start, minutes=60, channel_id=None):
    """An order priced from its meter samples (no pile figures to disagree) and settled from the wallet."""
    from app.services.settlement import settle_order

    oid = make_order(member_id, samples(start, minutes), pile_amount=None, pile_energy=None, bill=False)
    order = db.session.get(ChargeOrder, oid)
    order.duration_seconds = int((order.ended_at - order.started_at).total_seconds())  # as the bill intake does
    order.channel_id = channel_id
    db.session.commit()
    result = settle_order(oid)
    assert result.pay_status == "paid", result
    return oid


@pytest.fixture(scope="module")
def month(app):
    """A month of settled orders: two a day on ten days, one across midnight, two with a channel,
    one abnormal order; then the aggregation of the month."""
    from app.services.stats import recompute

    with app.app_context():
        conn = tou_connector()
        mid = new_member("5000")
        channel = db.session.scalar(select(Channel).where(Channel.operator_id == conn.operator_id)
                                    .order_by(Channel.id))
        ids = []
        for n in range(10):
            day = MONTH[0] + timedelta(days=n * 3)
            ids.append(settled_order(mid, bj(day, 9, 30)))
            ids.append(settled_order(mid, bj(day, 18, 15), minutes=45,
                                     channel_id=channel.id if n < 2 else None))
        # 23:30 on 14 June to 00:30 on 15 June, Beijing time (15:30-16:30 UTC on the 14th)
        crossing = settled_order(mid, bj(date(2025, 6, 14), 23, 30))
        abnormal = make_order(mid, samples(bj(date(2025, 6, 20), 8, 0)), pile_amount="99.0000")
        assert db.session.get(ChargeOrder, abnormal).status == "abnormal"
        rows = recompute(*MONTH)
        assert rows >= 30
        return {"station_id": conn.station_id, "operator_id": conn.operator_id, "channel_id": channel.id,
                "crossing": crossing, "ids": ids, "member_id": mid}


def local_day(utc):
    return (utc + TZ_OFFSET).date()


def direct_sql(station_id, start, end, channel_id=None):
    """The reference: the month's settled orders straight from ev_charge_order / ev_order_period."""
    lo, hi = bj(start, 0, 0), bj(end + timedelta(days=1), 0, 0)
    where = [ChargeOrder.station_id == station_id, ChargeOrder.status == "settled",
             ChargeOrder.ended_at >= lo, ChargeOrder.ended_at < hi]
    if channel_id:
        where.append(ChargeOrder.channel_id == channel_id)
    n, energy, efee, sfee, total, disc, paid, secs = db.session.execute(select(
        func.count(ChargeOrder.id), func.sum(ChargeOrder.energy), func.sum(ChargeOrder.electricity_fee),
        func.sum(ChargeOrder.service_fee), func.sum(ChargeOrder.total_amount), func.sum(ChargeOrder.discount_total),
        func.sum(ChargeOrder.paid_amount), func.sum(ChargeOrder.duration_seconds)).where(*where)).one()
    levels = dict(db.session.execute(
        select(OrderPeriod.level, func.sum(OrderPeriod.energy))
        .join(ChargeOrder, OrderPeriod.order_id == ChargeOrder.id).where(*where).group_by(OrderPeriod.level)).all())
    return {"order_count": n, "energy": D(energy), "electricity_fee": D(efee), "service_fee": D(sfee),
            "total_amount": D(total), "discount_amount": D(disc), "paid_amount": D(paid),
            "duration_seconds": int(secs),
            **{f"energy_{lv}": D(levels.get(lv) or 0) for lv in ("sharp", "peak", "flat", "valley")}}


def stat_sums(model, station_id, start, end, channel_id=None):
    cols = ("order_count", "energy", "electricity_fee", "service_fee", "total_amount", "discount_amount",
            "paid_amount", "duration_seconds", "energy_sharp", "energy_peak", "energy_flat", "energy_valley")
    q = select(*[func.sum(getattr(model, c)) for c in cols]).where(
        model.station_id == station_id, model.day >= start, model.day <= end)
    if channel_id:
        q = q.where(model.channel_id == channel_id)
    row = db.session.execute(q).one()
    return {c: (int(v) if c in ("order_count", "duration_seconds") else D(v)) for c, v in zip(cols, row, strict=True)}


def rows_of(station_id):
    db.session.expire_all()
    out = []
    for model in (DailyStationStat, DailyChannelStat):
        for r in db.session.scalars(select(model).where(model.station_id == station_id, model.day >= MONTH[0],
                                                        model.day <= MONTH[1]).order_by(model.id)):
            out.append({c.key: getattr(r, c.key) for c in model.__table__.columns if c.key != "updated_at"})
    return out


def test_month_equals_direct_sql_aggregate(app, month):
    with app.app_context():
        sid = month["station_id"]
        expected = direct_sql(sid, *MONTH)
        assert expected["order_count"] == 21 and expected["energy"] > 0
        assert expected["energy_peak"] > 0 and expected["energy_flat"] > 0
        assert stat_sums(DailyStationStat, sid, *MONTH) == expected
        by_channel = direct_sql(sid, *MONTH, channel_id=month["channel_id"])
        assert by_channel["order_count"] == 2
        assert stat_sums(DailyChannelStat, sid, *MONTH, channel_id=month["channel_id"]) == by_channel
        # per day as well
        for n in range(10):
            day = MONTH[0] + timedelta(days=n * 3)
            assert stat_sums(DailyStationStat, sid, day, day) == direct_sql(sid, day, day)
        row = db.session.scalar(select(DailyStationStat).where(DailyStationStat.station_id == sid,
                                                               DailyStationStat.day == date(2025, 6, 20)))
        assert row.abnormal_count == 1 and row.order_count == 0
        assert row.connector_count > 0 and row.available_seconds == row.connector_count * 86400
        day1 = db.session.scalar(select(DailyStationStat).where(DailyStationStat.station_id == sid,
                                                                DailyStationStat.day == MONTH[0]))
        assert day1.member_count == 1
        assert day1.utilisation == q_rate(D(day1.duration_seconds) / day1.available_seconds) > 0


def test_aggregation_twice_gives_the_same_rows(app, month):
    from app.services.stats import aggregate_day, recompute

    with app.app_context():
        before = rows_of(month["station_id"])
        recompute(*MONTH)
        assert rows_of(month["station_id"]) == before
        for n in range(3):
            aggregate_day(MONTH[0] + timedelta(days=n))
        assert rows_of(month["station_id"]) == before


def test_day_crossing_midnight_lands_on_its_local_end_day(app, month):
    with app.app_context():
        sid = month["station_id"]
        order = db.session.get(ChargeOrder, month["crossing"])
        assert order.ended_at.date() == date(2025, 6, 14)             # UTC: still the 14th
        assert local_day(order.ended_at) == date(2025, 6, 15)          # Beijing: the 15th
        on_14 = stat_sums(DailyStationStat, sid, date(2025, 6, 14), date(2025, 6, 14))
        on_15 = stat_sums(DailyStationStat, sid, date(2025, 6, 15), date(2025, 6, 15))
        assert on_14["order_count"] == 0
        assert on_15["order_count"] == 1 and on_15["energy"] == order.energy
        assert on_15["energy_valley"] + on_15["energy_flat"] + on_15["energy_peak"] + on_15["energy_sharp"] \
            == order.energy


def test_changed_order_is_picked_up_by_the_incremental_run(app, month):
    """refresh_today redoes the days of orders changed in the last minutes (a late settlement)."""
    from app.services.stats import refresh_today

    with app.app_context():
        sid = month["station_id"]
        day = date(2025, 6, 28)
        before = stat_sums(DailyStationStat, sid, day, day)["order_count"]
        settled_order(month["member_id"], bj(day, 12, 0))
        assert stat_sums(DailyStationStat, sid, day, day)["order_count"] == before   # not yet
        refresh_today()
        db.session.expire_all()
        assert stat_sums(DailyStationStat, sid, day, day)["order_count"] == before + 1
        assert stat_sums(DailyStationStat, sid, day, day) == direct_sql(sid, day, day)
        from app.services.stats import recompute

        recompute(day, day)   # back to the module's state for the other tests: same figures
        assert stat_sums(DailyStationStat, sid, day, day) == direct_sql(sid, day, day)


def test_concurrent_runs_of_one_day_write_one_row_per_station(app, month):
    """Two workers aggregating the same (new) day at once: no error, one row per station and day."""
    from app.services.stats import aggregate_day

    day = date(2025, 7, 2)
    run_threads(app, aggregate_day, [day, day, day])
    with app.app_context():
        stations = db.session.scalar(select(func.count(Station.id)))
        keys = db.session.execute(select(DailyStationStat.station_id).where(DailyStationStat.day == day)).all()
        assert len(keys) == len(set(keys)) == stations


def test_flask_command_recomputes_a_range(app, month):
    with app.app_context():
        before = rows_of(month["station_id"])
    runner = app.test_cli_runner()
    out = runner.invoke(args=["stats", "recompute", "--from", "2025-06-01", "--to", "2025-06-30"])
    assert out.exit_code == 0, out.output
    assert "rows written" in out.output
    with app.app_context():
        assert rows_of(month["station_id"]) == before
    bad = runner.invoke(args=["stats", "recompute", "--from", "June", "--to", "2025-06-30"])
    assert bad.exit_code != 0


def test_jobs_are_registered_with_rq_cron(app):
    """rq cron runs the incremental job every 5 minutes and yesterday's final run 10 minutes after local
    midnight (cron speaks UTC: 16:10 UTC is 00:10 in Asia/Shanghai)."""
    import os

    from rq.cron import CronScheduler

    from app.extensions import get_redis
    from app.tasks.stats import after_local_midnight_cron

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with app.app_context():
        cron = CronScheduler(connection=get_redis())
    cron.load_config_from_file(os.path.join(root, "app", "tasks", "cron_config.py"))
    jobs = {job.func_name: job for job in cron.get_jobs()}
    assert jobs["app.tasks.stats.refresh_today_stats"].interval == 300
    assert jobs["app.tasks.stats.finalize_yesterday_stats"].cron == "10 16 * * *"
    assert after_local_midnight_cron(5, "UTC") == "5 0 * * *"


# --- the reports read the aggregate ------------------------------------------------------------------


def report_url(kind, **params):
    q = "&".join(f"{k}={v}" for k, v in {"start": MONTH[0], "end": MONTH[1], **params}.items())
    return f"/{kind}report/?{q}"


def test_station_report_equals_direct_sql(admin_client, app, month):
    from app.services import reports

    with app.app_context():
        expected = direct_sql(month["station_id"], *MONTH)
        code = db.session.get(Station, month["station_id"]).code
    html = admin_client.get(report_url("station", station=month["station_id"])).get_data(as_text=True)
    assert f"<td>{code}</td>" in html
    assert f"<td>{expected['order_count']}</td>" in html
    assert f"<td>{reports.fmt(expected['energy'])}</td>" in html
    assert f"<td>{reports.fmt(expected['total_amount'])}</td>" in html
    html = admin_client.get(report_url("station", station=month["station_id"], channel=month["channel_id"])
                            ).get_data(as_text=True)
    assert f"<td>{code}</td>" in html and "<td>2</td>" in html


def test_operation_report_by_month_and_export_equals_screen(admin_client, app, month):
    from app.services import reports

    with app.app_context():
        expected = direct_sql(month["station_id"], *MONTH)
    url = report_url("operation", station=month["station_id"], period="month")
    html = admin_client.get(url).get_data(as_text=True)
    assert "<td>2025-06</td>" in html and f"<td>{reports.fmt(expected['energy'])}</td>" in html
    rv = admin_client.get(url.replace("/operationreport/?", "/operationreport/export/?"))
    sheet = list(load_workbook(io.BytesIO(rv.data)).worksheets[0].iter_rows(values_only=True))
    assert sheet[1][0] == "2025-06"
    header = list(sheet[0])
    assert D(str(sheet[1][header.index("Energy (kWh)")])) == expected["energy"]
    assert sheet[1][header.index("Order count")] == expected["order_count"]


def test_staff_of_another_operator_never_sees_the_figures(client, login, app, month):
    with app.app_context():
        code = db.session.get(Station, month["station_id"]).code
        other = db.session.scalar(select(Operator).where(Operator.id != month["operator_id"]).order_by(Operator.id))
        assert other is not None
    login("staff_b", STAFF_PASSWORD)
    for url in (report_url("station"), report_url("station", station=month["station_id"]),
                report_url("station", operator=month["operator_id"])):
        html = client.get(url).get_data(as_text=True)
        assert f"<td>{code}</td>" not in html
    rv = client.get(report_url("operation", station=month["station_id"]).replace("/?", "/export/?"))
    rows = list(load_workbook(io.BytesIO(rv.data)).worksheets[0].iter_rows(values_only=True))
    assert len(rows) == 1   # header only
