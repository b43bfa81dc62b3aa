"""Saving a price template in the admin pushes the new billing model (0x58) to the idle piles of
the stations that use it."""
import json
from decimal import Decimal

from app.extensions import db
from app.models import PriceTemplate
from tests.conftest import ADMIN_PASSWORD
from tests.integration.gateway.conftest import TOU
from tests.integration.gateway.ykc_client import PileClient


def test_template_save_pushes_billing_model_to_idle_piles(app, gateway, gw_station, piles):
    code = piles()
    with app.app_context():
        tpl = db.session.get(PriceTemplate, gw_station["template_id"])
        form = {"code": tpl.code, "name": tpl.name, "operator": str(tpl.operator_id), "enabled": "y"}
    def rows(valley_service=None):
        return [{"start": f"{s // 60:02d}:{s % 60:02d}", "end": f"{e // 60:02d}:{e % 60:02d}", "level": lv,
                 "electricity_price": ep, "service_price": valley_service if valley_service and lv == "valley" else sp}
                for s, e, lv, ep, sp in TOU]

    client = app.test_client()
    client.post("/login/", data={"username": "admin", "password": ADMIN_PASSWORD})
    edit = f"/pricetemplateview/edit/{gw_station['template_id']}"
    try:
        with PileClient(gateway.port, code) as pile:
            assert pile.login().result == 0
            rv = client.post(edit, data=form | {"periods_editor": json.dumps(rows("0.43000"))})
            assert rv.status_code == 302, rv.get_data(as_text=True)[:500]
            _, model = pile.expect(0x58, timeout=10)
            assert model.valley_service_rate == Decimal("0.43")
    finally:
        # the shared test station's template back to TOU: later tests price their charges with it
        rv = client.post(edit, data=form | {"periods_editor": json.dumps(rows())})
        assert rv.status_code == 302, rv.get_data(as_text=True)[:500]
