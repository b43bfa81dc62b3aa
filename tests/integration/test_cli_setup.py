"""``flask setup`` loads demo data only when asked (``--demo``); ``init-security`` reports what it
did. Real ``flask`` processes on a fresh SQLite database of their own."""
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _cli(instance, *args):
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "ADMIN_PASSWORD", "CPMS_CONFIG", "SECRET_KEY")}
    env.update(INSTANCE_DIR=str(instance), PYTHONUNBUFFERED="1", FLASK_APP="app:create_app")
    rv = subprocess.run([sys.executable, "-m", "flask", *args], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=300)
    assert rv.returncode == 0, rv.stdout + rv.stderr
    return rv.stdout


def _count(instance, table):
    with sqlite3.connect(instance / "cpms.db") as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_setup_loads_demo_data_only_with_demo(tmp_path):
    out = _cli(tmp_path, "setup")
    assert "Admin account created" in out and "Demo data" not in out
    assert "Roles and permissions synced" in out
    assert _count(tmp_path, "ev_operator") == 0 and _count(tmp_path, "ev_station") == 0
    assert _count(tmp_path, "ab_user") == 1
    out = _cli(tmp_path, "setup")                                   # idempotent, still no demo
    assert "already existed; password unchanged" in out and _count(tmp_path, "ev_operator") == 0
    out = _cli(tmp_path, "setup", "--demo")
    assert "Demo data loaded" in out
    assert _count(tmp_path, "ev_operator") == 2 and _count(tmp_path, "ev_station") > 0


def test_init_security_reports_the_permissions_granted(tmp_path):
    _cli(tmp_path, "setup")
    out = _cli(tmp_path, "init-security")
    counts = {}
    first = out.splitlines()[0]
    assert first.startswith("Roles and permissions synced from app/security/policy.py: ")
    for part in first.split(": ", 1)[1].removesuffix(" permissions").split(", "):
        name, number = part.rsplit(" ", 1)
        counts[name] = int(number)
    # the figures are the database's: Admin holds the most, read-only staff the fewest
    with sqlite3.connect(tmp_path / "cpms.db") as conn:
        held = dict(conn.execute("SELECT r.name, count(*) FROM ab_permission_view_role pr "
                                 "JOIN ab_role r ON r.id = pr.role_id GROUP BY r.name").fetchall())
    assert counts == {name: held[name] for name in ("Admin", "OperatorAdmin", "OperatorStaff")}
    assert counts["Admin"] > counts["OperatorAdmin"] > counts["OperatorStaff"] > 0
    assert "not in the policy table" not in out                      # every permission has an entry
