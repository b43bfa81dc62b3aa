"""Periodic jobs for ``rq cron app/tasks/cron_config.py`` (and ``python run.py cron``)."""
from rq import cron

from app.tasks.charging_jobs import flush_samples, missing_bills, reprocess_bills, start_timeouts, stuck_sessions
from app.tasks.maintenance import cron_heartbeat
from app.tasks.orders import accrue_occupancy

cron.register(cron_heartbeat, queue_name="default", interval=60)
cron.register(accrue_occupancy, queue_name="default", interval=60)   # occupancy accrual, every minute
cron.register(start_timeouts, queue_name="default", interval=30)     # no charging 90 s after a start
cron.register(flush_samples, queue_name="default", interval=60)      # backstop of the gateway's flusher
cron.register(missing_bills, queue_name="default", interval=120)     # no bill N minutes after a stop
cron.register(reprocess_bills, queue_name="default", interval=60)    # bills left 'received' (intake failed)
cron.register(stuck_sessions, queue_name="default", interval=300)    # no realtime data while charging

# Fault recovery (issue 8): a dead gateway node's piles go offline (the live nodes sweep it within two
# heartbeats; this is the backstop when none is left), and finished orders whose settlement job was lost
# or killed with its worker are settled within a minute.
from app.tasks.maintenance import sweep_gateway_nodes  # noqa: E402
from app.tasks.settlement import settle_stalled  # noqa: E402
from config import get_config  # noqa: E402

cron.register(sweep_gateway_nodes, queue_name="default", interval=get_config().GATEWAY_SWEEP_CRON_SECONDS)
cron.register(settle_stalled, queue_name="settlement", interval=get_config().SETTLEMENT_WATCHDOG_SECONDS)
