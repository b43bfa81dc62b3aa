"""The pile command panel: live state from the gateway, commands for roles with can_command only,
data scope on every route."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.extensions import db
from app.gateway.ykc import RealtimeData, TimeSyncReply, WorkParametersReply, encode_reply
from app.models import Pile
from app.services.accounts import sync_roles_and_permissions
from app.services.demo import STAFF_PASSWORD
from app.views.pile_admin import VIEW_NAME, register
from tests.conftest import ADMIN_PASSWORD, build_app
from tests.integration.gateway.conftest import wait_until
from tests.integration.gateway.ykc_client import PileClient


@pytest.fixture(scope="module")
def web(app):
    """An app with the panel registered (the shared test app may predate its registration)."""
    if VIEW_NAME in app.blueprints:
        return app
    web_app = build_app()
    with web_app.app_context():
        register(web_app.appbuilder)
        sync_roles_and_permissions()
    return web_app


def client_for(web, username, password):
    client = web.test_client()
    rv = client.post("/login/", data={"username": username, "password": password})
    assert rv.status_code == 302
    client.get("/lang/en")                                # tests read English
    return client


@pytest.fixture(scope="module")
def online_pile(web, gateway, piles):
    code = piles()
    pile = PileClient(gateway.port, code)
    assert pile.login().result == 0
    pile.expect(0x56)
    pile.send(RealtimeData(transaction_serial="0" * 32, pile_code=code, gun="01", status=2,
                           output_voltage=Decimal("231.5")))
    with web.app_context():
        pile_id = db.session.scalar(select(Pile.id).where(Pile.code == code))
    yield pile, code, pile_id
    pile.close()


def test_admin_sees_live_state_and_sends_commands(web, online_pile):
    pile, code, pile_id = online_pile
    admin = client_for(web, "admin", ADMIN_PASSWORD)
    url = f"/pilecommand/{pile_id}"

    def page():
        html = admin.get(url).get_data(as_text=True)
        return html if "231.5" in html else None

    html = wait_until(page, message="live voltage on the panel")
    assert code in html and 'value="reboot"' in html and 'value="power_limit"' in html
    live = admin.get(f"{url}/live").get_json()
    assert live["online"] is True and live["guns"][0]["live"]["voltage"] == "231.5"

    with ThreadPoolExecutor(1) as pool:
        sent = pool.submit(admin.post, f"{url}/command", data={"action": "time_sync"})
        header, sync = pile.expect(0x56)
        pile.send_bytes(encode_reply(TimeSyncReply(pile_code=code, current_time=sync.current_time), header))
        assert sent.result(10).status_code == 302
        sent = pool.submit(admin.post, f"{url}/command", data={"action": "power_limit", "power_limit": "60"})
        header, params = pile.expect(0x52)
        assert params.max_output_power == 60 and params.disabled == 0
        pile.send_bytes(encode_reply(WorkParametersReply(pile_code=code, result=1), header))
        assert sent.result(10).status_code == 302
    html = admin.get(url).get_data(as_text=True)
    assert "The pile accepted the command." in html


def test_read_only_staff_see_the_panel_but_cannot_command(web, online_pile):
    pile, code, pile_id = online_pile
    viewer = client_for(web, "viewer_a", STAFF_PASSWORD)
    html = viewer.get(f"/pilecommand/{pile_id}").get_data(as_text=True)
    assert code in html and 'value="reboot"' not in html
    rv = viewer.post(f"/pilecommand/{pile_id}/command", data={"action": "reboot"})
    assert rv.status_code in (302, 403)
    with pytest.raises(AssertionError):
        pile.expect(0x92, timeout=0.5)                     # nothing reached the pile


def test_other_operators_get_404(web, online_pile):
    _, _, pile_id = online_pile
    other = client_for(web, "staff_b", STAFF_PASSWORD)
    assert other.get(f"/pilecommand/{pile_id}").status_code == 404
    assert other.get(f"/pilecommand/{pile_id}/live").status_code == 404
    assert other.post(f"/pilecommand/{pile_id}/command", data={"action": "reboot"}).status_code == 404


def test_staff_role_never_gets_can_command(web):
    with web.app_context():
        sm = web.appbuilder.sm
        staff = sm.find_role("OperatorStaff")
        perms = {(p.permission.name, p.view_menu.name) for p in staff.permissions}
        admin = {(p.permission.name, p.view_menu.name) for p in sm.find_role("OperatorAdmin").permissions}
    assert ("can_read", VIEW_NAME) in perms and ("can_command", VIEW_NAME) not in perms
    assert ("can_command", VIEW_NAME) in admin
