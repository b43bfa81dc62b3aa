"""Settlement job (queue ``settlement``); enqueue with :func:`app.services.settlement.enqueue_settlement`."""
import logging

from app.security.scope import platform_job

log = logging.getLogger(__name__)


@platform_job("settlement")
def settle_order_job(order_id):
    """Settle one order exactly once. A run on an already settled order is a no-op; an order that is
    not settleable (abnormal, not finished) is reported and not retried. Other errors raise, so RQ
    retries (Retry(max=3, interval=[5, 30, 120]))."""
    from app.services.settlement import NotSettleable, settle_order

    try:
        return settle_order(order_id).as_dict()
    except NotSettleable as exc:
        log.warning("settlement of order %s skipped: %s", order_id, exc)
        return {"order_id": order_id, "skipped": str(exc)}


@platform_job("settlement-watchdog")
def settle_stalled(limit=1000):
    """Cron (every ``SETTLEMENT_WATCHDOG_SECONDS``): ``finished`` orders whose settlement is not on its
    way. Its job ``settle-{id}``:

    - waiting (queued, scheduled, deferred) -> left to the workers;
    - running for ``SETTLEMENT_STALE_SECONDS`` or more -> its worker died mid-run (a SimpleWorker
      killed with its job: RQ's own abandoned-job cleanup takes up to its maintenance interval) or
      hangs: the order is settled here. ``settle_order`` locks the order row and books the debit
      under its idempotency key, so a hanging run that finishes later is a no-op: exactly once;
    - gone, finished, stopped or canceled (the enqueue was lost with its process) -> enqueued again;
    - failed (retries exhausted: a real error) -> left for the operator (logged).
    """
    from flask import current_app
    from rq.exceptions import NoSuchJobError
    from rq.job import Job, JobStatus
    from sqlalchemy import select

    from app.extensions import db, get_redis
    from app.models import ChargeOrder
    from app.services import clock
    from app.services.settlement import NotSettleable, enqueue_settlement, settle_order

    redis = get_redis()
    stale = float(current_app.config.get("SETTLEMENT_STALE_SECONDS", 30))
    ids = db.session.scalars(select(ChargeOrder.id).where(ChargeOrder.status == "finished")
                             .order_by(ChargeOrder.id).limit(limit)).all()
    db.session.rollback()
    report = {"settled": [], "enqueued": [], "failed": []}
    waiting = (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED)
    for order_id in ids:
        try:
            job = Job.fetch(f"settle-{order_id}", connection=redis)
            status = job.get_status(refresh=False)
        except NoSuchJobError:
            job, status = None, None
        if status in waiting:
            continue
        if status == JobStatus.STARTED:
            started = job.started_at or job.enqueued_at
            # RQ's naive times are UTC
            if started is not None and (clock.utcnow() - clock.to_naive_utc(started)).total_seconds() < stale:
                continue
            log.warning("settlement job of order %s running since %s: its worker is gone; settling here",
                        order_id, started)
            try:
                settle_order(order_id)
            except NotSettleable as exc:
                log.warning("settlement of order %s skipped: %s", order_id, exc)
                continue
            report["settled"].append(order_id)
        elif status == JobStatus.FAILED:
            log.error("settlement of order %s failed (see the failed job registry)", order_id)
            report["failed"].append(order_id)
        else:
            enqueue_settlement(order_id, connection=redis)
            report["enqueued"].append(order_id)
    return report
