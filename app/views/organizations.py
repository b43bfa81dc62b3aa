"""组织机构 account screens used by app/views/finance.py (OrganizationView): the organization
ledger (组织余额明细, append-only) and the top-up / adjustment form."""
from flask_appbuilder.forms import DynamicForm
from flask_babel import lazy_gettext as _l
from wtforms import DecimalField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from app.models import OrganizationEntry
from app.models.member import ORGANIZATION_KIND
from app.views.base import CpmsModelView, ScopedSQLAInterface
from app.views.orders import READ_ONLY
from app.views.stations import labels

ACCOUNT_ACTIONS = [("topup", _l("Bank transfer top-up")), ("adjust", _l("Manual adjustment"))]


class OrganizationAccountForm(DynamicForm):
    kind = SelectField(_l("Type"), choices=ACCOUNT_ACTIONS, default="topup", validators=[DataRequired()])
    amount = DecimalField(_l("Amount (yuan)"), places=2,
                          description=_l("A top-up is positive; an adjustment may be negative (a deduction)."),
                          validators=[InputRequired(), NumberRange(min=-1000000, max=1000000)])
    source = StringField(_l("Source"), description=_l("E.g. the bank transfer's reference number."),
                         validators=[Optional(), Length(max=64)])
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(), Length(max=255)])
    request_key = HiddenField()


class OrganizationEntryView(CpmsModelView):
    """组织余额明细: the organization account ledger (append-only: no add, edit or delete anywhere)."""

    datamodel = ScopedSQLAInterface(OrganizationEntry)
    list_title = _l("Organization balance details")
    show_title = _l("Organization ledger entry")
    base_permissions = READ_ONLY
    choice_columns = {"kind": ORGANIZATION_KIND}
    list_columns = ["created_at", "organization", "kind", "amount", "balance_after", "order.order_no",
                    "card.logical_no", "source", "remark", "created_by.username", "operator"]
    show_columns = ["created_at", "organization", "kind", "amount", "balance_after", "order", "card", "member",
                    "source", "remark", "created_by", "operator"]
    search_columns = ["organization", "kind", "created_at", "operator", "source", "remark"]
    order_columns = ["created_at", "amount"]
    base_order = ("id", "desc")
    label_columns = labels(
        created_at=_l("Time"),
        organization=_l("Organization"),
        kind=_l("Type"),
        amount=_l("Amount (yuan)"),
        balance_after=_l("Balance after (yuan)"),
        order=_l("Charging order"),
        card=_l("Charge card"),
        member=_l("Member"),
        source=_l("Source"),
        remark=_l("Reason / remark"),
        created_by=_l("Operated by"),
        **{"order.order_no": _l("Charging order no."), "card.logical_no": _l("Logical card no."),
           "created_by.username": _l("Operated by")},
    )
