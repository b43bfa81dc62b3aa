"""The member API's frame: OpenAPI document, tokens, errors in Chinese, disabled members."""
from app.extensions import db
from tests.member_api.support import demo_member_ids, headers_for


def test_openapi_document_lists_every_member_endpoint(app, client):
    rv = client.get("/api/app/v1/_openapi")
    assert rv.status_code == 200
    doc = rv.get_json()
    assert doc["openapi"].startswith("3.")
    assert "/api/app/v1/me" in doc["paths"]
    me = doc["paths"]["/api/app/v1/me"]["get"]
    assert me["security"] == [{"bearerAuth": []}]
    assert {"200", "401", "429"} <= set(me["responses"])
    rules = {r.rule for r in app.url_map.iter_rules() if r.endpoint.startswith("member_api.")}
    documented = {p.replace("{", "<").replace("}", ">") for p in doc["paths"]}
    assert len(rules) == len(doc["paths"]), (rules, documented)


def test_me_needs_a_token_and_answers_in_chinese(app, client):
    rv = client.get("/api/app/v1/me")
    assert rv.status_code == 401
    assert rv.get_json() == {"code": "token_missing", "message": "请登录"}
    rv = client.get("/api/app/v1/me", headers={"Authorization": "Bearer not-a-token"})
    assert rv.status_code == 401 and rv.get_json()["code"] == "token_invalid"
    rv = client.get("/api/app/v1/me", headers={"Authorization": "Bearer x", "Accept-Language": "en"})
    assert rv.get_json()["message"] == "Your login has expired, please log in again."


def test_me_shows_the_member_of_the_token(app, client):
    a, b = demo_member_ids(app)
    rv = client.get("/api/app/v1/me", headers=headers_for(app, a))
    assert rv.status_code == 200
    body = rv.get_json()
    assert body["id"] == a
    assert isinstance(body["balance"], str) and "." in body["balance"]
    assert client.get("/api/app/v1/me", headers=headers_for(app, b)).get_json()["id"] == b


def test_a_disabled_member_is_refused_and_revoked_tokens_stop_working(app, client):
    from app.member_api.auth import revoke_tokens
    from app.models import Member

    a, _ = demo_member_ids(app)
    headers = headers_for(app, a)
    with app.app_context():
        m = db.session.get(Member, a)
        m.status = "disabled"
        db.session.commit()
    try:
        rv = client.get("/api/app/v1/me", headers=headers)
        assert rv.status_code == 403 and rv.get_json()["code"] == "member_disabled"
    finally:
        with app.app_context():
            db.session.get(Member, a).status = "active"
            db.session.commit()
    assert client.get("/api/app/v1/me", headers=headers).status_code == 200
    with app.app_context():
        revoke_tokens(a)
    assert client.get("/api/app/v1/me", headers=headers).get_json()["code"] == "token_invalid"
def test_routing_errors_under_the_prefix_answer_json(app, client):
    rv = client.get("/api/app/v1/no-such-thing")
    assert rv.status_code == 404 and rv.get_json()["code"] == "not_found"
    rv = client.get("/api/app/v1/invoices/99999999999999999999")
    assert rv.status_code == 404 and rv.get_json()["code"] == "not_found"
    assert client.get("/nothing-here").status_code == 404
    assert client.get("/nothing-here").get_json() is None
