"""``GET /healthz``: is this web process able to serve? For load balancers and process supervisors.

No login (policy: PUBLIC), no session, never redirected to HTTPS (a load balancer probes the
process over plain HTTP). Answers JSON: 200 ``{"status": "ok", "database": "ok", "redis": "ok"}``
when the database answers ``SELECT 1`` and Redis a PING, else 503 with the failing part marked
``"error"`` (the exception's details go to the log, not to an anonymous caller).
"""
import logging

from flask import jsonify
from sqlalchemy import text

log = logging.getLogger(__name__)


def _check(name, probe):
    try:
        probe()
        return "ok"
    except Exception:
        log.exception("health check: %s unreachable", name)
        return "error"


def _database():
    from app.extensions import db

    try:
        db.session.execute(text("SELECT 1"))
    finally:
        db.session.rollback()


def _redis():
    from app.extensions import get_redis

    get_redis().ping()


def healthz():
    checks = {"database": _check("database", _database), "redis": _check("redis", _redis)}
    ok = all(value == "ok" for value in checks.values())
    response = jsonify(status="ok" if ok else "error", **checks)
    response.status_code = 200 if ok else 503
    response.headers["Cache-Control"] = "no-store"
    return response


def register(app):
    """``/healthz`` on ``app`` (endpoint ``healthz``), exempt from the HTTPS redirect."""
    talisman = app.extensions.get("talisman")
    view = talisman(force_https=False)(healthz) if talisman is not None else healthz
    app.add_url_rule("/healthz", "healthz", view, methods=["GET"])
