"""待处理数据 (set-aside data): what the platform could not process on its own, for platform staff.

- realtime samples the sample flush set aside (their order does not exist, an unreadable or refused
  value), with the reason (:func:`app.services.charging.set_aside_samples`);
- pile bills stored and acknowledged but still ``received`` (their intake failed); the
  ``reprocess_bills`` cron job retries them (:func:`app.services.charging.unprocessed_bills`).

Platform-wide (a set-aside sample may belong to no order, so to no operator): platform admins only
(``SetAsideDataView`` in :mod:`app.security.policy`).
"""
from flask_appbuilder import BaseView, expose, has_access

from app.services import charging
from app.views.base import local_time


class SetAsideDataView(BaseView):
    route_base = "/setasidedata"
    default_view = "list"
    base_permissions = ["can_list"]

    @expose("/")
    @has_access
    def list(self):
        held, total = charging.set_aside_count()
        bill_count, bills = charging.unprocessed_bills()
        return self.render_template("orders/set_aside.html", held=held, total=total,
                                    samples=charging.set_aside_samples(), bill_count=bill_count, bills=bills,
                                    local_time=local_time)
