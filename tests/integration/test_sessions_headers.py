"""Logins, sessions and security headers (issue 7 §3), over the real app, database and Redis.

Reproductions: the JWT login had no rate limit; a saved session cookie still worked after logout
and after a password change (a JWT too); GET /logout/ logged out (a link could do it); responses
had no security headers. Each test below failed on that code."""
import re
import time
import uuid

import pytest

from tests.conftest import ADMIN_PASSWORD, build_app, csrf_token

SCRIPT_TAG = re.compile(r"<script\b[^>]*>", re.I)
NEW_PASSWORD = "Chg-Pass-2026!x"


@pytest.fixture(scope="module")
def strict_app(app):
    """Its own app on the session's database and Redis: CSRF on, a short login window, its own
    limiter keys (RATELIMIT_KEY_PREFIX) and client addresses, so no other test is locked out."""
    return build_app(WTF_CSRF_ENABLED=True, AUTH_RATE_LIMIT="3 per 4 second", RATELIMIT_KEY_PREFIX="sess-test")


@pytest.fixture(scope="module")
def prod_like_app(app):
    """Production's transport settings (Secure cookie, HTTPS redirect, HSTS) and real 500 pages."""
    built = build_app(SESSION_COOKIE_SECURE=True, FORCE_HTTPS=True, HSTS_ENABLED=True, PROPAGATE_EXCEPTIONS=False,
                      RATELIMIT_KEY_PREFIX="sess-prod-test")

    def boom():
        raise RuntimeError("boom")

    built.add_url_rule("/_test_boom", "test_boom", boom)
    return built


def _client(app, addr):
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = addr
    return c


def _login(app, username, password, addr):
    c = _client(app, addr)
    token = csrf_token(c.get("/login/").get_data(as_text=True))
    rv = c.post("/login/", data={"username": username, "password": password, "csrf_token": token})
    assert rv.status_code == 302, rv.get_data(as_text=True)[:300]
    assert c.get("/stationview/list/").status_code == 200
    return c


def _jwt(app, username, password, addr, refresh=False):
    rv = _client(app, addr).post("/api/v1/security/login", json={
        "username": username, "password": password, "provider": "db", "refresh": refresh})
    assert rv.status_code == 200, rv.get_data(as_text=True)
    return rv.get_json()


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


def _new_admin_user(app):
    """A user of its own (Admin role): changing its password touches no other test's login."""
    username = f"sess_{uuid.uuid4().hex[:8]}"
    with app.app_context():
        sm = app.appbuilder.sm
        user = sm.add_user(username, "Session", "Test", f"{username}@example.com",
                           sm.find_role(app.config["AUTH_ROLE_ADMIN"]), "Old-Pass-2026!x")
        assert user, "user not created"
        return username, user.id


# ---------------------------------------------------------------- JWT login rate limit


def test_jwt_login_is_rate_limited_like_the_form_login(strict_app):
    c = _client(strict_app, "10.7.3.1")
    wrong = {"username": "admin", "password": "wrong", "provider": "db"}
    right = {"username": "admin", "password": ADMIN_PASSWORD, "provider": "db"}
    assert [c.post("/api/v1/security/login", json=wrong).status_code for _ in range(3)] == [401, 401, 401]
    rv = c.post("/api/v1/security/login", json=wrong)
    assert rv.status_code == 429
    assert rv.is_json and rv.get_json()["message"]
    # the right password is refused as well while the window lasts ...
    rv = c.post("/api/v1/security/login", json=right)
    assert rv.status_code == 429 and "access_token" not in rv.get_data(as_text=True)
    # ... per client address: another address logs in
    assert _client(strict_app, "10.7.3.2").post("/api/v1/security/login", json=right).status_code == 200
    time.sleep(4.5)  # the window ("3 per 4 second") has passed
    rv = c.post("/api/v1/security/login", json=right)
    assert rv.status_code == 200 and rv.get_json()["access_token"]


def test_jwt_login_limit_is_counted_in_redis(strict_app):
    from app.extensions import get_redis

    c = _client(strict_app, "10.7.3.3")
    c.post("/api/v1/security/login", json={"username": "admin", "password": "wrong", "provider": "db"})
    with strict_app.app_context():
        keys = [k.decode() for k in get_redis().scan_iter(match="*sess-test*", count=1000)]
    assert any("10.7.3.3" in k for k in keys), keys


