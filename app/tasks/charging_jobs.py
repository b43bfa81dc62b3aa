"""RQ jobs of the charging flow: stop at the spending limit, and the periodic watchdogs.
Platform jobs: each runs in its named :func:`app.security.scope.platform_scope`."""
from rq import Retry

from app.security.scope import platform_job


def enqueue_stop(order_id, reason):
    from rq import Queue

    from app.extensions import get_redis

    Queue("default", connection=get_redis()).enqueue(
        stop_order, order_id, reason, job_id=f"autostop-{order_id}", retry=Retry(max=2, interval=[5, 15]))


@platform_job("autostop")
def stop_order(order_id, reason):
    from app.services import charging

    try:
        charging.stop_charge(order_id, by="system", reason=reason)
    except charging.ChargingError as exc:
        return str(exc)
    return "stop sent"


@platform_job("flush-samples")
def flush_samples():
    from app.services import charging

    return charging.flush_samples()


@platform_job("start-timeouts")
def start_timeouts():
    from app.services import charging

    return charging.fail_start_timeouts()


@platform_job("stuck-sessions")
def stuck_sessions():
    from app.services import charging

    return charging.check_stuck_sessions()


@platform_job("missing-bills")
def missing_bills():
    from app.services import charging

    return charging.check_missing_bills()


@platform_job("reprocess-bills")
def reprocess_bills(now=None):
    """Bills stored (and acknowledged with 0x40) whose intake failed: run them through again.
    ``now`` (ISO, naive UTC) only for tests that compress time."""
    from datetime import datetime

    from app.services import charging

    return charging.reprocess_bills(datetime.fromisoformat(now) if isinstance(now, str) else now)
