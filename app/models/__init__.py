"""Business data model. Importing this package registers every table on ``db.Model.metadata``.

Security models (User, Role, Department, Post, RoleDataScope) live in ``app.security.models``.
"""
from .base import Energy, Money, OperatorMixin, Price, TimestampMixin, utcnow
from .interconnect import PartnerStation, ReconciliationDispute
from .marketing import (
    Campaign,
    CampaignPeriod,
    Coupon,
    CouponCampaign,
    CouponCampaignItem,
    CouponTemplate,
    campaign_station,
    coupon_campaign_member,
    coupon_template_station,
)
from .member import (
    Card,
    Channel,
    Invoice,
    Member,
    Organization,
    OrganizationEntry,
    Payment,
    PaymentGateway,
    WalletEntry,
    invoice_order,
)
from .operator import Operator
from .order import ChargeOrder, MeterSample, OccupancyOrder, OrderEvent, OrderPeriod, PileBill
from .partner import Partner, PushLog
from .payment import Refund
from .pile import (
    Alarm,
    Connector,
    ConnectorStatusLog,
    FaultReport,
    FaultType,
    Feedback,
    Manufacturer,
    Pile,
    PileModel,
)
from .report import DailyChannelStat, DailyStationStat
from .station import PricePeriod, PriceTemplate, Station

__all__ = [
    # base helpers
    "Energy", "Money", "OperatorMixin", "Price", "TimestampMixin", "utcnow",
    # operator
    "Operator",
    # station
    "PricePeriod", "PriceTemplate", "Station",
    # pile
    "Alarm", "Connector", "ConnectorStatusLog", "FaultReport", "FaultType", "Feedback",
    "Manufacturer", "Pile", "PileModel",
    # order
    "ChargeOrder", "MeterSample", "OccupancyOrder", "OrderEvent", "OrderPeriod", "PileBill",
    # member
    "Card", "Channel", "Invoice", "Member", "Organization", "OrganizationEntry", "Payment",
    "PaymentGateway", "WalletEntry", "invoice_order",
    # payments
    "Refund",
    # marketing
    "Campaign", "CampaignPeriod", "Coupon", "CouponCampaign", "CouponCampaignItem",
    "CouponTemplate", "campaign_station", "coupon_campaign_member", "coupon_template_station",
    # report
    "DailyStationStat",
    "DailyChannelStat",
    # partner
    "Partner", "PushLog",
    # interconnect client (pulled stations, reconciliation)
    "PartnerStation", "ReconciliationDispute",
]