def test_logout_does_not_use_up_login_attempts(strict_app):
    c = _login(strict_app, "admin", ADMIN_PASSWORD, "10.7.3.4")  # attempt 1 of 3
    token = csrf_token(c.get("/logout/").get_data(as_text=True))
    for _ in range(5):  # FAB limits every POST of the login view's blueprint; logout is exempt
        assert c.post("/logout/", data={"csrf_token": token}).status_code == 302
    rv = c.post("/login/", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token})
    assert rv.status_code == 302  # attempt 2 of 3
    assert c.get("/stationview/list/").status_code == 200


# ---------------------------------------------------------------- logout


def test_get_logout_only_asks_and_post_logout_ends_the_session(strict_app):
    c = _login(strict_app, "admin", ADMIN_PASSWORD, "10.7.4.1")
    saved = c.get_cookie("session").value
    rv = c.get("/logout/")
    assert rv.status_code == 200
    html = rv.get_data(as_text=True)
    assert re.search(r'<form method="post" action="/logout/"', html)
    assert c.get("/stationview/list/").status_code == 200, "GET /logout/ must not log out"
    # a POST without the CSRF token (a forged cross-site form) does not log out either
    assert c.post("/logout/").status_code == 400
    assert c.get("/stationview/list/").status_code == 200
    rv = c.post("/logout/", data={"csrf_token": csrf_token(html)})
    assert rv.status_code == 302
    assert c.get("/stationview/list/").status_code == 302
    # the cookie saved while logged in is refused now: the session ended on the server
    c2 = _client(strict_app, "10.7.4.1")
    c2.set_cookie("session", saved)
    rv = c2.get("/stationview/list/")
    assert rv.status_code == 302 and "/login/" in rv.headers["Location"]
    assert c2.get("/api/v1/station/").status_code == 401


def test_logout_ends_only_that_session(strict_app):
    first = _login(strict_app, "admin", ADMIN_PASSWORD, "10.7.4.2")
    second = _login(strict_app, "admin", ADMIN_PASSWORD, "10.7.4.2")
    html = first.get("/logout/").get_data(as_text=True)
    assert first.post("/logout/", data={"csrf_token": csrf_token(html)}).status_code == 302
    assert first.get("/stationview/list/").status_code == 302
    assert second.get("/stationview/list/").status_code == 200


def test_navbar_logout_is_a_post_form_with_csrf_token(strict_app):
    c = _login(strict_app, "admin", ADMIN_PASSWORD, "10.7.4.3")
    html = c.get("/stationview/list/").get_data(as_text=True)
    assert 'href="/logout/"' not in html
    form = re.search(r'<form class="cpms-logout-form" method="post" action="/logout/">(.*?)</form>', html, re.S)
    assert form, "no logout form in the navbar"
    assert 'name="csrf_token"' in form.group(1) and 'type="submit"' in form.group(1)
    assert c.post("/logout/", data={"csrf_token": csrf_token(form.group(1))}).status_code == 302
    assert c.get("/stationview/list/").status_code == 302


def test_session_lifetime_is_bounded_in_redis(strict_app):
    from app.security import sessions

    c = _login(strict_app, "admin", ADMIN_PASSWORD, "10.7.4.4")
    with c.session_transaction() as sess:
        sid = sess[sessions.SESSION_SID]
    with strict_app.app_context():
        from app.extensions import get_redis

        ttl = get_redis().ttl(sessions.SID_KEY.format(sid))
    assert 0 < ttl <= strict_app.config["SESSION_LIFETIME"].total_seconds()


# ---------------------------------------------------------------- password change


