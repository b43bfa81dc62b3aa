"""A person's view: headless Chromium (Debian's package, driven by Playwright) logs in to a real
server, sees the Chinese menus, opens the stations list and switches to English."""
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
