"""Integrator REST resources (/api/v1/<resource>/): same data scope as the admin screens.
Authenticate with JWT from /api/v1/security/login; OpenAPI at /api/v1/_openapi.

One write path: every write runs the service command its admin screen runs (``app.services``:
masterdata, price_templates, partners), before the write and, where there is one, after the commit
(the price push of a station that got another template or of a template with new periods)."""
from flask import g, request

from app.models import Card, ChargeOrder, Connector, Member, Partner, Pile, PriceTemplate, Station
from app.services import masterdata, partners, price_templates
from app.views.base import CpmsModelRestApi, ScopedSQLAInterface
from app.views.write_hooks import CardWrite, ConnectorWrite, MemberWrite, PileWrite, StationWrite

RW_MAP = None


class _CommandApi(CpmsModelRestApi):
    """A resource whose writes run the same service rules as its admin screen; a refused rule
    answers 422 with the service's message (field-keyed where the service names fields)."""

    rule_errors = (masterdata.MasterDataError, partners.PartnerError, price_templates.PriceTemplateError)
    #: columns the service generates when a POST leaves them out (as the admin form allows)
    generated_columns: tuple = ()

    def _init_model_schemas(self):
        super()._init_model_schemas()
        if self.generated_columns:
            self.add_model_schema = type(self.add_model_schema)(partial=self.generated_columns)

    def _rules(self, fn, *args):
        try:
            return fn(*args)
        except self.rule_errors as exc:
            self.datamodel.session.rollback()
            return self.response_422(message=getattr(exc, "errors", None) or str(exc))

    def post_headless(self):
        return self._rules(super().post_headless)

    def put_headless(self, pk):
        return self._rules(super().put_headless, pk)


class StationApi(StationWrite, _CommandApi):
    resource_name = "station"
    generated_columns = ("code",)
    datamodel = ScopedSQLAInterface(Station)
    list_columns = ["id", "code", "name", "station_type", "status", "site_type", "operator_id", "address",
                    "lng", "lat", "price_template_id"]
    show_columns = list_columns + ["province", "city", "district", "area_code", "park_nums", "park_info",
                                   "site_guide", "services", "business_hours", "station_tel", "remark"]
    add_columns = edit_columns = ["code", "name", "station_type", "status", "site_type", "ownership",
                                  "operator", "address", "lng", "lat", "province", "city", "district",
                                  "area_code", "park_nums", "park_info", "site_guide", "business_hours",
                                  "station_tel", "price_template", "remark"]
    search_columns = ["code", "name", "status", "operator"]
    order_columns = ["id", "code", "name"]


class PileApi(PileWrite, _CommandApi):
    resource_name = "pile"
    generated_columns = ("code",)
    datamodel = ScopedSQLAInterface(Pile)
    list_columns = ["id", "code", "name", "station_id", "operator_id", "pile_type", "protocol", "power_kw",
                    "gun_count", "online", "last_heartbeat_at", "enabled"]
    show_columns = list_columns + ["model_id", "manufacturer_id", "firmware", "protocol_version",
                                   "production_date", "commissioning_date"]
    add_columns = edit_columns = ["code", "name", "station", "model", "pile_type", "protocol", "power_kw",
                                  "gun_count", "production_date", "commissioning_date", "enabled", "remark"]
    search_columns = ["code", "name", "station", "online"]
    order_columns = ["id", "code"]


class ConnectorApi(ConnectorWrite, _CommandApi):
    resource_name = "connector"
    generated_columns = ("name",)
    datamodel = ScopedSQLAInterface(Connector)
    list_columns = ["id", "code", "gun_no", "name", "pile_id", "station_id", "operator_id", "status",
                    "interface_type", "national_standard", "power_kw", "park_no"]
    show_columns = list_columns + ["voltage_upper", "voltage_lower", "current", "lock_enabled", "lock_no"]
    add_columns = ["pile", "gun_no", "name", "interface_type", "national_standard", "voltage_upper",
                   "voltage_lower", "current", "power_kw", "park_no", "lock_enabled", "lock_no"]
    edit_columns = add_columns[2:]
    search_columns = ["code", "pile", "station", "status"]
    order_columns = ["id", "code"]


class PriceTemplateApi(_CommandApi):
    """Besides its columns a write takes ``periods``: the rows of the admin's period editor,
    ``[{"start": "00:00", "end": "08:00", "level": "valley", "electricity_price": "0.31",
    "service_price": "0.5"}, ...]``, validated by the same rules with the same messages (422
    ``{"periods": [...]}``). Required on POST; a PUT without it keeps the periods. New periods are
    pushed to the piles of the stations using the template (0x58), as from the admin."""

    resource_name = "pricetemplate"
    datamodel = ScopedSQLAInterface(PriceTemplate)
    list_columns = ["id", "code", "name", "operator_id", "version", "enabled"]
    show_columns = list_columns + ["remark", "periods.start_minute", "periods.end_minute", "periods.level",
                                   "periods.electricity_price", "periods.service_price"]
    add_columns = edit_columns = ["code", "name", "operator", "enabled", "remark"]
    search_columns = ["code", "name", "operator"]
    order_columns = ["id", "code", "name"]

    @staticmethod
    def _take_periods():
        """Take ``periods`` out of the JSON body (it is no column of the schema)."""
        body = request.get_json(silent=True)
        rows = body.pop("periods", price_templates.NOT_GIVEN) if isinstance(body, dict) else price_templates.NOT_GIVEN
        g.cpms_period_rows = rows

    def post_headless(self):
        self._take_periods()
        return super().post_headless()

    def put_headless(self, pk):
        self._take_periods()
        return super().put_headless(pk)

    def pre_add(self, item):
        super().pre_add(item)
        price_templates.save_template(self.datamodel.session, item, g.cpms_period_rows, creating=True)

    def pre_update(self, item):
        super().pre_update(item)
        g.cpms_periods_replaced = price_templates.save_template(self.datamodel.session, item, g.cpms_period_rows)

    def post_update(self, item):
        price_templates.template_saved(item, g.pop("cpms_periods_replaced", False))


