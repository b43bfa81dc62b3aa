"""Charging orders and their facts.

Facts are append-only (DESIGN.md, order lifecycle): ``MeterSample`` (0x13 realtime) and
``PileBill`` (raw 0x3B, unique by transaction serial) are recorded as they come; ``ChargeOrder``
is derived from them. ``OrderPeriod`` and ``MeterSample`` are children reached through their
order only (no list screen of their own), so they carry no ``operator_id``.
"""
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import relationship

from app.extensions import db
from app.models.base import N_, Energy, Money, OperatorMixin, Price, TimestampMixin, utcnow

ORDER_STATUS = [
    ("pending", N_("Pending")),
    ("starting", N_("Starting")),
    ("charging", N_("Charging")),
    ("stopping", N_("Stopping")),
    ("finished", N_("Finished")),
    ("settled", N_("Settled")),
    ("failed", N_("Failed")),
    ("abnormal", N_("Abnormal")),
]
ACTIVE_ORDER_STATUSES = ("pending", "starting", "charging", "stopping")

PAY_STATUS = [
    ("unpaid", N_("Unpaid")),
    ("paid", N_("Paid")),
    ("partial", N_("Partially paid")),
    ("refunded", N_("Refunded")),
    ("partial_refund", N_("Partially refunded")),
]

# 支付类型
PAY_TYPE = [
    ("wallet", N_("Wallet")),
    ("wechat", N_("WeChat Pay")),
    ("card", N_("Charge card")),
    ("organization", N_("Organization account")),
    ("partner", N_("Partner platform")),
]

# 启动方式; YKC 0x3B transaction flag where the pile reports it
START_METHOD = [
    ("app", N_("App remote start")),
    ("card", N_("Online card")),
    ("offline_card", N_("Offline card")),
    ("vin", N_("VIN")),
    ("staff", N_("Staff (admin)")),
    ("partner", N_("Interconnect partner")),
]
START_METHOD_YKC = {"app": 0x01, "card": 0x02, "offline_card": 0x04, "vin": 0x05}

# Manual actions / lifecycle events recorded in OrderEvent
ORDER_EVENT = [
    ("created", N_("Created")),
    ("start_sent", N_("Start sent")),
    ("start_failed", N_("Start failed")),
    ("started", N_("Started")),
    ("stop_requested", N_("Stop requested")),
    ("stopped", N_("Stopped")),
    ("bill_received", N_("Pile bill received")),
    ("priced", N_("Priced")),
    ("settled", N_("Settled")),
    ("marked_abnormal", N_("Marked abnormal")),
    ("reviewed", N_("Reviewed")),
    ("manual_stop", N_("Manual stop")),
    ("manual_settle", N_("Manual settlement")),
    ("refund", N_("Refund")),
    ("adjust", N_("Amount adjusted")),
    ("pushed", N_("Pushed to partner")),
    ("clock_skew", N_("Pile clock off")),
    ("note", N_("Note")),
]

# PileBill processing state
PILE_BILL_STATUS = [
    ("received", N_("Received")),
    ("matched", N_("Matched to order")),
    ("orphan", N_("No matching order")),
    ("illegal", N_("Rejected as illegal")),
]

OCCUPANCY_STATUS = [
    ("ongoing", N_("Ongoing")),
    ("finished", N_("Finished")),
    ("settled", N_("Settled")),
    ("waived", N_("Waived")),
]

REFUND_STATUS = [("none", N_("Not refunded")), ("refunding", N_("Refunding")), ("refunded", N_("Refunded"))]

# Numeric types for live electrical figures
Voltage = Numeric(8, 1)      # V
Current = Numeric(8, 1)      # A
Power = Numeric(10, 3)       # kW


# columns carried by the list indexes (PostgreSQL INCLUDE): scope, base filters and the totals bar
LIST_TOTALS_INCLUDE = ["operator_id", "station_id", "status", "pay_status", "energy", "electricity_fee",
                       "service_fee", "total_amount", "duration_seconds"]


