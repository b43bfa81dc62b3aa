"""Marketing: campaigns (运营活动 / 互联互通活动) and coupons (卡券列表 / 卡券活动).

Discount rates are stored as multipliers (0.9500 = 95 % = "9.5 折"); a rate of 1 means no
discount. Time-of-day campaigns keep their windows in ``CampaignPeriod`` (local minutes).
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
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import relationship

from app.extensions import db
from app.models.base import N_, Money, OperatorMixin, TimestampMixin

# Campaign.kind: own operation campaign or a partner (interconnect) campaign mirrored here
CAMPAIGN_KIND = [("operation", N_("Operation campaign")), ("interconnect", N_("Interconnect campaign"))]
# 优惠权益
CAMPAIGN_DISCOUNT_MODE = [("fixed", N_("Fixed discount")), ("time_of_day", N_("Time-of-day discount"))]
# 活动位置
CAMPAIGN_POSITION = [("order_page", N_("Order page")), ("home", N_("Home page")),
                     ("station_page", N_("Station page")), ("after_charge", N_("After charging"))]

# 卡券类型
COUPON_TYPE = [("discount", N_("Discount coupon")), ("full_reduction", N_("Spend-and-save coupon")),
               ("deduction", N_("Deduction coupon"))]
# 优惠对象 (with COUPON_TYPE gives 优惠类型, e.g. 服务费抵扣券)
COUPON_TARGET = [("total", N_("Total charging fee")), ("service", N_("Service fee"))]
# 有效期
COUPON_VALIDITY = [("fixed", N_("Fixed dates")), ("relative", N_("Days after receipt"))]
COUPON_STATUS = [("unused", N_("Unused")), ("locked", N_("Locked by an order")), ("used", N_("Used")),
                 ("expired", N_("Expired")), ("void", N_("Voided"))]
# 卡券活动 trigger and scope
COUPON_CAMPAIGN_TRIGGER = [("manual", N_("Manual issue")), ("register", N_("New member registration")),
                           ("order_finished", N_("Order finished"))]
COUPON_CAMPAIGN_SCOPE = [("all", N_("All members")), ("selected", N_("Selected members"))]
# Coupon.source: how a member received a coupon
COUPON_SOURCE = [("manual", N_("Issued by staff")), ("register", N_("Registration gift")),
                 ("order_finished", N_("Order reward")), ("claim", N_("Claimed by the member"))]

campaign_station = Table(
    "ev_campaign_station",
    db.Model.metadata,
    Column("campaign_id", Integer, ForeignKey("ev_campaign.id", ondelete="CASCADE"), primary_key=True),
    Column("station_id", Integer, ForeignKey("ev_station.id", ondelete="CASCADE"), primary_key=True,
           index=True),
)

# operation campaign channels (none chosen = every channel)
campaign_channel = Table(
    "ev_campaign_channel",
    db.Model.metadata,
    Column("campaign_id", Integer, ForeignKey("ev_campaign.id", ondelete="CASCADE"), primary_key=True),
    Column("channel_id", Integer, ForeignKey("ev_channel.id", ondelete="CASCADE"), primary_key=True,
           index=True),
)

coupon_template_station = Table(
    "ev_coupon_template_station",
    db.Model.metadata,
    Column("template_id", Integer, ForeignKey("ev_coupon_template.id", ondelete="CASCADE"),
           primary_key=True),
    Column("station_id", Integer, ForeignKey("ev_station.id", ondelete="CASCADE"), primary_key=True,
           index=True),
)

coupon_campaign_member = Table(
    "ev_coupon_campaign_member",
    db.Model.metadata,
    Column("campaign_id", Integer, ForeignKey("ev_coupon_campaign.id", ondelete="CASCADE"),
           primary_key=True),
    Column("member_id", Integer, ForeignKey("ev_member.id", ondelete="CASCADE"), primary_key=True,
           index=True),
)


class Campaign(OperatorMixin, TimestampMixin, db.Model):
    __tablename__ = "ev_campaign"
    __table_args__ = (
        Index("ix_ev_campaign_operator_start", "operator_id", "start_at"),
        Index("ix_ev_campaign_operator_kind_end", "operator_id", "kind", "end_at"),
    )

    id = Column(Integer, primary_key=True)
    kind = Column(String(16), nullable=False, default="operation")
    channel_id = Column(Integer, ForeignKey("ev_channel.id"), index=True)  # interconnect: partner channel
    name = Column(String(64), nullable=False)
    tag = Column(String(32))                                 # 活动标签
    position = Column(String(32))                            # 活动位置
    all_stations = Column(Boolean, nullable=False, default=True)
    start_at = Column(DateTime, nullable=False)
    end_at = Column(DateTime, nullable=False)
    discount_mode = Column(String(16), nullable=False, default="fixed")
    electricity_rate = Column(Numeric(5, 4), nullable=False, default=1)  # fixed mode
    service_rate = Column(Numeric(5, 4), nullable=False, default=1)      # fixed mode
    description = Column(Text, nullable=False)               # 活动描述
    gift_tip_images = Column(JSON, default=list)             # 赠券提示 (stored file names)
    enabled = Column(Boolean, nullable=False, default=True)
    priority = Column(Integer, nullable=False, default=0)
    remark = Column(String(255))

    channel = relationship("Channel", lazy="selectin")
    stations = relationship("Station", secondary=campaign_station, order_by="Station.id")
    channels = relationship("Channel", secondary=campaign_channel, order_by="Channel.id")
    periods = relationship("CampaignPeriod", back_populates="campaign",
                           order_by="CampaignPeriod.start_minute", cascade="all, delete-orphan")

    def __str__(self):
        return self.name or f"Campaign #{self.id}"

    __repr__ = __str__


class CampaignPeriod(db.Model):
    """A time-of-day discount window of a campaign, local minutes [start_minute, end_minute)."""

    __tablename__ = "ev_campaign_period"

    id = Column(Integer, primary_key=True)
    campaign_id = Column(Integer, ForeignKey("ev_campaign.id", ondelete="CASCADE"), nullable=False,
                         index=True)
    start_minute = Column(Integer, nullable=False)
    end_minute = Column(Integer, nullable=False)
    electricity_rate = Column(Numeric(5, 4), nullable=False, default=1)
    service_rate = Column(Numeric(5, 4), nullable=False, default=1)

    campaign = relationship("Campaign", back_populates="periods")

    def __str__(self):
        s, e = self.start_minute or 0, self.end_minute or 0
        return f"{s // 60:02d}:{s % 60:02d}-{e // 60:02d}:{e % 60:02d}"

    __repr__ = __str__


class CouponTemplate(OperatorMixin, TimestampMixin, db.Model):
    """卡券列表: the definition of a coupon; issued coupons copy its rule."""

    __tablename__ = "ev_coupon_template"
    __table_args__ = (Index("ix_ev_coupon_template_operator_created", "operator_id", "created_at"),)

    id = Column(Integer, primary_key=True)
    name = Column(String(32), nullable=False)                # 卡券名称 (≤ 15 chars on screen)
    coupon_type = Column(String(16), nullable=False)
    target = Column(String(16), nullable=False, default="total")
    description = Column(Text)                               # 卡券说明
    discount_rate = Column(Numeric(5, 4))                    # discount coupons
    threshold = Column(Money(), nullable=False, default=0)   # 满 X (full-reduction)
    face_value = Column(Money())                             # 减 / 抵 amount
    max_discount = Column(Money())                           # cap for discount coupons
    validity_mode = Column(String(16), nullable=False, default="fixed")
    valid_from = Column(DateTime)                            # fixed mode / 开始时间
    valid_to = Column(DateTime)
    valid_days = Column(Integer)                             # relative mode
    all_stations = Column(Boolean, nullable=False, default=True)
    total_quantity = Column(Integer)                         # NULL = unlimited
    issued_quantity = Column(Integer, nullable=False, default=0)
    per_member_limit = Column(Integer)                       # 每人限领; NULL = unlimited (app.services.coupons)
    enabled = Column(Boolean, nullable=False, default=True)

    stations = relationship("Station", secondary=coupon_template_station, order_by="Station.id")

    def __str__(self):
        return self.name or f"Coupon template #{self.id}"

    __repr__ = __str__


class CouponCampaign(OperatorMixin, TimestampMixin, db.Model):
    """卡券活动: gives coupons to members (on registration, after an order, or by hand)."""

    __tablename__ = "ev_coupon_campaign"
    __table_args__ = (Index("ix_ev_coupon_campaign_operator_start", "operator_id", "start_at"),)

    id = Column(Integer, primary_key=True)
    name = Column(String(64), nullable=False)
    tag = Column(String(32))
    start_at = Column(DateTime, nullable=False)
    end_at = Column(DateTime, nullable=False)
    position = Column(String(32))                            # 活动位置
    description = Column(Text)
    trigger = Column(String(16), nullable=False, default="manual")
    scope = Column(String(16), nullable=False, default="all")    # 活动范围
    gift_tip_images = Column(JSON, default=list)             # 赠券提示
    enabled = Column(Boolean, nullable=False, default=True)
    remark = Column(String(255))
    # manual issue: which members (besides scope all / selected), app.services.coupons.campaign_members
    registered_from = Column(DateTime)                       # members registered in [from, to)
    registered_to = Column(DateTime)
    min_orders = Column(Integer)                             # members with at least N settled orders
    # order_finished trigger: on the member's N-th settled order (NULL: every order), amount at least X
    order_count = Column(Integer)
    order_min_amount = Column(Money())
    last_issued_at = Column(DateTime)                        # last manual issue ("issue now")

    members = relationship("Member", secondary=coupon_campaign_member, order_by="Member.id")
    items = relationship("CouponCampaignItem", back_populates="campaign",
                         cascade="all, delete-orphan", order_by="CouponCampaignItem.id")

    def __str__(self):
        return self.name or f"Coupon campaign #{self.id}"

    __repr__ = __str__


class CouponCampaignItem(db.Model):
    """赠券配置: which coupon template and how many each member receives."""

    __tablename__ = "ev_coupon_campaign_item"
    __table_args__ = (
        UniqueConstraint("campaign_id", "template_id", name="uq_ev_coupon_campaign_item"),
    )

    id = Column(Integer, primary_key=True)
    campaign_id = Column(Integer, ForeignKey("ev_coupon_campaign.id", ondelete="CASCADE"),
                         nullable=False)
    template_id = Column(Integer, ForeignKey("ev_coupon_template.id"), nullable=False, index=True)
    quantity = Column(Integer, nullable=False, default=1)

    campaign = relationship("CouponCampaign", back_populates="items")
    template = relationship("CouponTemplate", lazy="selectin")

    def __str__(self):
        return f"{self.template} x{self.quantity}"

    __repr__ = __str__


class Coupon(OperatorMixin, TimestampMixin, db.Model):
    """A coupon held by a member; the rule is copied from its template when issued."""

    __tablename__ = "ev_coupon"
    HISTORY = True  # money/history record: never deleted (app/services/deletion.py)
    __table_args__ = (
        UniqueConstraint("code", name="uq_ev_coupon_code"),
        Index("ix_ev_coupon_operator_created", "operator_id", "created_at"),
        Index("ix_ev_coupon_member_status", "member_id", "status", "valid_to"),
    )

    id = Column(Integer, primary_key=True)
    code = Column(String(32), nullable=False)
    template_id = Column(Integer, ForeignKey("ev_coupon_template.id"), nullable=False, index=True)
    campaign_id = Column(Integer, ForeignKey("ev_coupon_campaign.id"), index=True)
    member_id = Column(Integer, ForeignKey("ev_member.id"), nullable=False)
    status = Column(String(16), nullable=False, default="unused")
    # rule snapshot
    coupon_type = Column(String(16), nullable=False)
    target = Column(String(16), nullable=False, default="total")
    discount_rate = Column(Numeric(5, 4))
    threshold = Column(Money(), nullable=False, default=0)
    face_value = Column(Money())
    max_discount = Column(Money())
    valid_from = Column(DateTime)
    valid_to = Column(DateTime)
    # use
    order_id = Column(Integer, ForeignKey("ev_charge_order.id", use_alter=True,
                                          name="fk_ev_coupon_order_id"), index=True)
    used_at = Column(DateTime)
    discount_amount = Column(Money(), nullable=False, default=0)
    # how it was received (COUPON_SOURCE); the order that earned it (order_finished campaigns)
    source = Column(String(16), nullable=False, default="manual", server_default="manual")
    source_order_id = Column(Integer, ForeignKey("ev_charge_order.id", use_alter=True,
                                                 name="fk_ev_coupon_source_order_id"), index=True)

    template = relationship("CouponTemplate", lazy="selectin")
    campaign = relationship("CouponCampaign", lazy="selectin")
    member = relationship("Member", lazy="selectin")
    order = relationship("ChargeOrder", foreign_keys=[order_id])
    source_order = relationship("ChargeOrder", foreign_keys=[source_order_id])

    def __str__(self):
        return f"{self.template} ({self.code})" if self.template is not None else (self.code or "")

    __repr__ = __str__
