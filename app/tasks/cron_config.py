"""Periodic jobs for ``rq cron app/tasks/cron_config.py`` (and ``python run.py cron``)."""
from rq import cron

from app.tasks.maintenance import cron_heartbeat

cron.register(cron_heartbeat, queue_name="default", interval=60)
