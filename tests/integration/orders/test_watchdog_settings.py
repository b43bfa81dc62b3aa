"""The order watchdogs obey the settings operators set (issue 9): ``BILL_MISSING_MINUTES`` was
ignored (the code read ``CHARGING_BILL_MISSING_MINUTES``), and ``CHARGING_STUCK_MINUTES``,
``CHARGING_START_TIMEOUT`` and ``CHARGING_MIN_BALANCE`` were not settings at all. Each test sets
the key below its default and checks the watchdog acts on a real order accordingly (and does not
act before the set time). tests/unit/test_config_keys.py checks config.py reads them from the
environment."""
from datetime import timedelta
from decimal import Decimal

import pytest

from app.extensions import db
from app.models import OrderEvent, utcnow
from app.services import charging
from tests.integration.orders.test_charging_flow import demo_gun, member_of, new_order

OPERATOR_B = "MA1NJ0002"


@pytest.fixture
def setting(app, monkeypatch):
    def _set(name, value):
        monkeypatch.setitem(app.config, name, value)

    return _set


def _close(order):
    order.status = "failed"
    db.session.commit()
    charging._forget(order)


def test_bill_missing_minutes_is_the_setting_read(app, setting):
    setting("BILL_MISSING_MINUTES", 7)
    with app.app_context():
        gun = demo_gun(OPERATOR_B, 2)
        order = new_order(gun, member_of(gun), status="stopping")
        stopped = utcnow() - timedelta(minutes=8)
        db.session.add(OrderEvent(order=order, operator_id=order.operator_id, event="stop_requested",
                                  to_status="stopping", created_at=stopped))
        db.session.commit()
        charging.check_missing_bills(now=stopped + timedelta(minutes=6))     # before 7 minutes: nothing
        db.session.refresh(order)
        assert order.status == "stopping"
        charging.check_missing_bills(now=stopped + timedelta(minutes=8))     # the default (10) would wait
        db.session.refresh(order)
        assert order.status == "abnormal" and "No bill" in order.abnormal_reason


def test_charging_start_timeout_is_the_setting_read(app, setting):
    setting("CHARGING_START_TIMEOUT", 30)
    with app.app_context():
        gun = demo_gun(OPERATOR_B, 3)
        order = new_order(gun, member_of(gun), status="starting")
        requested = utcnow() - timedelta(seconds=40)
        order.start_requested_at = requested
        db.session.commit()
        charging.fail_start_timeouts(now=requested + timedelta(seconds=20))
        db.session.refresh(order)
        assert order.status == "starting"
        charging.fail_start_timeouts(now=requested + timedelta(seconds=40))  # the default (90) would wait
        db.session.refresh(order)
        assert order.status == "failed" and order.failure_reason == "The pile did not start charging in time."


def test_charging_stuck_minutes_is_the_setting_read(app, setting):
    setting("CHARGING_STUCK_MINUTES", 3)
    with app.app_context():
        gun = demo_gun(OPERATOR_B, 4)
        order = new_order(gun, member_of(gun), status="charging")
        last = utcnow() - timedelta(minutes=4)
        order.live_updated_at = last
        db.session.commit()
        charging.check_stuck_sessions(now=last + timedelta(minutes=2))
        db.session.refresh(order)
        assert order.status == "charging"
        # 4 minutes without data (the default, 10, would wait): the pile is asked, it is not
        # connected to any gateway, so the order is abnormal
        charging.check_stuck_sessions(now=last + timedelta(minutes=4))
        db.session.refresh(order)
        assert order.status == "abnormal" and "No realtime data" in order.abnormal_reason
        _close(order)


def test_charging_min_balance_is_the_setting_read(app, setting):
    setting("CHARGING_MIN_BALANCE", "12.50")
    with app.app_context():
        assert charging.min_balance() == Decimal("12.50")
