"""Periodic jobs for ``rq cron app/tasks/cron_config.py`` (and ``python run.py cron``)."""
from rq import cron

from app.tasks.charging_jobs import flush_samples, missing_bills, start_timeouts, stuck_sessions
from app.tasks.maintenance import cron_heartbeat
from app.tasks.orders import accrue_occupancy

cron.register(cron_heartbeat, queue_name="default", interval=60)
cron.register(accrue_occupancy, queue_name="default", interval=60)   # occupancy accrual, every minute
cron.register(start_timeouts, queue_name="default", interval=30)     # no charging 90 s after a start
cron.register(flush_samples, queue_name="default", interval=60)      # backstop of the gateway's flusher
cron.register(missing_bills, queue_name="default", interval=120)     # no bill N minutes after a stop
cron.register(stuck_sessions, queue_name="default", interval=300)    # no realtime data while charging
