"""``GET /healthz`` of the web: no login, JSON, 200 when the database and Redis answer, 503 when one
of them does not (real apps on a database file that cannot be opened / a Redis port nobody listens
on), and never redirected to HTTPS (a load balancer probes plain HTTP) — over a real ``run.py web``."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from app import create_app
from tests.conftest import build_app

ROOT = Path(__file__).resolve().parents[2]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_healthz_ok_without_login(app):
    client = app.test_client()
    rv = client.get("/healthz")
    assert rv.status_code == 200
    assert rv.get_json() == {"status": "ok", "database": "ok", "redis": "ok"}
    assert rv.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in rv.headers                    # no session for a probe


def test_healthz_503_when_the_database_is_unreachable(app, tmp_path):
    broken = create_app("test", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/missing/dir/cpms.db",
                        INSTANCE_DIR=app.config["INSTANCE_DIR"], REDIS_URL=app.config["REDIS_URL"])
    rv = broken.test_client().get("/healthz")
    assert rv.status_code == 503
    assert rv.get_json() == {"status": "error", "database": "error", "redis": "ok"}


def test_healthz_503_when_redis_is_unreachable(app):
    broken = build_app(REDIS_URL=f"redis://127.0.0.1:{_free_port()}/0")
    rv = broken.test_client().get("/healthz")
    assert rv.status_code == 503
    assert rv.get_json() == {"status": "error", "database": "ok", "redis": "error"}


def test_healthz_over_http_is_not_redirected_to_https(app):
    port = _free_port()
    env = dict(os.environ, CPMS_CONFIG="test", DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
               REDIS_URL=app.config["REDIS_URL"], INSTANCE_DIR=app.config["INSTANCE_DIR"], WEB_HOST="127.0.0.1",
               WEB_PORT=str(port), FORCE_HTTPS="1")
    log_path = Path(app.config["INSTANCE_DIR"]) / "web-healthz.log"
    with open(log_path, "w") as out:
        proc = subprocess.Popen([sys.executable, "run.py", "web"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as rv:
                    status, body = rv.status, rv.read()
                break
            except (ConnectionError, urllib.error.URLError) as exc:
                if isinstance(exc, urllib.error.HTTPError) or proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"web not healthy: {exc}\n{log_path.read_text()[-3000:]}") from exc
                time.sleep(0.2)
        assert status == 200 and json.loads(body)["status"] == "ok"
        # everything else is redirected to HTTPS (FORCE_HTTPS): the exemption is the probe's only
        opener = urllib.request.build_opener(type("NoRedirect", (urllib.request.HTTPRedirectHandler,),
                                                  {"redirect_request": lambda *a, **k: None}))
        try:
            opener.open(f"http://127.0.0.1:{port}/login/", timeout=5)
            raise AssertionError("/login/ was not redirected")
        except urllib.error.HTTPError as exc:
            assert exc.code in (301, 302) and exc.headers["Location"].startswith("https://")
    finally:
        proc.terminate()
        proc.wait(15)
