"""系统管理 screens of our own: operators (tenants)."""
from flask_babel import lazy_gettext as _l

from app.models import Operator
from app.views.base import CpmsModelView, ScopedSQLAInterface


class OperatorView(CpmsModelView):
    datamodel = ScopedSQLAInterface(Operator)
    list_title = _l("Operators")
    show_title = add_title = edit_title = _l("Operator")
    list_columns = ["code", "name", "short_name", "credit_code", "contact", "tel1", "enabled", "created_at"]
    add_columns = edit_columns = show_columns = ["code", "name", "short_name", "credit_code", "contact",
                                                 "tel1", "tel2", "reg_address", "note", "enabled"]
    search_columns = ["code", "name", "contact", "enabled"]
    order_columns = ["code", "name", "created_at"]
    label_columns = {"code": _l("Operator ID"), "name": _l("Operator name"), "short_name": _l("Short name"),
                     "credit_code": _l("Unified credit code"), "contact": _l("Contact"), "tel1": _l("Phone"),
                     "tel2": _l("Phone 2"), "reg_address": _l("Registered address"), "note": _l("Remark"),
                     "enabled": _l("Enabled"), "created_at": _l("Created at")}
    description_columns = {"code": _l("T/CEC OperatorID: 9 characters (organisation code).")}
    validators_columns = {}

    def pre_add(self, item):
        from app.services.masterdata import validate_operator

        validate_operator(item)
        super().pre_add(item)

    pre_update = pre_add