class ChargeOrder(OperatorMixin, TimestampMixin, db.Model):
    __tablename__ = "ev_charge_order"
    HISTORY = True  # money/history record: never deleted (app/services/deletion.py)
    __table_args__ = (
        UniqueConstraint("order_no", name="uq_ev_charge_order_order_no"),
        UniqueConstraint("serial", name="uq_ev_charge_order_serial"),
        Index("ix_ev_charge_order_operator_created", "operator_id", "created_at"),
        Index("ix_ev_charge_order_operator_status_created", "operator_id", "status", "created_at"),
        Index("ix_ev_charge_order_station_created", "station_id", "created_at"),
        Index("ix_ev_charge_order_member_created", "member_id", "created_at"),
        Index("ix_ev_charge_order_connector_status", "connector_id", "status"),
        Index("ix_ev_charge_order_pile_created", "pile_id", "created_at"),
        Index("ix_ev_charge_order_partner_order_no", "partner_order_no"),
        UniqueConstraint("partner_id", "partner_order_no", name="uq_ev_charge_order_partner_seq"),
        Index("ix_ev_charge_order_status_updated", "status", "updated_at"),
        # order lists: default window / sort without an operator filter, 充电时间 range; on PostgreSQL the
        # totals bar's columns are included so its aggregate is an index-only scan
        Index("ix_ev_charge_order_created_at", "created_at", postgresql_include=LIST_TOTALS_INCLUDE),
        Index("ix_ev_charge_order_started_at", "started_at", postgresql_include=LIST_TOTALS_INCLUDE),
        # the abnormal-order queue (异常订单 and the dashboard's to-do count): a handful of rows among
        # millions; the predicate is exactly the queue's filter as each database renders it
        Index("ix_ev_charge_order_abnormal_queue", "operator_id",
              postgresql_where=text("status = 'abnormal' OR needs_review IS true"),
              sqlite_where=text("status = 'abnormal' OR needs_review IS 1")),
    )

    id = Column(Integer, primary_key=True)
    order_no = Column(String(13), nullable=False)            # yyMMdd + 7 digits
    serial = Column(String(32))                              # YKC transaction serial (BCD16)
    partner_order_no = Column(String(64))                    # 互联互通订单号 (StartChargeSeq)
    partner_id = Column(Integer, ForeignKey("ev_partner.id"), index=True)
    channel_id = Column(Integer, ForeignKey("ev_channel.id"), index=True)

    station_id = Column(Integer, ForeignKey("ev_station.id"), nullable=False)
    pile_id = Column(Integer, ForeignKey("ev_pile.id"), nullable=False)
    connector_id = Column(Integer, ForeignKey("ev_connector.id"), nullable=False)
    member_id = Column(Integer, ForeignKey("ev_member.id"))
    card_id = Column(Integer, ForeignKey("ev_card.id"), index=True)
    organization_id = Column(Integer, ForeignKey("ev_organization.id"), index=True)
    card_no = Column(String(32))                             # logical/physical card no as reported
    plate_no = Column(String(16))
    vin = Column(String(17))

    start_method = Column(String(16), nullable=False, default="app")
    status = Column(String(16), nullable=False, default="pending")
    pay_status = Column(String(16), nullable=False, default="unpaid")
    pay_type = Column(String(16))
    stop_reason_code = Column(Integer)                       # YKC stop reason byte
    stop_reason = Column(String(128))
    failure_reason = Column(String(255))
    abnormal_reason = Column(String(255))
    needs_review = Column(Boolean, nullable=False, default=False)
    reviewed_by_id = Column(Integer, ForeignKey("ab_user.id"))
    reviewed_at = Column(DateTime)
    remark = Column(String(255))

    start_requested_at = Column(DateTime)
    started_at = Column(DateTime)
    ended_at = Column(DateTime)
    pile_started_at = Column(DateTime)                       # the pile's clock (0x3B), kept beside ours
    pile_ended_at = Column(DateTime)
    settled_at = Column(DateTime)
    paid_at = Column(DateTime)
    pushed_at = Column(DateTime)                             # last successful partner push
    partner_confirm_result = Column(Integer)                 # ConfirmResult of notification_charge_order_info

    start_soc = Column(Integer)
    end_soc = Column(Integer)
    duration_seconds = Column(Integer, nullable=False, default=0)

    energy = Column(Energy(), nullable=False, default=0)
    electricity_fee = Column(Money(), nullable=False, default=0)
    service_fee = Column(Money(), nullable=False, default=0)
    total_amount = Column(Money(), nullable=False, default=0)   # electricity + service
    discount_electricity = Column(Money(), nullable=False, default=0)
    discount_service = Column(Money(), nullable=False, default=0)
    discount_total = Column(Money(), nullable=False, default=0)
    payable_amount = Column(Money(), nullable=False, default=0)  # total - discounts
    paid_amount = Column(Money(), nullable=False, default=0)
    refunded_amount = Column(Money(), nullable=False, default=0)
    prepaid_amount = Column(Money())                         # 目标金额 / 预充金额
    campaign_id = Column(Integer, ForeignKey("ev_campaign.id"), index=True)
    coupon_id = Column(Integer, ForeignKey("ev_coupon.id"), index=True)

    price_template_id = Column(Integer, ForeignKey("ev_price_template.id"))
    tariff_snapshot = Column(JSON)                           # template + periods at start

    # latest live figures (0x13)
    live_power = Column(Power)
    live_voltage = Column(Voltage)
    live_current = Column(Current)
    live_soc = Column(Integer)
    live_energy = Column(Energy())
    live_amount = Column(Money())
    live_remaining_minutes = Column(Integer)
    live_updated_at = Column(DateTime)

    # figures billed by the pile (0x3B)
    pile_energy = Column(Energy())
    pile_amount = Column(Money())
    meter_start = Column(Energy())
    meter_stop = Column(Energy())

    station = relationship("Station", lazy="selectin")
    pile = relationship("Pile", lazy="selectin")
    connector = relationship("Connector", lazy="selectin")
    member = relationship("Member", lazy="selectin")
    card = relationship("Card", lazy="selectin")
    organization = relationship("Organization", lazy="selectin")
    channel = relationship("Channel", lazy="selectin")
    partner = relationship("Partner", lazy="selectin")
    campaign = relationship("Campaign", lazy="selectin")
    coupon = relationship("Coupon", lazy="selectin", foreign_keys=[coupon_id])
    price_template = relationship("PriceTemplate")
    periods = relationship("OrderPeriod", back_populates="order", order_by="OrderPeriod.seq",
                           cascade="all, delete-orphan")
    events = relationship("OrderEvent", back_populates="order", order_by="OrderEvent.id",
                          cascade="all, delete-orphan")

    def __str__(self):
        return self.order_no or f"Order #{self.id}"

    __repr__ = __str__


