"""Payment jobs (registered in ``app/tasks/cron_config.py``): refunds and the pending-payment query."""
from app.security.scope import platform_job


@platform_job("payment-refunds")
def process_refunds():
    """Every minute: refunds of unused prepayments are written, pending refunds sent (each up to
    PAYMENT_REFUND_MAX_ATTEMPTS times), refunds processing for a while asked about."""
    from app.services import payments

    return payments.process_refunds()


@platform_job("payment-refund")
def send_refund(refund_id):
    """One refund sent now (queued after a member's refund request; the cron is the backstop)."""
    from app.services import payments

    refund = payments.send_refund(refund_id)
    return {"refund_id": refund_id, "status": refund.status if refund is not None else None}


@platform_job("payment-query")
def query_pending_payments():
    """Every PAYMENT_QUERY_CRON_SECONDS: payments still open PAYMENT_PENDING_QUERY_MINUTES after creation are
    asked about at WeChat Pay (credited if paid, closed if expired)."""
    from app.services import payments

    return payments.query_pending_payments()
