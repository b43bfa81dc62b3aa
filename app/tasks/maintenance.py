"""Housekeeping jobs."""
import time


def cron_heartbeat():
    """Records that the cron scheduler and a worker are alive (shown by the health check)."""
    from app.extensions import get_redis

    get_redis().set("cpms:cron:last_beat", str(time.time()), ex=3600)
    return "ok"
