"""互联互通 (client side): 对账差异 (reconciliation disputes) and 获取充电站 (partner stations).

- :class:`ReconciliationDisputeView`: disputed orders of check_charge_orders, both directions, with both
  sides' figures. History rows: read-only, no delete.
- :class:`PartnerStationView`: stations pulled from a partner's query_stations_info (list with filters,
  detail page with equipment and connectors); ``/fetch/`` lists the partners and pulls one (POST).
"""
from flask import abort, flash, redirect, request, url_for
from flask_appbuilder import expose, has_access
from flask_appbuilder.security.decorators import permission_name
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.models import Partner
from app.models.interconnect import (
    DISPUTE_DIRECTION,
    DISPUTE_REASON,
    PARTNER_STATION_STATUS,
    PARTNER_STATION_TYPE,
    PartnerStation,
    ReconciliationDispute,
)
from app.security.scope import apply_scope
from app.views.base import CpmsModelView, ScopedSQLAInterface
from app.views.stations import labels

READ_ONLY = ["can_list", "can_show", "can_export"]

EQUIPMENT_TYPE = {1: _l("DC"), 2: _l("AC"), 3: _l("AC/DC"), 4: _l("Wireless"), 5: _l("Other")}
CONNECTOR_TYPE = {1: _l("Household socket"), 2: _l("AC socket"), 3: _l("AC plug with cable"),
                  4: _l("DC gun with cable"), 5: _l("Wireless pad"), 6: _l("Other")}


def _order_no(order):
    return order.order_no if order is not None else ""


class ReconciliationDisputeView(CpmsModelView):
    datamodel = ScopedSQLAInterface(ReconciliationDispute)
    list_title = _l("Reconciliation disputes")
    show_title = _l("Reconciliation dispute")
    base_permissions = list(READ_ONLY)
    choice_columns = {"direction": DISPUTE_DIRECTION, "reason": DISPUTE_REASON}
    list_columns = ["created_at", "partner", "direction", "check_order_seq", "start_charge_seq", "order",
                    "their_power", "our_power", "their_money", "our_money", "reason"]
    show_columns = ["created_at", "partner", "direction", "check_order_seq", "period_start", "period_end",
                    "start_charge_seq", "order", "their_power", "our_power", "their_money", "our_money", "reason"]
    search_columns = ["partner", "direction", "reason", "check_order_seq", "start_charge_seq", "created_at"]
    order_columns = ["created_at"]
    base_order = ("created_at", "desc")
    formatters_columns = {"order": _order_no}
    label_columns = labels(
        created_at=_l("Time"),
        partner=_l("Partner"),
        direction=_l("Direction"),
        check_order_seq=_l("Check order no."),
        start_charge_seq=_l("Partner order no."),
        order=_l("Order no."),
        period_start=_l("Period start"),
        period_end=_l("Period end"),
        their_power=_l("Their energy (kWh)"),
        our_power=_l("Our energy (kWh)"),
        their_money=_l("Their amount (yuan)"),
        our_money=_l("Our amount (yuan)"),
        reason=_l("Dispute reason"),
    )


class PartnerStationView(CpmsModelView):
    datamodel = ScopedSQLAInterface(PartnerStation)
    list_title = _l("Partner stations")
    show_title = _l("Partner station")
    base_permissions = READ_ONLY + ["can_fetch"]
    show_template = "interconnect/partner_station_show.html"
    list_template = "interconnect/partner_station_list.html"
    choice_columns = {"station_type": PARTNER_STATION_TYPE, "station_status": PARTNER_STATION_STATUS}
    list_columns = ["partner", "station_code", "name", "area_code", "address", "station_type", "station_status",
                    "equipment_count", "connector_count", "fetched_at"]
    show_columns = ["partner", "station_code", "station_operator_code", "equipment_owner_code", "name",
                    "area_code", "address", "station_tel", "service_tel", "station_type", "station_status",
                    "park_nums", "lng", "lat", "busine_hours", "electricity_fee", "service_fee", "park_fee",
                    "equipment_count", "connector_count", "fetched_at"]
    search_columns = ["partner", "station_code", "name", "area_code", "address", "station_type", "station_status"]
    order_columns = ["station_code", "name", "fetched_at"]
    base_order = ("station_code", "asc")
    label_columns = labels(
        partner=_l("Partner"),
        station_code=_l("Station ID"),
        station_operator_code=_l("OperatorID"),
        equipment_owner_code=_l("Equipment owner ID"),
        name=_l("Station name"),
        area_code=_l("Area code"),
        address=_l("Address"),
        station_tel=_l("Station phone"),
        service_tel=_l("Service phone"),
        station_type=_l("Station type"),
        station_status=_l("Station status"),
        park_nums=_l("Parking spaces"),
        lng=_l("Longitude"),
        lat=_l("Latitude"),
        busine_hours=_l("Business hours"),
        electricity_fee=_l("Electricity fee"),
        service_fee=_l("Service fee"),
        park_fee=_l("Parking fee"),
        equipment_count=_l("Equipment"),
        connector_count=_l("Connectors"),
        fetched_at=_l("Fetched at"),
    )

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk):
        item = self.datamodel.get(pk, self._base_filters)
        if item is None:
            abort(404)
        widgets = self._show(pk)
        equipment = [e for e in (item.equipment or []) if isinstance(e, dict)]
        return self.render_template(self.show_template, pk=pk, title=self.show_title, widgets=widgets,
                                    related_views=self._related_views, equipment=equipment,
                                    equipment_types=EQUIPMENT_TYPE, connector_types=CONNECTOR_TYPE)

    def _partners(self):
        query = apply_scope(select(Partner).where(Partner.enabled.is_(True)).order_by(Partner.id), Partner)
        return self.datamodel.session.scalars(query).all()

    @expose("/fetch/", methods=["GET"])
    @has_access
    @permission_name("fetch")
    def fetch_form(self):
        """获取充电站: the partners in scope, each with a button that pulls its stations."""
        return self.render_template("interconnect/partner_station_fetch.html", partners=self._partners(),
                                    title=_("Fetch partner stations"))

    @expose("/fetch/<int:pk>", methods=["POST"])
    @has_access
    @permission_name("fetch")
    def fetch(self, pk):
        from app.interconnect.client import PushError
        from app.services import interconnect_push

        partner_id = pk
        if partner_id not in {p.id for p in self._partners()}:
            abort(404)
        try:
            result = interconnect_push.fetch_partner_stations(partner_id, request.form.get("last_query_time") or None)
        except (interconnect_push.PushRefused, PushError) as exc:
            self.datamodel.session.rollback()
            flash(_("Fetching stations failed: %(reason)s", reason=str(exc)), "danger")
            return redirect(url_for("PartnerStationView.fetch_form"))
        flash(_("%(n)d station(s) fetched in %(pages)d page(s).", n=result["stations"], pages=result["pages"]),
              "success")
        return redirect(url_for("PartnerStationView.list"))
