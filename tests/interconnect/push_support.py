"""Helpers of the push / reconciliation / partner-station tests: a Partner row wired to a real
:class:`~tests.interconnect.partner_platform.PartnerPlatform` (HTTP on port 0), partner orders, and an
in-process RQ worker draining the ``push`` queue (burst, with the scheduler for retries)."""
from __future__ import annotations

import time
import uuid
from contextlib import contextmanager
from decimal import Decimal

from rq import Queue, SimpleWorker
from sqlalchemy import select

from app.extensions import db, get_redis
from app.models import ChargeOrder, Operator, Partner, PushLog
from tests.interconnect.e2e_support import keys_for, partner_keys
from tests.interconnect.partner_platform import PartnerPlatform

OPERATOR = "MA1NJ0001"


def operator_id():
    return db.session.scalar(select(Operator.id).where(Operator.code == OPERATOR))


def new_partner(tag: str, platform_cls=PartnerPlatform, partner_type="platform", operator_pk=None, **platform_kw):
    """A started PartnerPlatform and the Partner row (operator MA1NJ0001) pointing at it: (platform, id).
    Other partners of the operator stop receiving pushes while the test runs (see ``quiet_others``)."""
    code = f"P{uuid.uuid4().hex[:8].upper()}"
    operator = db.session.get(Operator, operator_pk or operator_id())
    fields = partner_keys(code, operator.code, tag)
    calling_us, being_called = keys_for(fields)
    platform = platform_cls(code, calling_us, being_called, **platform_kw).start()
    partner = Partner(operator_id=operator.id, name=f"测试平台{tag}", partner_type=partner_type,
                      base_url=platform.root_url + "/", push_enabled=True, enabled=True, **fields)
    db.session.add(partner)
    db.session.commit()
    return platform, partner.id


@contextmanager
def quiet_others(keep_ids):
    """push_enabled off for every other partner (the demo ones point at a closed port)."""
    others = db.session.scalars(select(Partner).where(Partner.id.not_in(list(keep_ids)),
                                                      Partner.push_enabled.is_(True))).all()
    ids = [p.id for p in others]
    for p in others:
        p.push_enabled = False
    db.session.commit()
    try:
        yield
    finally:
        for pid in ids:
            db.session.get(Partner, pid).push_enabled = True
        db.session.commit()


def partner_order(partner_id, status="finished", **kw):
    """A priced order of MA1NJ0001 (tests/integration/orders factory) made a partner order."""
    from tests.integration.orders.test_settlement import make_order, new_member

    order_id = make_order(new_member("100"), status="stopping" if kw.get("price", True) else status, **kw)
    order = db.session.get(ChargeOrder, order_id)
    partner = db.session.get(Partner, partner_id)
    order.partner_id = partner_id
    order.channel_id = partner.channel_id
    order.partner_order_no = f"{partner.partner_operator_code}{uuid.uuid4().int % 10**18:018d}"
    order.start_method = "partner"
    db.session.commit()
    assert order.status == status, order.status
    return order_id


def drain(app, timeout=30.0, until=None):
    """Run the push queue in this process until it is empty and nothing is scheduled (or ``until()``)."""
    redis = get_redis()
    queue = Queue("push", connection=redis)
    deadline = time.monotonic() + timeout
    while True:
        SimpleWorker([queue], connection=redis).work(burst=True, with_scheduler=True)
        db.session.expire_all()
        pending = queue.count + queue.scheduled_job_registry.count
        if (until() if until else pending == 0):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"push queue not drained in {timeout} s ({pending} left)")
        time.sleep(0.2)


def logs(partner_id, interface=None):
    db.session.expire_all()
    query = select(PushLog).where(PushLog.partner_id == partner_id, PushLog.direction == "out")
    if interface:
        query = query.where(PushLog.interface == interface)
    return db.session.scalars(query.order_by(PushLog.id)).all()


def D(text):
    return Decimal(text)
