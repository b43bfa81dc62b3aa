"""电站监控 (station monitor): connector cards with live state from Redis, refreshed by the page
from a JSON endpoint, and a gun's 状态日志 as a timeline. Everything within the data scope."""

import re

from flask import abort, jsonify, request
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.security.decorators import permission_name
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.models.pile import CONNECTOR_STATUS
from app.services import monitor, reports
from app.services.order_queries import duration_text
from app.views.formatters import display_text, iso_local, local_time

MONITOR_PAGE_SIZE = 48
MONITOR_REFRESH_SECONDS = 3       # the page polls /live this often (the issue asks for <= 5 s)


def _filters(args):
    return {
        "station_id": args.get("station", type=int),
        "pile_name": args.get("pile_name") or None,
        "pile_code": args.get("pile_code") or None,
        "connector_code": args.get("connector_code") or None,
    }


# status log reasons the gateway writes (app/gateway/session.py, state_writer.py, gateway_nodes.py)
STATUS_REASONS = {
    "0x13": _l("Realtime data (0x13)"),
    "login": _l("Pile login"),
    "closed": _l("Connection closed"),
    "socket closed": _l("Connection closed by the pile"),
    "socket error": _l("Connection error"),
    "internal error": _l("Gateway internal error"),
    "garbage only": _l("Unreadable data only"),
    "login refused": _l("Login refused"),
    "login timeout": _l("No login in time"),
    "heartbeat timeout": _l("Heartbeat timeout"),
    "gateway stopping": _l("Gateway stopping"),
    "gateway restarted": _l("Gateway restarted"),
}
GATEWAY_GONE = re.compile(r"gateway (?P<node>\S+) gone")


def reason_text(reason):
    """A status log reason in the current language (unknown reasons through display_text)."""
    if not reason:
        return ""
    if reason.startswith("offline: "):
        return _("Offline: %(reason)s", reason=reason_text(reason.removeprefix("offline: ")))
    if reason in STATUS_REASONS:
        return str(STATUS_REASONS[reason])
    m = GATEWAY_GONE.fullmatch(reason)
    if m:
        return _("Gateway node %(node)s gone", node=m.group("node"))
    return display_text(reason)


def _status_label(status):
    label = dict(CONNECTOR_STATUS).get(status)
    return _(label) if label else (status or "-")


class StationMonitorView(BaseView):
    route_base = "/stationmonitor"
    default_view = "list"
    status_counters = [
        ("all", _l("All")),
        ("charging", _l("Charging")),
        ("occupied", _l("Occupied")),
        ("idle", _l("Idle")),
        ("offline", _l("Offline")),
        ("fault", _l("Fault")),
        ("other", _l("Other")),
    ]

    def _page(self):
        filters = _filters(request.args)
        page = max(request.args.get("page", 0, type=int), 0)
        cards, total = monitor.connectors(page=page, page_size=MONITOR_PAGE_SIZE, **filters)
        for card in cards:
            card["status_label"] = _status_label(card["status"])
            card["updated_local"] = iso_local(card["updated_at"])
        return filters, page, cards, total

    @expose("/")
    @has_access
    def list(self):
        filters, page, cards, total = self._page()
        pages = (total + MONITOR_PAGE_SIZE - 1) // MONITOR_PAGE_SIZE
        return self.render_template(
            "cpms/monitor.html",
            summary=monitor.summary(**filters),
            cards=cards,
            total=total,
            page=page,
            pages=pages,
            filters=filters,
            stations=reports.station_choices(),
            counters=self.status_counters,
            refresh_ms=MONITOR_REFRESH_SECONDS * 1000,
        )

    @expose("/live")
    @has_access
    @permission_name("list")
    def live(self):
        """The page's cards and counters now (same filters and page as the page's URL), as JSON."""
        filters, _page, cards, total = self._page()
        summary = monitor.summary(**filters)
        keys = ("code", "status", "status_label", "updated_local", *monitor.LIVE_FIGURES)
        return jsonify({
            "summary": {k: str(v) for k, v in summary.items()},
            "total": total,
            "cards": [{k: card[k] for k in keys} for card in cards],
        })

    @expose("/timeline/<int:pk>")
    @has_access
    @permission_name("list")
    def timeline(self, pk):
        """状态日志 of one gun as a timeline (newest first, local times to the second)."""
        found = monitor.status_timeline(pk)
        if found is None:
            abort(404)
        connector, entries = found
        for e in entries:
            e["at_local"] = local_time(e["at"])
            e["status_label"] = _status_label(e["status"])
            e["previous_label"] = _status_label(e["previous_status"]) if e["previous_status"] else ""
            e["reason_text"] = reason_text(e["reason"])
            e["lasted"] = duration_text(e["seconds"])
        return self.render_template("cpms/monitor_timeline.html", connector=connector, entries=entries)
