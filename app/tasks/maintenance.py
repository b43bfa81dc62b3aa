"""Housekeeping jobs."""
import time

from app.security.scope import platform_job


@platform_job("cron-heartbeat")
def cron_heartbeat():
    """Records that the cron scheduler and a worker are alive (shown by the health check)."""
    from app.extensions import get_redis

    get_redis().set("cpms:cron:last_beat", str(time.time()), ex=3600)
    return "ok"


@platform_job("gateway-sweep")
def sweep_gateway_nodes():
    """Backstop of the gateway nodes' own sweep (no node alive to do it): piles of dead gateway
    nodes go offline (:func:`app.services.gateway_nodes.sweep_dead_nodes`)."""
    from app.extensions import get_redis
    from app.services.gateway_nodes import sweep_dead_nodes

    return sweep_dead_nodes(get_redis())
