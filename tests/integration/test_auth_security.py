"""CSRF protects the forms, login attempts are rate-limited (counted in Redis), JWT login and
the OpenAPI document work."""
import pytest

from tests.conftest import ADMIN_PASSWORD, api_token, build_app, csrf_token


@pytest.fixture(scope="module")
def strict_app(app):
    """A second app on the same database and Redis with CSRF on and a tight login limit."""
    return build_app(WTF_CSRF_ENABLED=True, AUTH_RATE_LIMIT="3 per minute", RATELIMIT_KEY_PREFIX="csrf-test")


def test_login_without_csrf_token_is_refused(strict_app):
    c = strict_app.test_client()
    rv = c.post("/login/", data={"username": "admin", "password": ADMIN_PASSWORD})
    assert rv.status_code in (200, 400)  # form re-rendered (or rejected), not logged in
    assert c.get("/stationview/list/").status_code in (302, 401, 403)


def test_login_and_form_post_with_csrf_token(strict_app):
    c = strict_app.test_client()
    c.environ_base["REMOTE_ADDR"] = "10.9.9.1"
    token = csrf_token(c.get("/login/").get_data(as_text=True))
    assert token
    rv = c.post("/login/", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token})
    assert rv.status_code == 302
    html = c.get("/faulttypeview/add").get_data(as_text=True)
    rv = c.post("/faulttypeview/add", data={"name": "CSRF测试故障", "sort": "9"})
    assert "CSRF测试故障" not in c.get("/faulttypeview/list/").get_data(as_text=True)
    rv = c.post("/faulttypeview/add", data={"name": "CSRF测试故障", "sort": "9", "csrf_token": csrf_token(html)},
                follow_redirects=True)
    assert rv.status_code == 200
    assert "CSRF测试故障" in c.get("/faulttypeview/list/").get_data(as_text=True)


def test_login_attempts_are_rate_limited(strict_app):
    from app.extensions import get_redis

    c = strict_app.test_client()
    c.environ_base["REMOTE_ADDR"] = "10.9.9.2"
    codes = []
    for _ in range(5):
        token = csrf_token(c.get("/login/").get_data(as_text=True))
        codes.append(c.post("/login/", data={"username": "admin", "password": "wrong",
                                              "csrf_token": token}).status_code)
    assert 429 in codes, codes
    assert codes[:3] != [429, 429, 429]
    with strict_app.app_context():
        assert any(b"csrf-test" in k or b"LIMITS" in k or b"login" in k.lower()
                   for k in get_redis().scan_iter(count=1000)), "limiter storage is not in Redis"


def test_jwt_login_and_openapi(app):
    headers = api_token(app, "admin", ADMIN_PASSWORD)
    c = app.test_client()
    spec = c.get("/api/v1/_openapi", headers=headers)
    assert spec.status_code == 200
    paths = spec.get_json()["paths"]
    for resource in ("station", "pile", "connector", "pricetemplate", "partner", "member", "card"):
        assert f"/api/v1/{resource}/" in paths, resource
    rv = c.get("/api/v1/station/", headers={"Authorization": "Bearer not-a-token"})
    assert rv.status_code in (401, 422)
