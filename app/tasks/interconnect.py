"""Interconnect (T/CEC 102) jobs, queue ``push``: thin wrappers of :mod:`app.services.interconnect_push`.
Platform jobs: each runs in its named :func:`app.security.scope.platform_scope`."""
from app.security.scope import platform_job


@platform_job("tcec-push")
def push_job(log_id):
    """One push (PushLog row ``log_id``); raises while it fails so RQ retries it."""
    from app.services.interconnect_push import send

    return send(log_id)


@platform_job("tcec-gun-status")
def gun_status_job(connector_ids):
    """The guns of one gateway batch whose status changed: their latest status to each platform partner."""
    from app.services.interconnect_push import push_gun_status

    return push_gun_status(connector_ids)


@platform_job("tcec-order-event")
def order_event_job(interface, order_id):
    from app.services.interconnect_push import push_order_event

    return push_order_event(interface, order_id)


@platform_job("tcec-charging-snapshots")
def charging_snapshots():
    """Cron (TCEC_CHARGE_STATUS_INTERVAL): notification_equip_charge_status of charging partner orders."""
    from app.services.interconnect_push import push_charging_snapshots

    return push_charging_snapshots()


@platform_job("tcec-push-watchdog")
def push_watchdog():
    """Cron: pushes whose job was lost (worker killed) are enqueued again."""
    from app.services.interconnect_push import watchdog

    return watchdog()


@platform_job("tcec-regulators")
def regulator_pushes():
    from app.services.interconnect_push import push_regulators

    return push_regulators()


@platform_job("tcec-reconcile")
def reconcile_partners():
    """Cron (hourly): check_charge_orders of the previous local day, once per partner and day."""
    from app.services.interconnect_push import reconcile_due

    return reconcile_due()
