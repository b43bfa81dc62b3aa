"""RQ jobs of the charging flow: stop at the spending limit, and the periodic watchdogs."""
from rq import Retry


def enqueue_stop(order_id, reason):
    from rq import Queue

    from app.extensions import get_redis

    Queue("default", connection=get_redis()).enqueue(
        stop_order, order_id, reason, job_id=f"autostop-{order_id}", retry=Retry(max=2, interval=[5, 15]))


def stop_order(order_id, reason):
    from app.services import charging

    try:
        charging.stop_charge(order_id, by="system", reason=reason)
    except charging.ChargingError as exc:
        return str(exc)
    return "stop sent"


def flush_samples():
    from app.services import charging

    return charging.flush_samples()


def start_timeouts():
    from app.services import charging

    return charging.fail_start_timeouts()


def stuck_sessions():
    from app.services import charging

    return charging.check_stuck_sessions()


def missing_bills():
    from app.services import charging

    return charging.check_missing_bills()
