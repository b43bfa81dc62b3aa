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

# Daily statistics (issue 12): today's rows every 5 minutes, yesterday's final rows 10 minutes after
# local midnight (TIMEZONE; rq cron speaks UTC). Rebuild a range: ``flask stats recompute``.
from app.tasks.stats import after_local_midnight_cron, finalize_yesterday_stats, refresh_today_stats  # noqa: E402

cron.register(refresh_today_stats, queue_name="default", interval=300)
cron.register(finalize_yesterday_stats, queue_name="default",
              cron=after_local_midnight_cron(10, get_config().TIMEZONE))

# Interconnect (T/CEC 102, issue 10): charging snapshots of partner orders (every 50 s), lost-push watchdog,
# regulators' schedule, and the daily check_charge_orders (hourly tick; runs once per partner after local
# midnight + TCEC_RECONCILE_AFTER_MINUTES for the previous local day).
from app.tasks.interconnect import (  # noqa: E402
    charging_snapshots,
    push_watchdog,
    reconcile_partners,
    regulator_pushes,
)

cron.register(charging_snapshots, queue_name="push", interval=get_config().TCEC_CHARGE_STATUS_INTERVAL)
cron.register(push_watchdog, queue_name="push", interval=get_config().TCEC_PUSH_WATCHDOG_SECONDS)
cron.register(regulator_pushes, queue_name="push", interval=get_config().TCEC_REGULATOR_PUSH_SECONDS)
cron.register(reconcile_partners, queue_name="push", cron="*/15 * * * *")

# Coupons (issue 13): unused coupons past their validity are marked expired (the member API already shows
# them as expired in between).
from app.tasks.marketing import expire_coupons  # noqa: E402

cron.register(expire_coupons, queue_name="default", interval=600)

# Payments (issue 11): refunds due are sent every minute (retried up to PAYMENT_REFUND_MAX_ATTEMPTS times); payments
# still open after PAYMENT_PENDING_QUERY_MINUTES are asked about at WeChat Pay.
from app.tasks.payments import process_refunds, query_pending_payments  # noqa: E402

cron.register(process_refunds, queue_name="default", interval=60)
cron.register(query_pending_payments, queue_name="default", interval=get_config().PAYMENT_QUERY_CRON_SECONDS)
