"""The Alembic history creates the whole schema on an empty database, and a `flask db migrate`
right after finds nothing to change."""
import os
import subprocess
import sys
import uuid

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def empty_database(tmp_path):
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        return f"sqlite:///{tmp_path}/empty.db", None
    base = make_url(url)
    name = f"cpms_mig_{uuid.uuid4().hex[:8]}"
    eng = create_engine(base, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    eng.dispose()
    return base.set(database=name).render_as_string(hide_password=False), (base, name)


def flask(args, env):
    return subprocess.run([sys.executable, "-m", "flask", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_upgrade_on_empty_database_then_migrate_finds_no_changes(tmp_path):
    url, info = empty_database(tmp_path)
    env = dict(os.environ, DATABASE_URL=url, INSTANCE_DIR=str(tmp_path), FLASK_APP="app:create_app")
    try:
        up = flask(["db", "upgrade"], env)
        assert up.returncode == 0, up.stderr[-3000:]
        engine = create_engine(url)
        tables = set(inspect(engine).get_table_names())
        engine.dispose()
        assert {"ab_user", "ab_role", "ev_station", "ev_pile", "ev_connector", "ev_charge_order",
                "ev_wallet_entry", "ev_partner", "sys_department", "sys_post"} <= tables
        check = flask(["db", "migrate", "-m", "check", "--rev-id", "check"], env)
        out = check.stdout + check.stderr
        assert check.returncode == 0, out[-3000:]
        assert "No changes in schema detected" in out, out[-3000:]
    finally:
        for f in os.listdir(os.path.join(ROOT, "migrations", "versions")):
            if f.startswith("check_"):
                os.remove(os.path.join(ROOT, "migrations", "versions", f))
        if info:
            base, name = info
            eng = create_engine(base, isolation_level="AUTOCOMMIT")
            with eng.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            eng.dispose()
