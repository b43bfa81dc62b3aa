"""Daily statistics jobs (registered in ``app/tasks/cron_config.py``); the work is in
:mod:`app.services.stats`."""
from app.security.scope import platform_job


@platform_job("daily-stats")
def refresh_today_stats():
    """Every few minutes: today's rows, and the days of orders changed since the last run."""
    from app.services.stats import refresh_today

    return refresh_today()


@platform_job("daily-stats")
def finalize_yesterday_stats():
    """Shortly after local midnight: yesterday's final rows."""
    from app.services.stats import finalize_yesterday

    return finalize_yesterday()


def after_local_midnight_cron(minute=10, tz=None):
    """Cron expression (rq cron runs in UTC) for ``minute`` minutes past local midnight in ``TIMEZONE``."""
    from datetime import datetime, time, timedelta

    from app.services.clock import local_to_utc, local_today

    at = local_to_utc(datetime.combine(local_today() + timedelta(days=1), time(0, minute)), tz)
    return f"{at.minute} {at.hour} * * *"
