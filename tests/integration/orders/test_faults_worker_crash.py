"""Issue 8 §4: a settlement killed with its worker is retried within a minute, exactly once.

Real processes: ``python run.py worker`` (the default, non-forking worker: the job runs in the
worker process) settles a finished order and stops inside the settlement transaction (the test
pause hook, ``app.services.settlement._test_pause``); it is SIGKILLed there. RQ itself would only
notice the abandoned job at its next registry maintenance (up to 10 minutes). A second worker and
``python run.py cron`` running the settlement watchdog (``app.tasks.settlement.settle_stalled``,
intervals compressed) settle the order within a minute: one debit, wallet == ledger.
"""
import os
import signal
import subprocess
import sys
import time
import uuid
from decimal import Decimal

import pytest
from rq.cron import CronScheduler
from rq.job import Job

from app.extensions import get_redis
from app.models import ChargeOrder
from app.services.settlement import PAUSE_ENV, enqueue_settlement
from app.services.wallet import ledger_balance
from tests.integration.gateway.conftest import process_env
from tests.integration.orders.test_settlement import ROOT, balance, entries, fresh, make_order, new_member

pytestmark = pytest.mark.usefixtures("money_invariants")  # checked after every fault

CRON = """from rq import cron

from app.tasks.settlement import settle_stalled

cron.register(settle_stalled, queue_name="settlement", interval=1)
"""


def start(app, role, log_dir, **extra):
    log = open(os.path.join(log_dir, f"{role}-{uuid.uuid4().hex[:6]}.log"), "w")
    proc = subprocess.Popen([sys.executable, "run.py", role], cwd=ROOT, env=process_env(app, **extra), stdout=log,
                            stderr=subprocess.STDOUT)
    proc.log_path = log.name
    log.close()
    return proc


def tail(proc):
    with open(proc.log_path) as fh:
        return fh.read()[-3000:]


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_worker_killed_mid_settlement_settles_once_within_a_minute(app, tmp_path):
    cron_file = tmp_path / "cron_watchdog.py"
    cron_file.write_text(CRON)
    with app.app_context():
        redis = get_redis()
        member_id = new_member("100")
        order_id = make_order(member_id)
        assert fresh(ChargeOrder, order_id).status == "finished"
        pause = f"test:settle-pause:{uuid.uuid4().hex}"
        redis.set(pause, "1", ex=300)
        job = enqueue_settlement(order_id)
    watchdog = {"SETTLEMENT_STALE_SECONDS": 3, PAUSE_ENV: pause}
    first = start(app, "worker", tmp_path, **watchdog)
    procs = [first]
    try:
        deadline = time.monotonic() + 90
        while not redis.exists(f"{pause}:reached"):
            assert first.poll() is None, tail(first)
            assert time.monotonic() < deadline, "the worker never reached the pause point: " + tail(first)
            time.sleep(0.05)
        assert int(redis.get(f"{pause}:reached")) == first.pid            # the job runs in the worker itself
        assert Job.fetch(job.id, connection=redis).get_status() == "started"
        first.send_signal(signal.SIGKILL)                                   # mid-settlement, debit not committed
        first.wait(10)
        killed = time.monotonic()
        redis.delete(pause)
        with app.app_context():
            assert fresh(ChargeOrder, order_id).status == "finished"
            assert entries(order_id) == [] and balance(member_id) == Decimal("100.0000")

        second = start(app, "worker", tmp_path, **watchdog)
        cron = start(app, "cron", tmp_path, CRON_CONFIG=str(cron_file), **watchdog)
        procs += [second, cron]
        with app.app_context():
            while fresh(ChargeOrder, order_id).status != "settled":
                assert time.monotonic() - killed < 60, (
                    f"not settled within a minute\nworker: {tail(second)}\ncron: {tail(cron)}")
                time.sleep(0.2)
        settled_after = time.monotonic() - killed
    finally:
        for proc in procs:
            stop(proc)
    assert settled_after < 60
    assert int(redis.get(f"{pause}:reached")) == second.pid               # the watchdog's run, in worker 2
    with app.app_context():
        order = fresh(ChargeOrder, order_id)
        assert order.status == "settled" and order.paid_amount == order.total_amount == Decimal("29.7000")
        assert len(entries(order_id)) == 1 and entries(order_id)[0].amount == Decimal("-29.7000")
        assert balance(member_id) == Decimal("70.3000") == ledger_balance(member_id)
        assert len([e for e in order.events if e.event == "settled"]) == 1


def test_the_watchdogs_are_in_the_cron_config(app):
    """``run.py cron`` loads app/tasks/cron_config.py: the settlement watchdog and the gateway sweep
    backstop are registered with their configured intervals."""
    with app.app_context():
        scheduler = CronScheduler(connection=get_redis())
    scheduler.load_config_from_file(os.path.join(ROOT, "app", "tasks", "cron_config.py"))
    jobs = {job.func_name: job for job in scheduler.get_jobs()}
    settle = jobs["app.tasks.settlement.settle_stalled"]
    sweep = jobs["app.tasks.maintenance.sweep_gateway_nodes"]
    assert settle.interval == app.config["SETTLEMENT_WATCHDOG_SECONDS"] and settle.queue_name == "settlement"
    assert sweep.interval == app.config["GATEWAY_SWEEP_CRON_SECONDS"]
    assert settle.interval + app.config["SETTLEMENT_STALE_SECONDS"] < 60      # within a minute by default