def test_password_change_refuses_saved_cookie_and_jwt(strict_app):
    username, user_id = _new_admin_user(strict_app)
    browser = _login(strict_app, username, "Old-Pass-2026!x", "10.7.5.1")
    saved = browser.get_cookie("session").value
    tokens = _jwt(strict_app, username, "Old-Pass-2026!x", "10.7.5.1", refresh=True)
    api = strict_app.test_client()
    assert api.get("/api/v1/station/", headers=_bearer(tokens["access_token"])).status_code == 200

    with strict_app.app_context():  # what FAB's and our password views call
        strict_app.appbuilder.sm.reset_password(user_id, NEW_PASSWORD)

    assert browser.get("/stationview/list/").status_code == 302
    replay = _client(strict_app, "10.7.5.1")
    replay.set_cookie("session", saved)
    assert replay.get("/stationview/list/").status_code == 302
    rv = api.get("/api/v1/station/", headers=_bearer(tokens["access_token"]))
    assert rv.status_code == 401, rv.get_data(as_text=True)
    assert api.post("/api/v1/security/refresh", headers=_bearer(tokens["refresh_token"])).status_code == 401
    # the new password works, and its token
    _login(strict_app, username, NEW_PASSWORD, "10.7.5.2")
    fresh = _jwt(strict_app, username, NEW_PASSWORD, "10.7.5.2")
    assert api.get("/api/v1/station/", headers=_bearer(fresh["access_token"])).status_code == 200


def test_own_password_change_over_http_keeps_this_session_and_refuses_the_others(strict_app):
    username, _ = _new_admin_user(strict_app)
    me = _login(strict_app, username, "Old-Pass-2026!x", "10.7.5.3")
    other = _login(strict_app, username, "Old-Pass-2026!x", "10.7.5.4")
    saved = me.get_cookie("session").value
    token = _jwt(strict_app, username, "Old-Pass-2026!x", "10.7.5.3")["access_token"]

    html = me.get("/resetmypassword/form").get_data(as_text=True)
    data = {"csrf_token": csrf_token(html)}
    for name in re.findall(r'<input[^>]*type="password"[^>]*name="([^"]+)"|<input[^>]*name="([^"]+)"[^>]*'
                           r'type="password"', html):
        name = name[0] or name[1]
        data[name] = "Old-Pass-2026!x" if ("old" in name or "current" in name) else NEW_PASSWORD
    assert {"password", "conf_password"} <= set(data), html[:2000]
    rv = me.post("/resetmypassword/form", data=data)
    assert rv.status_code == 302, rv.get_data(as_text=True)[:2000]
    with strict_app.app_context():
        from werkzeug.security import check_password_hash

        user = strict_app.appbuilder.sm.find_user(username)
        assert check_password_hash(user.password, NEW_PASSWORD), "password not changed"

    assert me.get("/stationview/list/").status_code == 200  # re-stamped: the changer stays in
    assert other.get("/stationview/list/").status_code == 302
    replay = _client(strict_app, "10.7.5.3")
    replay.set_cookie("session", saved)
    assert replay.get("/stationview/list/").status_code == 302
    assert strict_app.test_client().get("/api/v1/station/", headers=_bearer(token)).status_code == 401


def test_a_rolled_back_password_change_revokes_nothing(strict_app):
    username, user_id = _new_admin_user(strict_app)
    browser = _login(strict_app, username, "Old-Pass-2026!x", "10.7.5.5")
    with strict_app.app_context():
        from app.extensions import db

        user = strict_app.appbuilder.sm.get_user_by_id(user_id)
        user.password = "not-a-hash"
        db.session.flush()
        db.session.rollback()
        strict_app.appbuilder.sm.get_user_by_id(user_id).last_name = "Rolled back"
        db.session.commit()  # a later commit of the same session does not act on the rolled-back change
    assert browser.get("/stationview/list/").status_code == 200


def test_deactivated_user_session_and_jwt_are_refused(strict_app):
    username, user_id = _new_admin_user(strict_app)
    browser = _login(strict_app, username, "Old-Pass-2026!x", "10.7.5.6")
    token = _jwt(strict_app, username, "Old-Pass-2026!x", "10.7.5.6")["access_token"]
    with strict_app.app_context():
        from app.extensions import db

        strict_app.appbuilder.sm.get_user_by_id(user_id).active = False
        db.session.commit()
    assert browser.get("/stationview/list/").status_code == 302
    assert strict_app.test_client().get("/api/v1/station/", headers=_bearer(token)).status_code == 401


# ---------------------------------------------------------------- cookie flags


def _session_cookie(rv):
    cookies = [h for h in rv.headers.getlist("Set-Cookie") if h.startswith("session=")]
    assert cookies, rv.headers
    return cookies[-1]


def test_session_cookie_is_httponly_and_samesite_lax_without_secure_on_http(strict_app):
    c = _client(strict_app, "10.7.6.1")
    token = csrf_token(c.get("/login/").get_data(as_text=True))
    rv = c.post("/login/", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token})
    cookie = _session_cookie(rv)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # dev/test run on plain HTTP
    assert c.get("/login/").status_code in (200, 302)  # no HTTPS redirect in dev/test


