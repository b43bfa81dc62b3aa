"""A person's view: headless Chromium (Debian's package, driven by Playwright) logs in to a real
server, sees the Chinese menus, opens the stations list and switches to English; every menu screen
runs under the Content-Security-Policy without a violation or a script error; logout is the
navbar's POST form."""
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import ADMIN_PASSWORD

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = os.environ.get("E2E_SCREENSHOTS")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(app):
    """The web process on the test database (the session app fixture built and seeded it)."""
    port = free_port()
    env = dict(os.environ, WEB_HOST="127.0.0.1", WEB_PORT=str(port), DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
               REDIS_URL=app.config["REDIS_URL"], INSTANCE_DIR=app.config["INSTANCE_DIR"],
               SECRET_KEY=app.config["SECRET_KEY"])
    proc = subprocess.Popen([sys.executable, "run.py", "web"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.3)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


def test_login_menus_and_language_switch(server):
    assert CHROMIUM, "Debian's chromium is required for browser tests (apt-get install chromium)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(server + "/login/")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", ADMIN_PASSWORD)
        page.click("input[type=submit], button[type=submit]")
        page.wait_for_load_state()
        for label in ("电站电桩", "订单管理", "财务管理", "营销活动", "统计分析", "互联互通", "系统管理"):
            assert page.get_by_text(label, exact=True).first.is_visible(), label
        if SHOTS:
            page.screenshot(path=os.path.join(SHOTS, "dashboard-zh.png"), full_page=True)
        page.goto(server + "/stationview/list/")
        assert page.get_by_text("菁英公寓").first.is_visible()
        if SHOTS:
            page.screenshot(path=os.path.join(SHOTS, "stations-zh.png"), full_page=True)
        page.goto(server + "/lang/en")
        page.goto(server + "/stationview/list/")
        assert page.get_by_text("Stations & piles", exact=True).first.is_visible()
        assert page.locator("th", has_text="Station name").first.is_visible()
        if SHOTS:
            page.screenshot(path=os.path.join(SHOTS, "stations-en.png"), full_page=True)
        browser.close()


# Every CSP violation of the page (and of its frames) lands in window.__cspViolations.
CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__cspViolations.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline') + ' at ' +
                              (e.sourceFile || '') + ':' + (e.lineNumber || 0));
});
"""


def _launch(p):
    return p.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"])


def test_every_menu_screen_runs_under_the_csp_without_violations(app, server):
    assert CHROMIUM, "Debian's chromium is required for browser tests (apt-get install chromium)"
    from playwright.sync_api import sync_playwright

    from tests.integration.test_menus import menu_items

    urls = sorted({item[0] for item in menu_items(app)})
    assert len(urls) > 20, urls
    # the price periods editor (script built in Python), Swagger UI, the logout page
    urls += ["/pricetemplateview/add", "/swagger/v1", "/logout/"]
    problems = []
    with sync_playwright() as p:
        browser = _launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.add_init_script(CSP_LISTENER)
        current = {"url": "/login/"}
        # console errors, except the browser's own favicon probe (the admin has no favicon)
        page.on("console", lambda msg: msg.type == "error" and not (msg.location.get("url") or "").endswith(
            "/favicon.ico") and problems.append(f"{current['url']}: console: {msg.text} ({msg.location.get('url')})"))
        page.on("pageerror", lambda exc: problems.append(f"{current['url']}: page error: {exc}"))
        rv = page.goto(server + "/login/")
        assert "script-src 'self' 'nonce-" in rv.headers.get("content-security-policy", "")  # enforced
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", ADMIN_PASSWORD)
        page.click("input[type=submit], button[type=submit]")
        page.wait_for_load_state()
        details = []  # the first show and edit screen linked from each list
        for url in ["/"] + urls:
            current["url"] = url
            rv = page.goto(server + url)
            assert rv.status == 200, (url, rv.status)
            page.wait_for_load_state("networkidle")
            for violation in page.evaluate("window.__cspViolations"):
                problems.append(f"{url}: CSP: {violation}")
            for kind in ("/show/", "/edit/"):
                href = page.eval_on_selector_all(f"a[href*='{kind}']", "els => els.length ? "
                                                 "els[0].getAttribute('href') : null")
                if href and href.startswith("/") and href not in details:
                    details.append(href)
        assert len(details) > 10, details
        for url in details:
            current["url"] = url
            rv = page.goto(server + url)
            assert rv.status == 200, (url, rv.status)
            page.wait_for_load_state("networkidle")
            for violation in page.evaluate("window.__cspViolations"):
                problems.append(f"{url}: CSP: {violation}")
        assert not problems, "\n".join(problems)

        # logout through the navbar: a POST form with the CSRF token
        current["url"] = "/ (logout)"
        page.goto(server + "/stationview/list/")
        page.click("header .navbar-right a.dropdown-toggle:has(.fa-user)")
        page.click("form.cpms-logout-form button[type=submit]")
        page.wait_for_load_state()
        page.goto(server + "/stationview/list/")
        assert "/login/" in page.url, page.url
        assert not problems, "\n".join(problems)
        browser.close()
