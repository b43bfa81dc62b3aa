"""Periodic order jobs (registered in ``app/tasks/cron_config.py``).

Occupancy accrual lives here; the start-timeout, stuck-session and missing-bill watchdogs of the
charging flow are added beside it.
"""
from app.security.scope import platform_job


@platform_job("occupancy-accrual")
def accrue_occupancy(now=None):
    """Every minute: start / update / end occupancy orders from the last known connector states."""
    from datetime import datetime

    from app.services.occupancy import accrue

    return accrue(datetime.fromisoformat(now) if isinstance(now, str) else now)