class OrderPeriod(db.Model):
    """Price-period breakdown of one order (T/CEC ChargeDetails)."""

    __tablename__ = "ev_order_period"
    HISTORY = True  # money/history record: never deleted (app/services/deletion.py)
    __table_args__ = (UniqueConstraint("order_id", "seq", name="uq_ev_order_period_order_seq"),)

    id = Column(Integer, primary_key=True)
    order_id = Column(Integer, ForeignKey("ev_charge_order.id", ondelete="CASCADE"), nullable=False)
    seq = Column(Integer, nullable=False, default=0)
    start_at = Column(DateTime, nullable=False)
    end_at = Column(DateTime, nullable=False)
    level = Column(String(8))
    electricity_price = Column(Price(), nullable=False)
    service_price = Column(Price(), nullable=False)
    energy = Column(Energy(), nullable=False, default=0)
    electricity_fee = Column(Money(), nullable=False, default=0)
    service_fee = Column(Money(), nullable=False, default=0)
    discount_electricity = Column(Money(), nullable=False, default=0)
    discount_service = Column(Money(), nullable=False, default=0)

    order = relationship("ChargeOrder", back_populates="periods")

    def __str__(self):
        return f"{self.start_at} - {self.end_at}"

    __repr__ = __str__


class MeterSample(db.Model):
    """One 0x13 realtime frame of a charging order (the charging curve). Append-only."""

    __tablename__ = "ev_meter_sample"
    HISTORY = True  # money/history record: never deleted (app/services/deletion.py)
    __table_args__ = (Index("ix_ev_meter_sample_order_at", "order_id", "at"),)

    id = Column(Integer, primary_key=True)
    order_id = Column(Integer, ForeignKey("ev_charge_order.id", ondelete="CASCADE"), nullable=False)
    at = Column(DateTime, nullable=False, default=utcnow)
    status = Column(String(16))
    voltage = Column(Voltage)
    current = Column(Current)
    power = Column(Power)
    soc = Column(Integer)
    energy = Column(Energy())
    energy_with_loss = Column(Energy())
    amount = Column(Money())
    gun_temp = Column(Integer)                               # °C
    battery_max_temp = Column(Integer)                       # °C
    charged_minutes = Column(Integer)
    remaining_minutes = Column(Integer)
    fault_bits = Column(Integer)

    def __str__(self):
        return f"{self.order_id} @ {self.at}"

    __repr__ = __str__


class PileBill(OperatorMixin, db.Model):
    """Raw 0x3B transaction record, keyed by the pile's transaction serial (same bill twice = no-op)."""

    __tablename__ = "ev_pile_bill"
    HISTORY = True  # money/history record: never deleted (app/services/deletion.py)
    __table_args__ = (
        UniqueConstraint("serial", name="uq_ev_pile_bill_serial"),
        Index("ix_ev_pile_bill_operator_received", "operator_id", "received_at"),
        Index("ix_ev_pile_bill_pile_code_received", "pile_code", "received_at"),
    )

    id = Column(Integer, primary_key=True)
    serial = Column(String(32), nullable=False)
    pile_code = Column(String(14), nullable=False)
    gun_no = Column(Integer, nullable=False)
    raw_hex = Column(Text, nullable=False)
    parsed = Column(JSON)
    received_at = Column(DateTime, nullable=False, default=utcnow)
    order_id = Column(Integer, ForeignKey("ev_charge_order.id"), index=True)
    status = Column(String(16), nullable=False, default="received")
    # extracted from the frame for queries without JSON parsing
    started_at = Column(DateTime)
    ended_at = Column(DateTime)
    traded_at = Column(DateTime)
    total_energy = Column(Energy())
    total_amount = Column(Money())
    meter_start = Column(Energy())
    meter_stop = Column(Energy())
    trade_flag = Column(Integer)                             # YKC 交易标识
    stop_reason_code = Column(Integer)
    vin = Column(String(17))
    physical_card_no = Column(String(16))

    order = relationship("ChargeOrder")

    def __str__(self):
        return self.serial or f"Bill #{self.id}"

    __repr__ = __str__