def test_production_defaults_secure_cookies_and_https():
    import config

    prod = config.ProductionConfig
    assert prod.SESSION_COOKIE_SECURE is True and prod.REMEMBER_COOKIE_SECURE is True
    assert prod.FORCE_HTTPS is True and prod.HSTS_ENABLED is True
    for dev in (config.DevelopmentConfig, config.TestConfig):
        assert dev.FORCE_HTTPS is False and dev.SESSION_COOKIE_SECURE is False


def test_production_settings_secure_cookie_redirect_and_hsts(prod_like_app):
    c = _client(prod_like_app, "10.7.6.2")
    rv = c.get("/login/")
    assert rv.status_code == 302 and rv.headers["Location"].startswith("https://")
    https = {"X-Forwarded-Proto": "https"}  # behind the TLS proxy
    rv = c.get("/login/", headers=https)
    assert rv.status_code == 200
    assert rv.headers["Strict-Transport-Security"].startswith("max-age=")
    rv = c.post("/login/", data={"username": "admin", "password": ADMIN_PASSWORD}, headers=https)
    assert rv.status_code == 302
    cookie = _session_cookie(rv)
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


# ---------------------------------------------------------------- security headers


def _check_headers(rv, what):
    h = rv.headers
    assert h.get("X-Frame-Options") == "DENY", what
    assert h.get("X-Content-Type-Options") == "nosniff", what
    assert h.get("Referrer-Policy") == "strict-origin-when-cross-origin", what
    csp = h.get("Content-Security-Policy", "")
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives.get("default-src") == ["'self'"], (what, csp)
    assert directives.get("object-src") == ["'none'"], (what, csp)
    assert directives.get("base-uri") == ["'self'"], (what, csp)
    assert directives.get("frame-ancestors") == ["'none'"], (what, csp)
    assert directives.get("form-action") == ["'self'"], (what, csp)
    script = directives.get("script-src", [])
    assert "'self'" in script and "'unsafe-inline'" not in script and "'unsafe-eval'" not in script, csp
    assert not any(s in ("*", "http:", "https:", "data:") for s in script), csp
    return directives


def test_security_headers_on_html_json_static_and_error_responses(strict_app, prod_like_app):
    from tests.conftest import api_token

    c = _client(strict_app, "10.7.7.1")
    _check_headers(c.get("/login/"), "HTML")
    _check_headers(c.get("/api/v1/station/"), "JSON 401")
    headers = api_token(strict_app, "admin", ADMIN_PASSWORD)
    rv = strict_app.test_client().get("/api/v1/station/", headers=headers)
    assert rv.status_code == 200 and rv.is_json
    _check_headers(rv, "JSON")
    rv = c.get("/static/appbuilder/css/ab.css")
    assert rv.status_code == 200
    _check_headers(rv, "static")
    rv.close()
    rv = c.get("/no-such-page/")
    assert rv.status_code == 404
    _check_headers(rv, "404")
    rv = c.put("/login/")
    assert rv.status_code == 405
    _check_headers(rv, "405")
    rv = prod_like_app.test_client().get("/_test_boom", headers={"X-Forwarded-Proto": "https"})
    assert rv.status_code == 500
    _check_headers(rv, "500")


def test_every_script_on_every_menu_screen_carries_the_request_nonce(app, admin_client):
    from tests.integration.test_menus import menu_items

    links = sorted({item[0] for item in menu_items(app)})
    assert len(links) > 20, links
    links += ["/pricetemplateview/add"]  # the price periods editor builds its script in Python
    for url in links:
        rv = admin_client.get(url)
        assert rv.status_code == 200, url
        directives = _check_headers(rv, url)
        nonces = [s for s in directives["script-src"] if s.startswith("'nonce-")]
        assert len(nonces) == 1, (url, directives["script-src"])
        nonce = nonces[0][len("'nonce-"):-1]
        page = rv.get_data(as_text=True)
        for tag in SCRIPT_TAG.findall(page):
            assert f'nonce="{nonce}"' in tag, (url, tag)
        assert not re.search(r"<[a-z][^>]*\son[a-z]+\s*=", page), url  # no inline event handlers
        assert "javascript:" not in page, url
