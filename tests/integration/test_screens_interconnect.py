"""Interconnect screens: partner keys validation, masking, the secrets page, keep-when-empty, push log."""

import io

import pytest
from openpyxl import load_workbook

from app.models import Partner
from app.services import partners

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
STAFF_PASSWORD = "staff-pass-1"
SECRET = "7hUeAsYVBrjw8sup"  # demo operator_secret of the first partner


def _db():
    from app.extensions import db

    return db


@pytest.fixture(scope="module")
def partner(app):
    with app.app_context():
        p = _db().session.query(Partner).order_by(Partner.id).first()
        return {
            "id": p.id,
            "operator": str(p.operator_id),
            "operator_secret": p.operator_secret,
            "data_secret": p.data_secret,
            "channel": str(p.channel_id or ""),
        }


@pytest.fixture(scope="module")
def editor(app, partner):
    """A user who may list/show/edit partners but not see their secrets."""
    with app.app_context():
        sm = app.appbuilder.sm
        role = sm.find_role("PartnerEditorTest") or sm.add_role("PartnerEditorTest")
        for perm in ("can_list", "can_show", "can_edit", "can_export"):
            pv = sm.find_permission_view_menu(perm, "PartnerView")
            sm.add_permission_role(role, pv)
        sm.add_permission_role(role, sm.find_permission_view_menu("menu_access", "Partners"))
        if not sm.find_user(username="partner_editor"):
            user = sm.add_user("partner_editor", "P", "E", "pe@example.com", role, STAFF_PASSWORD)
            user = _db().session.get(sm.user_model, user.id)
            user.operator_id = int(partner["operator"])
            _db().session.commit()
    return "partner_editor"


def _form(partner, **kw):
    data = {
        "name": "Test partner",
        "partner_type": "platform",
        "partner_operator_code": "MA25CNM39",
        "operator_secret": "abcdefgh12345678",
        "data_secret": "0123456789abcdef",
        "data_secret_iv": "fedcba9876543210",
        "sig_secret": "sigsecret0123456",
        "base_url": "https://partner.example.com/evcs/v1.0/",
        "our_operator_code": "MA1NJ0001",
        "our_operator_secret": "oursecret0123456",
        "our_data_secret": "ourdata012345678",
        "our_data_secret_iv": "ouriv01234567890",
        "our_sig_secret": "oursig0123456789",
        "ip_allowlist": "10.0.0.0/8\n192.168.1.5",
        "tenant_id": "7",
        "enabled": "y",
        "push_enabled": "y",
        "operator": partner["operator"],
    }
    data.update(kw)
    return data


def test_service_rules():
    assert partners.operator_id_error("MA25CNM38") is None
    assert partners.operator_id_error("ma25cnm38") and partners.operator_id_error("MA25CNM3")
    assert (
        partners.secret_error("data_secret", "short")
        and partners.secret_error("data_secret", "x" * 16) is None
    )
    assert partners.secret_error("sig_secret", "has space") and partners.mask("abcdef") == "ab****"


@pytest.mark.parametrize("url", ["/partnerview/list/", "/pushlogview/list/", "/partnerview/add"])
def test_pages_render(admin_client, url):
    rv = admin_client.get(url)
    assert rv.status_code == 200, rv.get_data(as_text=True)[:500]


def test_add_validation(admin_client, app, partner):
    html = admin_client.post(
        "/partnerview/add",
        data=_form(
            partner,
            partner_operator_code="ma25",
            data_secret="short",
            our_data_secret_iv="x" * 17,
            ip_allowlist="10.0.0.300",
        ),
    ).get_data(as_text=True)
    assert "An OperatorID is exactly 9 characters: digits 0-9 or capital letters A-Z." in html
    assert html.count("The data key and the IV must be exactly 16 characters (AES-128).") == 2
    assert "Not an IP address or CIDR range: 10.0.0.300" in html
    rv = admin_client.post("/partnerview/add", data=_form(partner))
    assert rv.status_code == 302
    with app.app_context():
        p = _db().session.query(Partner).filter_by(partner_operator_code="MA25CNM39").one()
        assert p.data_secret == "0123456789abcdef" and p.ip_allowlist == "10.0.0.0/8\n192.168.1.5"


def test_admin_sees_secrets_and_secrets_page(admin_client, partner):
    assert partner["operator_secret"] in admin_client.get("/partnerview/list/").get_data(as_text=True)
    rv = admin_client.get(f"/partnerview/secrets/{partner['id']}")
    assert rv.status_code == 200 and partner["data_secret"] in rv.get_data(as_text=True)


def test_staff_without_permission_sees_masked(client, login, partner):
    login("viewer_a", STAFF_PASSWORD)
    html = client.get("/partnerview/list/").get_data(as_text=True)
    assert partner["operator_secret"] not in html and partner["operator_secret"][:2] + "****" in html
    html = client.get(f"/partnerview/show/{partner['id']}").get_data(as_text=True)
    assert partner["data_secret"] not in html
    rv = client.get(f"/partnerview/secrets/{partner['id']}")
    assert rv.status_code in (302, 403) and partner["data_secret"] not in rv.get_data(as_text=True)
    rv = client.get("/partnerview/export/")
    assert rv.content_type.startswith(XLSX)
    cells = [
        c for r in load_workbook(io.BytesIO(rv.data)).worksheets[0].iter_rows(values_only=True) for c in r
    ]
    assert partner["operator_secret"] not in cells


def test_empty_secret_keeps_current_value(client, login, app, partner, editor):
    login(editor, STAFF_PASSWORD)
    html = client.get(f"/partnerview/edit/{partner['id']}").get_data(as_text=True)
    assert partner["operator_secret"] not in html and partner["data_secret"] not in html
    data = _form(partner, name="Renamed", partner_operator_code="MA25CNM38", channel=partner["channel"])
    for name in partners.SECRET_FIELDS:
        data[name] = ""
    data["sig_secret"] = "newsig0123456789"
    rv = client.post(f"/partnerview/edit/{partner['id']}", data=data)
    assert rv.status_code == 302, rv.get_data(as_text=True)[:2000]
    with app.app_context():
        p = _db().session.get(Partner, partner["id"])
        assert p.name == "Renamed" and p.operator_secret == partner["operator_secret"]
        assert p.data_secret == partner["data_secret"] and p.sig_secret == "newsig0123456789"


def test_push_log_export(admin_client):
    rv = admin_client.get("/pushlogview/export/")
    assert rv.status_code == 200 and rv.content_type.startswith(XLSX)
    load_workbook(io.BytesIO(rv.data))
