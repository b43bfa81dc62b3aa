"""The price template screen: the period editor's errors show on the form, valid templates
save, and the YKC rules apply once a YKC pile uses the template."""
import json
import re

from sqlalchemy import select

from app.extensions import db
from app.models import Operator, Pile, PriceTemplate, Station

TOU = [("00:00", "08:00", "valley", "0.31", "0.5"), ("08:00", "12:00", "flat", "0.62", "0.6"),
       ("12:00", "17:00", "peak", "1.05", "0.7"), ("17:00", "24:00", "sharp", "1.25", "0.8")]


def periods(rows):
    return json.dumps([{"start": s, "end": e, "level": lv, "electricity_price": ep, "service_price": sp}
                       for s, e, lv, ep, sp in rows])


def form(code, rows, operator_id):
    return {"code": code, "name": f"模板{code}", "operator": str(operator_id), "enabled": "y",
            "periods_editor": periods(rows)}


def errors_on_page(html):
    return [m.strip() for m in re.findall(r'<span class="help-block">\s*([^<]+?)\s*</span>', html)] or \
        re.findall(r"(Gap between[^<]+|[^>]*overlap\.|The periods must cover[^<]+|[^>]*YKC piles[^<]+)", html)


def operator_a(app):
    with app.app_context():
        return db.session.scalar(select(Operator.id).where(Operator.code == "MA1NJ0001"))


def test_valid_template_saves_with_its_periods(app, admin_client):
    op = operator_a(app)
    rv = admin_client.post("/pricetemplateview/add", data=form("T-OK", TOU, op), follow_redirects=True)
    assert rv.status_code == 200
    with app.app_context():
        tpl = db.session.scalar(select(PriceTemplate).where(PriceTemplate.code == "T-OK"))
        assert tpl is not None
        assert [(p.start_minute, p.end_minute, str(p.electricity_price)) for p in tpl.periods] == [
            (0, 480, "0.31000"), (480, 720, "0.62000"), (720, 1020, "1.05000"), (1020, 1440, "1.25000")]


def test_gap_overlap_and_short_day_are_shown_and_nothing_is_saved(app, admin_client):
    op = operator_a(app)
    bad = [("00:00", "08:00", "valley", "0.3", "0.5"), ("09:00", "13:00", "flat", "0.6", "0.6"),
           ("12:00", "23:00", "peak", "1.0", "0.7")]
    rv = admin_client.post("/pricetemplateview/add", data=form("T-BAD", bad, op))
    html = rv.get_data(as_text=True)
    assert "Gap between 08:00 and 09:00" in html or "08:00 和 09:00 之间" in html
    assert ("overlap" in html) or ("重叠" in html)
    assert ("24 hours" in html) or ("24 小时" in html)
    assert "T-BAD" in html  # the form comes back with what was typed
    with app.app_context():
        assert db.session.scalar(select(PriceTemplate).where(PriceTemplate.code == "T-BAD")) is None


def test_ykc_rules_apply_when_a_ykc_pile_uses_the_template(app, admin_client):
    op = operator_a(app)
    admin_client.post("/pricetemplateview/add", data=form("T-YKC", TOU, op))
    with app.app_context():
        tpl = db.session.scalar(select(PriceTemplate).where(PriceTemplate.code == "T-YKC"))
        station = db.session.scalar(select(Station).join(Pile).where(Station.operator_id == op,
                                                                     Pile.protocol == "ykc15"))
        station.price_template = tpl
        db.session.commit()
        tpl_id = tpl.id
    five = TOU[:3] + [("17:00", "20:00", "sharp", "1.25", "0.8"), ("20:00", "24:00", "flat", "0.7", "0.6")]
    rv = admin_client.post(f"/pricetemplateview/edit/{tpl_id}", data=form("T-YKC", five, op))
    html = rv.get_data(as_text=True)
    assert ("5 different price pairs" in html) or ("5 组不同的价格" in html)
    off_grid = [("00:00", "08:15", "valley", "0.31", "0.5"), ("08:15", "24:00", "flat", "0.62", "0.6")]
    rv = admin_client.post(f"/pricetemplateview/edit/{tpl_id}", data=form("T-YKC", off_grid, op))
    html = rv.get_data(as_text=True)
    assert ("half-hour grid: 08:15" in html) or ("08:15" in html and "半小时" in html)
    with app.app_context():
        tpl = db.session.get(PriceTemplate, tpl_id)
        assert len(tpl.periods) == 4  # unchanged


def test_editing_a_template_replaces_its_periods(app, admin_client):
    op = operator_a(app)
    admin_client.post("/pricetemplateview/add", data=form("T-EDIT", TOU, op))
    with app.app_context():
        tpl_id = db.session.scalar(select(PriceTemplate.id).where(PriceTemplate.code == "T-EDIT"))
    cheaper = [(s, e, lv, ep, "0.3") for s, e, lv, ep, _ in TOU]
    rv = admin_client.post(f"/pricetemplateview/edit/{tpl_id}", data=form("T-EDIT", cheaper, op),
                           follow_redirects=True)
    assert rv.status_code == 200
    with app.app_context():
        tpl = db.session.get(PriceTemplate, tpl_id)
        assert [str(p.service_price) for p in tpl.periods] == ["0.30000"] * 4 and tpl.version == 2
