"""Partner endpoint down, then a worker killed mid-push: every push is retried and delivered, none lost,
none recorded twice. Real ``python run.py worker`` processes (RQ scheduler for the retries), a real HTTP
partner, time compressed: the retry interval is 1 s instead of 60 s, "2 minutes down" is 2 s.
"""
import os
import signal
import time

import pytest
from rq import Queue
from rq.registry import StartedJobRegistry
from sqlalchemy import select

from app.extensions import db, get_redis
from app.models import ChargeOrder, Connector, Partner
from app.services import interconnect_push
from tests.integration.gateway.conftest import WorkerProcess, wait_until
from tests.interconnect.push_support import logs, new_partner, partner_order, quiet_others

WORKER_ENV = {"TCEC_PUSH_RETRY_INTERVAL": 1, "TCEC_PUSH_RETRY_MAX": 3, "TCEC_PARTNER_CACHE_SECONDS": 0}


@pytest.fixture(autouse=True)
def ctx(app):
    saved = {k: app.config[k] for k in ("TCEC_PUSH_RETRY_INTERVAL", "TCEC_PUSH_RETRY_MAX", "TCEC_PUSH_STALE_SECONDS")}
    app.config.update(TCEC_PUSH_RETRY_INTERVAL=1, TCEC_PUSH_RETRY_MAX=3, TCEC_PUSH_STALE_SECONDS=1)
    with app.app_context():
        yield
        db.session.remove()
    app.config.update(saved)


def _seqs(platform, interface, key):
    return [d[key] for d in platform.requests_for(interface)]


def test_partner_down_then_worker_killed_mid_push(app):
    platform, partner_id = new_partner("retry")
    worker = None
    try:
        with quiet_others({partner_id}):
            partner = db.session.get(Partner, partner_id)
            orders = [partner_order(partner_id) for _ in range(4)]
            seqs = {db.session.get(ChargeOrder, o).partner_order_no for o in orders}
            codes = db.session.scalars(select(Connector.code).where(Connector.operator_id == partner.operator_id)
                                       .order_by(Connector.id).limit(3)).all()

            # 1) the partner is down ("2 minutes" = 2 s): every push fails at first, is retried, delivered
            platform.refuse_connections()
            down_at = time.monotonic()
            for order_id in orders[:2]:
                interconnect_push.push_order(order_id)
            for code in codes:
                interconnect_push.queue_push(partner, "notification_stationStatus", business_key=code)
            worker = WorkerProcess(app, "push-a", **WORKER_ENV)
            def ours():       # (a pile of the gateway tests going offline may push its gun's status too)
                return [r for r in logs(partner_id) if r.interface == "notification_charge_order_info"
                        or (r.interface == "notification_stationStatus" and r.business_key in codes)]

            wait_until(lambda: any(r.attempts >= 1 and r.status == "retrying" for r in ours()), 30, 0.1,
                       "a failed first attempt")
            time.sleep(max(0.0, 2.0 - (time.monotonic() - down_at)))
            platform.accept_connections()
            wanted = 2 + len(codes)

            wait_until(lambda: sum(r.status == "success" for r in ours()) == wanted, 60, 0.2,
                       "delivered after recovery")
            first = ours()
            assert len(first) == wanted, "one row per push, retries update it"
            assert all(r.status == "success" for r in first)
            assert max(r.attempts for r in first) >= 2, "pushes were retried"
            assert set(_seqs(platform, "notification_charge_order_info", "StartChargeSeq")) == \
                {db.session.get(ChargeOrder, o).partner_order_no for o in orders[:2]}
            assert sorted(d["ConnectorStatusInfo"]["ConnectorID"]
                          for d in platform.requests_for("notification_stationStatus")
                          if d["ConnectorStatusInfo"]["ConnectorID"] in codes) == sorted(codes)

            # 2) a worker killed (SIGKILL) while its push waits for the partner's answer
            platform.delay = 2.0
            for order_id in orders[2:]:
                interconnect_push.push_order(order_id)
            registry = StartedJobRegistry("push", connection=get_redis())
            wait_until(lambda: registry.count >= 1, 30, 0.05, "a push in flight")
            time.sleep(0.3)
            os.kill(worker.proc.pid, signal.SIGKILL)
            worker.proc.wait(10)
            worker = None
            platform.delay = 0.0
            time.sleep(1.5)                                   # TCEC_PUSH_STALE_SECONDS = 1
            report = interconnect_push.watchdog()             # the cron tick: lost jobs enqueued again
            assert report["enqueued"], "the killed push is enqueued again"
            worker = WorkerProcess(app, "push-b", **WORKER_ENV)
            wait_until(lambda: [r.status for r in logs(partner_id, "notification_charge_order_info")]
                       == ["success"] * 4, 60, 0.2, "delivered after the kill")
            rows = logs(partner_id, "notification_charge_order_info")
            assert len(rows) == 4 and all(r.status == "success" for r in rows)
            # no business event lost; at most the one in flight at the kill arrived twice at the partner
            received = _seqs(platform, "notification_charge_order_info", "StartChargeSeq")
            assert set(received) == seqs
            assert len(received) <= 5
            # nothing left to run
            assert Queue("push", connection=get_redis()).count == 0
    finally:
        if worker is not None:
            worker.stop()
        platform.stop()
        partner = db.session.get(Partner, partner_id)
        partner.push_enabled = False
        db.session.commit()


def test_retries_exhausted_marks_failed(app):
    from tests.interconnect.push_support import drain

    platform, partner_id = new_partner("fail")
    try:
        with quiet_others({partner_id}):
            platform.down = True                               # HTTP 503 on everything
            order_id = partner_order(partner_id)
            row = interconnect_push.push_order(order_id)
            drain(app, timeout=60)
            db.session.expire_all()
            rows = logs(partner_id, "notification_charge_order_info")
            assert [r.id for r in rows] == [row.id]
            assert rows[0].status == "failed" and rows[0].attempts == 4 and rows[0].http_status == 503
    finally:
        platform.stop()
        db.session.get(Partner, partner_id).push_enabled = False
        db.session.commit()
