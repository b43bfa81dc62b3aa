"""Order screens: realtime / history / abnormal / occupancy lists, filters, show, export."""

import io
from datetime import timedelta
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from app.models import ChargeOrder, Connector, OccupancyOrder
from app.models.base import utcnow

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def assert_xlsx(rv):
    assert rv.status_code == 200, rv.get_data(as_text=True)[:300]
    assert rv.content_type.startswith(XLSX)
    wb = load_workbook(io.BytesIO(rv.data), read_only=True)
    return [list(r) for r in wb.worksheets[0].iter_rows(values_only=True)]


@pytest.fixture(scope="module")
def orders(app):
    """One active, one finished, one abnormal order and an occupancy order on a demo connector."""
    from app.extensions import db

    with app.app_context():
        conn = db.session.query(Connector).order_by(Connector.id).first()
        now = utcnow()
        made = {}
        for n, status in enumerate(("charging", "settled", "abnormal")):
            o = ChargeOrder(
                order_no=f"T{status[:3].upper()}{n:09d}"[:13],
                operator_id=conn.operator_id,
                station_id=conn.station_id,
                pile_id=conn.pile_id,
                connector_id=conn.id,
                status=status,
                pay_status="paid" if status == "settled" else "unpaid",
                start_method="app",
                started_at=now - timedelta(hours=1),
                energy=Decimal("12.5"),
                total_amount=Decimal("10"),
                paid_amount=Decimal("10"),
                plate_no="苏A12345",
                live_power=Decimal("30") if status == "charging" else None,
                paid_at=now if status == "settled" else None,
            )
            db.session.add(o)
            made[status] = o
        db.session.flush()
        occ = OccupancyOrder(
            order_no="TOCC000000001",
            operator_id=conn.operator_id,
            station_id=conn.station_id,
            pile_id=conn.pile_id,
            connector_id=conn.id,
            charge_order_id=made["settled"].id,
            status="finished",
            started_at=now - timedelta(minutes=30),
            ended_at=now,
            duration_minutes=30,
            amount=Decimal("3"),
            paid_amount=Decimal("3"),
        )
        db.session.add(occ)
        db.session.commit()
        return {k: v.order_no for k, v in made.items()} | {
            "connector_code": conn.code,
            "pile_code": conn.pile.code,
        }


@pytest.mark.parametrize(
    "url",
    [
        "/realtimeorderview/list/",
        "/historyorderview/list/",
        "/abnormalorderview/list/",
        "/occupancyorderview/list/",
    ],
)
def test_lists_render(admin_client, orders, url):
    rv = admin_client.get(url)
    assert rv.status_code == 200, rv.get_data(as_text=True)[:500]


def test_status_restrictions(admin_client, orders):
    realtime = admin_client.get("/realtimeorderview/list/?psize_RealtimeOrderView=100").get_data(as_text=True)
    history = admin_client.get("/historyorderview/list/?psize_HistoryOrderView=100").get_data(as_text=True)
    abnormal = admin_client.get("/abnormalorderview/list/").get_data(as_text=True)
    assert orders["charging"] in realtime and orders["settled"] not in realtime
    assert (
        orders["settled"] in history and orders["abnormal"] in history and orders["charging"] not in history
    )
    assert orders["abnormal"] in abnormal and orders["settled"] not in abnormal


def test_filter_by_connector_code_and_plate(admin_client, orders):
    rv = admin_client.get(f"/historyorderview/list/?_flt_0_connector_code={orders['connector_code']}")
    html = rv.get_data(as_text=True)
    assert rv.status_code == 200 and orders["settled"] in html
    rv = admin_client.get("/historyorderview/list/?_flt_0_connector_code=0000000000000000")
    assert orders["settled"] not in rv.get_data(as_text=True)
    rv = admin_client.get(f"/historyorderview/list/?_flt_1_pile_code={orders['pile_code'][:6]}")
    assert orders["settled"] in rv.get_data(as_text=True)


def test_read_only_and_show(admin_client, app, orders):
    assert admin_client.get("/historyorderview/add").status_code in (302, 403, 404, 405)
    with app.app_context():
        from app.extensions import db

        pk = db.session.query(ChargeOrder.id).filter_by(order_no=orders["settled"]).scalar()
    rv = admin_client.get(f"/historyorderview/show/{pk}")
    assert rv.status_code == 200 and orders["settled"] in rv.get_data(as_text=True)


def test_export(admin_client, orders):
    rows = assert_xlsx(admin_client.get("/historyorderview/export/"))
    assert any(orders["settled"] in [str(c) for c in r] for r in rows[1:])
    assert_xlsx(admin_client.get("/occupancyorderview/export/"))
