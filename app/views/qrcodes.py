"""二维码: a QR code per gun (PNG, SVG), a printable PDF sheet per station, and the push of the QR
prefix to a station's piles (YKC 0xF0). Content and images come from app/services/qrcodes.py.

Permissions: ``can_read`` (READ_PERMS: read-only staff print codes) and ``can_push`` (operator admins).
Every request checks the row's data scope. No menu entry: the gun, pile and station screens link here.
"""
from flask import Response, abort, flash, redirect, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import gettext as _

from app.extensions import db
from app.models import Connector, Station
from app.security.scope import in_scope
from app.services import qrcodes

VIEW_NAME = "QrCodeView"


class QrCodeView(BaseView):
    route_base = "/qrcode"
    default_view = "gun_png"
    base_permissions = ["can_read", "can_push"]
    method_permission_name = {"gun_png": "read", "gun_svg": "read", "station_pdf": "read",
                              "push_station": "push"}

    def _row(self, model, pk):
        row = db.session.get(model, pk)
        if row is None or not in_scope(row):
            abort(404)
        return row

    @staticmethod
    def _file(data, mimetype, name, download):
        disposition = "attachment" if download else "inline"
        return Response(data, mimetype=mimetype, headers={
            "Content-Disposition": f'{disposition}; filename="{name}"', "Cache-Control": "no-store"})

    @expose("/gun/<int:pk>.png")
    @has_access
    def gun_png(self, pk):
        connector = self._row(Connector, pk)
        return self._file(qrcodes.png_bytes(connector), "image/png", f"{connector.code}.png", False)

    @expose("/gun/<int:pk>.svg")
    @has_access
    def gun_svg(self, pk):
        connector = self._row(Connector, pk)
        return self._file(qrcodes.svg_bytes(connector), "image/svg+xml", f"{connector.code}.svg", True)

    @expose("/station/<int:pk>.pdf")
    @has_access
    def station_pdf(self, pk):
        station = self._row(Station, pk)
        try:
            data = qrcodes.station_sheet_pdf(station)
        except qrcodes.QrError:
            flash(_("The station has no guns."), "warning")
            return redirect(url_for("StationView.show", pk=pk))
        return self._file(data, "application/pdf", f"qrcodes-{station.code}.pdf", False)

    @expose("/station/<int:pk>/push", methods=["POST"])
    @has_access
    def push_station(self, pk):
        station = self._row(Station, pk)
        try:
            out = qrcodes.push_to_station(station.id)
        except qrcodes.QrError as exc:
            flash(str(exc), "danger")
        else:
            if not any(out.values()):
                flash(_("No pile of this station has a model that takes the QR prefix."), "warning")
            else:
                flash(_("QR prefix pushed: %(ok)s accepted, %(refused)s refused, %(offline)s offline, "
                        "%(timeout)s did not answer.", ok=len(out["accepted"]), refused=len(out["refused"]),
                        offline=len(out["offline"]), timeout=len(out["timeout"])),
                      "success" if not (out["refused"] or out["timeout"]) else "warning")
        return redirect(url_for("StationView.show", pk=pk))


def register(appbuilder):
    """Add the view (no menu entry; the connector, pile and station screens link here)."""
    appbuilder.add_view_no_menu(QrCodeView)
