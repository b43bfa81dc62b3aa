"""告警 (alarms): acknowledgement, the one write path for staff on an alarm.

Alarms are opened and closed by the gateway (0x13 fault status / hardware fault bits); staff
acknowledge them once, with a note, which records who and when and sets the handling status.
Alarms are history: never deleted.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.extensions import db
from app.models import Alarm
from app.security.scope import apply_scope, check_item
from app.services.clock import utcnow

ACK_STATUSES = ("handled", "ignored")


class AlarmError(ValueError):
    """An acknowledgement that cannot be done; the message says why."""


def get_in_scope(alarm_id: int) -> Alarm | None:
    """The alarm if it exists within the caller's data scope."""
    return db.session.scalar(apply_scope(select(Alarm).where(Alarm.id == alarm_id), Alarm))


def acknowledge(alarm_id: int, user, note: str, status: str = "handled") -> Alarm:
    """Acknowledge an alarm once: who, when, the note; its handling status becomes ``status``."""
    alarm = get_in_scope(alarm_id)
    if alarm is None:
        raise AlarmError(_l("No such alarm."))
    if alarm.acknowledged_at is not None:
        raise AlarmError(_l("This alarm was already acknowledged."))
    note = (note or "").strip()
    if not note:
        raise AlarmError(_l("A note is required."))
    if status not in ACK_STATUSES:
        raise AlarmError(_l("Unknown handling status."))
    now = utcnow()
    alarm.acknowledged_at = alarm.handled_at = now
    alarm.acknowledged_by_id = alarm.handled_by_id = getattr(user, "id", None)
    alarm.acknowledged_by_name = (getattr(user, "username", None) or "")[:64] or None
    alarm.ack_note = note[:255]
    alarm.handle_status = status
    check_item(alarm)
    db.session.commit()
    return alarm