class OccupancyOrder(OperatorMixin, TimestampMixin, db.Model):
    """占位订单 / 占位账单: overstay after charging, priced by the station's occupancy rule."""

    __tablename__ = "ev_occupancy_order"
    HISTORY = True  # money/history record: never deleted (app/services/deletion.py)
    __table_args__ = (
        UniqueConstraint("order_no", name="uq_ev_occupancy_order_order_no"),
        Index("ix_ev_occupancy_order_operator_created", "operator_id", "created_at"),
        Index("ix_ev_occupancy_order_operator_started", "operator_id", "started_at"),
        Index("ix_ev_occupancy_order_station_started", "station_id", "started_at"),
        Index("ix_ev_occupancy_order_member_created", "member_id", "created_at"),
        Index("ix_ev_occupancy_order_connector_status", "connector_id", "status"),
    )

    id = Column(Integer, primary_key=True)
    order_no = Column(String(13), nullable=False)            # 占位订单编号, same format as orders
    charge_order_id = Column(Integer, ForeignKey("ev_charge_order.id"), index=True)  # 系统订单编号
    channel_id = Column(Integer, ForeignKey("ev_channel.id"), index=True)            # 订单来源
    station_id = Column(Integer, ForeignKey("ev_station.id"), nullable=False)
    pile_id = Column(Integer, ForeignKey("ev_pile.id"), nullable=False)
    connector_id = Column(Integer, ForeignKey("ev_connector.id"), nullable=False)
    member_id = Column(Integer, ForeignKey("ev_member.id"))
    start_method = Column(String(16))
    status = Column(String(16), nullable=False, default="ongoing")
    started_at = Column(DateTime, nullable=False, default=utcnow)
    ended_at = Column(DateTime)
    duration_minutes = Column(Integer, nullable=False, default=0)   # 占位时长
    # rule snapshot from the station
    free_minutes = Column(Integer, nullable=False, default=0)
    price = Column(Price(), nullable=False, default=0)
    unit = Column(String(16), nullable=False, default="minute")
    cap = Column(Money())
    # money
    amount = Column(Money(), nullable=False, default=0)             # 订单金额 / 账单金额
    discount_amount = Column(Money(), nullable=False, default=0)    # 优惠金额
    paid_amount = Column(Money(), nullable=False, default=0)        # 支付金额
    settlement_amount = Column(Money(), nullable=False, default=0)  # 结算金额
    income_amount = Column(Money(), nullable=False, default=0)      # 占位费收入
    split_amount = Column(Money(), nullable=False, default=0)       # 分账收入
    refunded_amount = Column(Money(), nullable=False, default=0)
    pay_status = Column(String(16), nullable=False, default="unpaid")
    pay_type = Column(String(16))
    paid_at = Column(DateTime)
    refund_status = Column(String(16), nullable=False, default="none")

    charge_order = relationship("ChargeOrder", lazy="selectin")
    channel = relationship("Channel", lazy="selectin")
    station = relationship("Station", lazy="selectin")
    pile = relationship("Pile", lazy="selectin")
    connector = relationship("Connector", lazy="selectin")
    member = relationship("Member", lazy="selectin")

    def __str__(self):
        return self.order_no or f"Occupancy #{self.id}"

    __repr__ = __str__


class OrderEvent(OperatorMixin, db.Model):
    """Audit trail of an order: lifecycle events and every manual staff action."""

    __tablename__ = "ev_order_event"
    HISTORY = True  # money/history record: never deleted (app/services/deletion.py)
    __table_args__ = (
        Index("ix_ev_order_event_order_id_id", "order_id", "id"),
        Index("ix_ev_order_event_operator_created", "operator_id", "created_at"),
    )

    id = Column(Integer, primary_key=True)
    order_id = Column(Integer, ForeignKey("ev_charge_order.id", ondelete="CASCADE"), nullable=False)
    event = Column(String(32), nullable=False)
    from_status = Column(String(16))
    to_status = Column(String(16))
    detail = Column(JSON)
    remark = Column(String(255))
    created_by_id = Column(Integer, ForeignKey("ab_user.id"))   # NULL = system
    created_at = Column(DateTime, nullable=False, default=utcnow)

    order = relationship("ChargeOrder", back_populates="events")

    def __str__(self):
        return f"{self.event} @ {self.created_at}"

    __repr__ = __str__
