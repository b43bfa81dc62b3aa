"""电桩指令 (pile command panel): live state of a pile and its guns from the gateway, and commands
(reboot, time sync, push price, power limit, read realtime) for roles with ``can_command``.

Permissions: ``can_read`` on PileCommandView (part of READ_PERMS: read-only staff see the panel)
and ``can_command`` (never given to OperatorStaff). Every request checks the pile's data scope.
Register with :func:`register` (no menu entry: the pile list/show links here).
"""

from flask import abort, flash, jsonify, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import gettext as _

from app.extensions import db, get_redis
from app.models import Pile
from app.models.pile import CONNECTOR_STATUS
from app.security.scope import in_scope
from app.services import pile_commands
from app.services.live_state import panel_state, to_jsonable
from app.views.base import local_time
from app.views.formatters import reply_summary

VIEW_NAME = "PileCommandView"


class PileCommandView(BaseView):
    route_base = "/pilecommand"
    default_view = "panel"
    base_permissions = ["can_read", "can_command"]
    method_permission_name = {"panel": "read", "live": "read", "command": "command"}

    def _pile(self, pk: int) -> Pile:
        pile = db.session.get(Pile, pk)
        if pile is None or not in_scope(pile):
            abort(404)
        return pile

    @expose("/<int:pk>")
    @has_access
    def panel(self, pk):
        pile = self._pile(pk)
        return self.render_template(
            "gateway/pile_panel.html", pile=pile, state=panel_state(get_redis(), pile),
            can_command=self.appbuilder.sm.has_access("can_command", VIEW_NAME),
            status_labels=dict(CONNECTOR_STATUS), local_time=local_time)

    @expose("/<int:pk>/live")
    @has_access
    def live(self, pk):
        state = panel_state(get_redis(), self._pile(pk))
        data = to_jsonable(state)
        data["last_heartbeat_local"] = local_time(state["last_heartbeat"]) or None
        for gun, raw in zip(data["guns"], state["guns"], strict=True):
            gun["updated_local"] = local_time(raw["updated_at"]) or None
        return jsonify(data)

    @expose("/<int:pk>/command", methods=["POST"])
    @has_access
    def command(self, pk):
        pile = self._pile(pk)
        action = request.form.get("action", "")
        try:
            accepted, reply = pile_commands.panel_command(
                pile.code, action, gun_no=request.form.get("gun", type=int),
                power_limit=request.form.get("power_limit", type=int))
        except pile_commands.PileOffline:
            flash(_("The pile is offline."), "warning")
        except pile_commands.CommandTimeout:
            flash(_("The pile did not answer in time."), "warning")
        except (pile_commands.CommandError, ValueError) as exc:
            flash(str(exc), "danger")
        else:
            if reply is None:
                flash(_("A gun is charging: the price will be sent to the pile once no gun is charging."), "info")
                return redirect(url_for(f"{VIEW_NAME}.panel", pk=pk))
            level = "success" if accepted else "warning"
            text = _("The pile accepted the command.") if accepted else _("The pile refused the command.")
            flash(f"{text} {reply_summary(reply)}", level)
        return redirect(url_for(f"{VIEW_NAME}.panel", pk=pk))


def register(appbuilder):
    """Add the panel (no menu entry; link to ``url_for('PileCommandView.panel', pk=pile.id)``)."""
    appbuilder.add_view_no_menu(PileCommandView)
