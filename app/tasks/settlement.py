"""Settlement job (queue ``settlement``); enqueue with :func:`app.services.settlement.enqueue_settlement`."""
import logging

log = logging.getLogger(__name__)


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