class PartnerApi(_CommandApi):
    resource_name = "partner"
    datamodel = ScopedSQLAInterface(Partner)
    list_columns = ["id", "name", "partner_type", "partner_operator_code", "our_operator_code", "base_url",
                    "operator_id", "enabled"]
    show_columns = list_columns + ["channel_id", "tenant_id", "push_enabled", "remark"]
    add_columns = edit_columns = ["name", "partner_type", "partner_operator_code", "operator_secret",
                                  "data_secret", "data_secret_iv", "sig_secret", "base_url",
                                  "our_operator_code", "our_operator_secret", "our_data_secret",
                                  "our_data_secret_iv", "our_sig_secret", "operator", "channel",
                                  "ip_allowlist", "tenant_id", "push_enabled", "enabled", "remark"]
    search_columns = ["name", "partner_operator_code", "operator"]
    order_columns = ["id", "name"]

    # The eight keys are write-only: accepted on POST (required) and PUT (optional; absent or empty
    # keeps the stored key), never dumped in a response (the secrets page of the admin shows them to
    # holders of can_show_secrets only).
    def _init_model_schemas(self):
        super()._init_model_schemas()
        secrets = tuple(partners.SECRET_FIELDS)
        self.add_model_schema = type(self.add_model_schema)(load_only=secrets)
        self.edit_model_schema = type(self.edit_model_schema)(load_only=secrets, partial=secrets)

    def _merge_update_item(self, model_item, data):
        data = {k: v for k, v in data.items()
                if not (k in partners.SECRET_FIELDS and not (isinstance(v, str) and v.strip()))}
        stored = self.edit_model_schema.dump(model_item, many=False)
        for col in self.edit_columns:
            if col not in data and col in stored:
                data[col] = stored[col]
        return data

    def pre_add(self, item):
        partners.normalize(item)
        partners.validate(item)
        super().pre_add(item)

    def pre_update(self, item):
        partners.normalize(item)
        partners.validate(item)
        super().pre_update(item)


class MemberApi(MemberWrite, _CommandApi):
    resource_name = "member"
    datamodel = ScopedSQLAInterface(Member)
    list_columns = ["id", "member_no", "username", "nickname", "phone", "balance", "status", "operator_id",
                    "organization_id", "plate_no", "created_at"]
    show_columns = list_columns + ["vin", "remark"]
    add_columns = ["member_no", "username", "nickname", "phone", "status", "operator", "organization",
                   "plate_no", "vin", "remark"]
    edit_columns = ["username", "nickname", "phone", "status", "organization", "plate_no", "vin", "remark"]
    search_columns = ["member_no", "phone", "status", "operator"]
    order_columns = ["id", "member_no", "created_at"]


class CardApi(CardWrite, _CommandApi):
    resource_name = "card"
    datamodel = ScopedSQLAInterface(Card)
    list_columns = ["id", "logical_no", "physical_no", "card_type", "status", "member_id", "organization_id",
                    "operator_id", "balance", "pay_mode"]
    show_columns = list_columns + ["remark"]
    add_columns = ["logical_no", "physical_no", "card_type", "status", "member", "organization", "operator",
                   "pay_mode", "remark"]                     # pay_mode: member | organization | null (organization's)
    edit_columns = ["card_type", "status", "member", "organization", "pay_mode", "remark"]
    search_columns = ["logical_no", "physical_no", "status", "operator"]
    order_columns = ["id", "logical_no"]


class OrderApi(CpmsModelRestApi):
    """Charging orders for integrators: read-only (GET list / item / _info), same data scope."""

    resource_name = "order"
    datamodel = ScopedSQLAInterface(ChargeOrder)
    include_route_methods = {"get", "get_list", "info"}
    list_columns = ["id", "order_no", "serial", "partner_order_no", "operator_id", "station_id", "pile_id",
                    "connector_id", "connector.code", "member_id", "member.member_no", "status", "pay_status",
                    "start_method", "start_requested_at", "started_at", "ended_at", "duration_seconds", "energy",
                    "electricity_fee", "service_fee", "total_amount", "discount_total", "payable_amount",
                    "paid_amount", "refunded_amount", "created_at"]
    show_columns = list_columns + ["pile.code", "pay_type", "paid_at", "settled_at", "start_soc", "end_soc",
                                   "stop_reason", "failure_reason", "abnormal_reason", "prepaid_amount",
                                   "discount_electricity", "discount_service", "plate_no", "vin"]
    search_columns = ["order_no", "serial", "partner_order_no", "status", "pay_status", "station", "created_at",
                      "started_at"]
    order_columns = ["id", "created_at", "started_at", "ended_at"]
    base_order = ("id", "desc")


RESOURCES = [StationApi, PileApi, ConnectorApi, PriceTemplateApi, PartnerApi, MemberApi, CardApi, OrderApi]
