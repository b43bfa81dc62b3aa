"""Outside a web request there is no user, so there is no implicit data scope: ``current_scope()``
raises unless a job runs in a named ``platform_scope`` (everything) or ``acting_as(scope)`` (a job
acting for a user, an operator or a partner). Every entry point outside requests carries one:
RQ jobs (cron and enqueued), the gateway's database lane, the CLI (``flask setup`` / ``demo-data``)."""
import contextvars
import os
import subprocess
import sys

import pytest
from rq.cron import CronScheduler
from sqlalchemy import select

from app.extensions import db, get_redis
from app.models import Operator, PriceTemplate, Station
from app.security.scope import (
    EVERYTHING,
    NoScopeError,
    RelationScopeError,
    ScopeError,
    acting_as,
    acting_name,
    check_item,
    current_scope,
    platform_scope,
    scope_for_operator,
    scope_for_user,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def outside_request(fn):
    """Run ``fn`` the way a job, the gateway or the CLI runs: in a fresh context (pytest-flask keeps a
    test request context pushed around every test), inside an app context only."""
    def run():
        from flask import has_request_context

        from tests.conftest import _APPS

        with _APPS["app"].app_context():
            assert not has_request_context()
            return fn()

    return contextvars.Context().run(run)


@pytest.fixture(scope="module")
def ops(app):
    with app.app_context():
        a = db.session.scalar(select(Operator.id).where(Operator.code == "MA1NJ0001"))
        b = db.session.scalar(select(Operator.id).where(Operator.code == "MA1NJ0002"))
        return a, b


def test_no_scope_outside_a_request(app):
    def body():
        with pytest.raises(NoScopeError, match="platform_scope"):
            current_scope()

    outside_request(body)


def test_platform_scope_is_named_and_nests(app, ops):
    def body():
        with pytest.raises(ValueError):
            platform_scope("")
        with platform_scope("settlement"):
            assert current_scope() == EVERYTHING and acting_name() == "platform:settlement"
            with acting_as(scope_for_operator(ops[1]), name="partner:test"):
                assert current_scope().operator_id == ops[1] and not current_scope().all
                assert acting_name() == "partner:test"
            assert current_scope() == EVERYTHING
        with pytest.raises(NoScopeError):
            current_scope()

    outside_request(body)


def test_acting_as_a_user_outside_a_request(app, ops):
    def body():
        staff_b = app.appbuilder.sm.find_user(username="staff_b")
        scope = scope_for_user(staff_b)
        assert scope.operator_id == ops[1] and not scope.all
        with acting_as(scope, name="export-for-staff_b"):
            assert current_scope() == scope

    outside_request(body)


def test_explicit_scope_wins_inside_a_request_too(app, ops):
    with app.test_request_context():
        with acting_as(scope_for_operator(ops[0]), name="on-behalf"):
            assert current_scope().operator_id == ops[0]


def test_writes_outside_a_request_need_an_explicit_scope(app, ops):
    """check_item (admin, REST, services, jobs) refuses to guess: no scope, no write."""
    def body():
        station = db.session.scalar(select(Station).where(Station.operator_id == ops[1]).order_by(Station.id))
        a_template = db.session.scalar(select(PriceTemplate).where(PriceTemplate.operator_id == ops[0]))
        with pytest.raises(NoScopeError):
            check_item(station)
        # a job acting for operator B may not link B's station to A's template ...
        station.price_template = a_template
        with acting_as(scope_for_operator(ops[1]), name="partner-sync"):
            with pytest.raises(RelationScopeError) as err:
                check_item(station)
        assert err.value.field == "price_template"
        # ... nor may the platform itself: cross-operator links are refused for everyone
        with platform_scope("test"):
            with pytest.raises(RelationScopeError):
                check_item(station)
        db.session.rollback()
        # the same link by foreign key only (as REST or a service may write it)
        station = db.session.scalar(select(Station).where(Station.operator_id == ops[1]).order_by(Station.id))
        station.price_template_id = a_template.id
        with platform_scope("test"), pytest.raises(RelationScopeError):
            check_item(station)
        db.session.rollback()
        # a job acting for operator A may not write operator B's station at all
        station = db.session.scalar(select(Station).where(Station.operator_id == ops[1]).order_by(Station.id))
        with acting_as(scope_for_operator(ops[0])):
            with pytest.raises(ScopeError):
                check_item(station)
        db.session.rollback()

    outside_request(body)


def _job_modules():
    import app.tasks.charging_jobs
    import app.tasks.maintenance
    import app.tasks.orders
    import app.tasks.settlement

    return [app.tasks.charging_jobs, app.tasks.maintenance, app.tasks.orders, app.tasks.settlement]


def test_every_cron_job_runs_in_a_named_platform_scope(app):
    with app.app_context():
        scheduler = CronScheduler(connection=get_redis())
        scheduler.load_config_from_file("app.tasks.cron_config")
        jobs = scheduler.get_jobs()
    assert jobs
    for job in jobs:
        assert getattr(job.func, "platform_scope_name", None), f"{job.func.__name__} has no explicit scope"


def test_every_enqueued_job_runs_in_a_named_platform_scope():
    import importlib

    from app.tasks.charging_jobs import stop_order

    settle = importlib.import_module("app.tasks.settlement").settle_order_job  # enqueued by dotted path
    for fn in (stop_order, settle):
        assert getattr(fn, "platform_scope_name", None), fn.__name__
    # and every job function of app/tasks (helpers that enqueue are not jobs)
    for module in _job_modules():
        for name, fn in vars(module).items():
            if callable(fn) and getattr(fn, "__module__", None) == module.__name__ and not name.startswith(
                    ("enqueue", "_")) and not isinstance(fn, type):
                assert getattr(fn, "platform_scope_name", None), f"{module.__name__}.{name} has no explicit scope"


def test_platform_job_sets_the_scope_for_the_call_only(app):
    from app.security.scope import platform_job
    from app.tasks.maintenance import cron_heartbeat

    @platform_job("probe")
    def probe():
        return current_scope(), acting_name()

    def body():
        assert probe() == (EVERYTHING, "platform:probe")
        assert cron_heartbeat() == "ok"   # a real job, run as the worker does (app context, no request)
        with pytest.raises(NoScopeError):
            current_scope()               # the job's scope ends with the job

    outside_request(body)


def test_gateway_database_lane_runs_as_the_platform(app):
    from app.gateway.state_writer import DbLane

    def body():
        lane = DbLane(app)
        with lane():
            assert current_scope() == EVERYTHING and acting_name() == "platform:gateway"
        with pytest.raises(NoScopeError):
            current_scope()

    outside_request(body)


def _cli(tmp_path, *args):
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "ADMIN_PASSWORD", "CPMS_CONFIG", "SECRET_KEY")}
    env.update(INSTANCE_DIR=str(tmp_path), PYTHONUNBUFFERED="1", FLASK_APP="app:create_app")
    return subprocess.run([sys.executable, "-m", "flask", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_cli_setup_and_demo_data_run_in_platform_scope(tmp_path):
    rv = _cli(tmp_path, "setup", "--no-demo")
    assert rv.returncode == 0, rv.stdout + rv.stderr
    assert "Admin account created" in rv.stdout
    rv = _cli(tmp_path, "demo-data")
    assert rv.returncode == 0, rv.stdout + rv.stderr
    assert "Demo data loaded" in rv.stdout
    rv = _cli(tmp_path, "init-security")
    assert rv.returncode == 0, rv.stdout + rv.stderr
