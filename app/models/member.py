"""Members, wallets, fleets (organizations) and cards, channels, payments and invoices.

``PaymentGateway`` is global (no ``operator_id``): a shared catalogue of payment methods
maintained by platform admins.

Wallet rule (DESIGN.md): the ``WalletEntry`` ledger is the truth. ``Member.balance`` is a cache
updated in the same transaction as the entry (``WalletEntry.balance_after`` = new cache value);
``WalletEntry.idempotency_key`` (unique) stops the same money event being booked twice.
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
    text,
)
from sqlalchemy.orm import relationship

from app.extensions import db
from app.models.base import N_, Money, OperatorMixin, Sealed, TimestampMixin, utcnow

MEMBER_STATUS = [("active", N_("Normal")), ("frozen", N_("Frozen")), ("closed", N_("Closed"))]

# WalletEntry.kind; amount is signed (+ credit, - debit)
WALLET_KIND = [
    ("recharge", N_("Recharge")),
    ("consume", N_("Charging payment")),
    ("occupancy", N_("Occupancy fee")),
    ("refund", N_("Refund")),
    ("gift", N_("Gift")),
    ("adjust", N_("Manual adjustment")),
    ("withdraw", N_("Withdrawal")),
]

# OrganizationEntry.kind; amount is signed (+ credit, - debit)
ORGANIZATION_KIND = [
    ("topup", N_("Bank transfer top-up")),
    ("consume", N_("Charging payment")),
    ("refund", N_("Refund")),
    ("adjust", N_("Manual adjustment")),
]

# who pays a card's charging: the card's member (wallet) or the card's organization (its account)
PAY_MODE = [("member", N_("Member wallet")), ("organization", N_("Organization account"))]
CARD_PAY_MODE = [("", N_("As the organization")), *PAY_MODE]   # a card: empty = its organization's mode

CARD_TYPE = [("online", N_("Online card")), ("offline", N_("Offline card"))]
CARD_STATUS = [("active", N_("Active")), ("frozen", N_("Frozen")), ("lost", N_("Reported lost")),
               ("cancelled", N_("Cancelled"))]

# 渠道类型
CHANNEL_TYPE = [
    ("mini_program", N_("WeChat mini program")),
    ("app", N_("App")),
    ("pile", N_("Pile start")),
    ("interconnect", N_("Interconnect")),
]

# 网关类型
GATEWAY_TYPE = [("wallet", N_("Wallet")), ("wechat", N_("WeChat Pay")),
                ("demo", N_("Demo gateway"))]   # demo: payments confirmed locally (demo data, no merchant)

PAYMENT_PURPOSE = [("recharge", N_("Wallet recharge")), ("order", N_("Charging order")),
                   ("occupancy", N_("Occupancy order"))]
PAYMENT_STATUS = [
    ("created", N_("Created")),
    ("pending", N_("Awaiting payment")),
    ("succeeded", N_("Succeeded")),
    ("failed", N_("Failed")),
    ("closed", N_("Closed")),
    ("refunding", N_("Refunding")),
    ("refunded", N_("Refunded")),
    ("partial_refund", N_("Partially refunded")),
    ("review", N_("Needs review")),      # notification disagreed with the payment (amount): not credited
]

# 发票
INVOICE_TITLE_TYPE = [("person", N_("Individual")), ("company", N_("Company"))]
INVOICE_TYPE = [("electronic", N_("Electronic invoice"))]
INVOICE_STATUS = [("applied", N_("Applied")), ("issued", N_("Issued")), ("rejected", N_("Rejected"))]


class Organization(OperatorMixin, TimestampMixin, db.Model):
    """组织机构: fleets whose members and cards charge under one company."""

    __tablename__ = "ev_organization"
    __table_args__ = (
        UniqueConstraint("code", name="uq_ev_organization_code"),
        Index("ix_ev_organization_operator_name", "operator_id", "name"),
    )

    id = Column(Integer, primary_key=True)
    name = Column(String(64), nullable=False)                # 组织名称
    code = Column(String(32))                                # 组织机构代码 (optional, unique)
    company_name = Column(String(128))                       # 公司名称
    contact = Column(String(32))                             # 联系人
    phone = Column(String(20))                               # 手机号
    enabled = Column(Boolean, nullable=False, default=True)
    remark = Column(String(255))
    balance = Column(Money(), nullable=False, default=0)     # cache of the OrganizationEntry ledger
    # agreed discount (multipliers like Campaign: 0.9000 = 9 折); NULL = no agreed discount
    electricity_rate = Column(Numeric(5, 4))
    service_rate = Column(Numeric(5, 4))
    pay_mode = Column(String(16), nullable=False, default="member")   # default for its cards (PAY_MODE)

    members = relationship("Member", back_populates="organization", order_by="Member.id")
    cards = relationship("Card", back_populates="organization", order_by="Card.id")

    def __str__(self):
        return self.name or f"Organization #{self.id}"

    __repr__ = __str__


class Member(OperatorMixin, TimestampMixin, db.Model):
    __tablename__ = "ev_member"
    __table_args__ = (
        UniqueConstraint("member_no", name="uq_ev_member_member_no"),
        Index("ix_ev_member_operator_created", "operator_id", "created_at"),
        Index("ix_ev_member_operator_phone", "operator_id", "phone"),
        Index("ix_ev_member_operator_openid", "operator_id", "openid"),
    )

    id = Column(Integer, primary_key=True)
    member_no = Column(String(20), nullable=False)           # 用户编号
    username = Column(String(64))                            # 用户名
    nickname = Column(String(64))                            # 用户昵称
    phone = Column(String(20))                               # not unique: the manual shows duplicates
    avatar = Column(String(255))
    balance = Column(Money(), nullable=False, default=0)     # cache of the WalletEntry ledger
    status = Column(String(16), nullable=False, default="active")
    organization_id = Column(Integer, ForeignKey("ev_organization.id"), index=True)
    channel_id = Column(Integer, ForeignKey("ev_channel.id"), index=True)   # registered through
    plate_no = Column(String(16))
    vin = Column(String(17), index=True)
    openid = Column(String(64))
    unionid = Column(String(64))
    password_hash = Column(String(255))
    last_login_at = Column(DateTime)
    remark = Column(String(255))

    organization = relationship("Organization", back_populates="members", lazy="selectin")
    channel = relationship("Channel", lazy="selectin")

    def __str__(self):
        return self.nickname or self.username or self.phone or self.member_no or f"Member #{self.id}"

    __repr__ = __str__


class WalletEntry(OperatorMixin, db.Model):
    """Append-only wallet ledger line."""

    __tablename__ = "ev_wallet_entry"
    HISTORY = True  # money/history record: never deleted (app/services/deletion.py)
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="uq_ev_wallet_entry_idempotency_key"),
        Index("ix_ev_wallet_entry_member_id_id", "member_id", "id"),
        Index("ix_ev_wallet_entry_operator_created", "operator_id", "created_at"),
    )

    id = Column(Integer, primary_key=True)
    member_id = Column(Integer, ForeignKey("ev_member.id"), nullable=False)
    kind = Column(String(16), nullable=False)
    amount = Column(Money(), nullable=False)                 # signed
    balance_after = Column(Money(), nullable=False)
    idempotency_key = Column(String(64))                     # e.g. "settle:<order_no>", "pay:<payment_no>"
    order_id = Column(Integer, ForeignKey("ev_charge_order.id"), index=True)
    occupancy_order_id = Column(Integer, ForeignKey("ev_occupancy_order.id"), index=True)
    payment_id = Column(Integer, ForeignKey("ev_payment.id"), index=True)
    remark = Column(String(255))
    created_by_id = Column(Integer, ForeignKey("ab_user.id"))   # staff for manual adjustments
    created_at = Column(DateTime, nullable=False, default=utcnow)

    member = relationship("Member", lazy="selectin")
    order = relationship("ChargeOrder")
    payment = relationship("Payment")
    created_by = relationship("User", foreign_keys=[created_by_id], lazy="selectin")   # FAB's user (ab_user)

    def __str__(self):
        return f"{self.kind} {self.amount}"

    __repr__ = __str__


class OrganizationEntry(OperatorMixin, db.Model):
    """Append-only ledger line of an organization's account (mirrors WalletEntry)."""

    __tablename__ = "ev_organization_entry"
    HISTORY = True  # money/history record: never deleted (app/services/deletion.py)
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="uq_ev_organization_entry_idempotency_key"),
        Index("ix_ev_organization_entry_org_id_id", "organization_id", "id"),
        Index("ix_ev_organization_entry_operator_created", "operator_id", "created_at"),
    )

    id = Column(Integer, primary_key=True)
    organization_id = Column(Integer, ForeignKey("ev_organization.id"), nullable=False)
    kind = Column(String(16), nullable=False)                # ORGANIZATION_KIND
    amount = Column(Money(), nullable=False)                 # signed
    balance_after = Column(Money(), nullable=False)
    idempotency_key = Column(String(64))                     # e.g. "settle:<order_no>", "orgtopup:<key>"
    source = Column(String(64))                              # e.g. bank transfer reference, order no
    order_id = Column(Integer, ForeignKey("ev_charge_order.id"), index=True)
    card_id = Column(Integer, ForeignKey("ev_card.id"), index=True)
    member_id = Column(Integer, ForeignKey("ev_member.id"), index=True)   # the card's member, if any
    remark = Column(String(255))                             # reason
    created_by_id = Column(Integer, ForeignKey("ab_user.id"))   # staff for top-ups and adjustments
    created_at = Column(DateTime, nullable=False, default=utcnow)

    organization = relationship("Organization", lazy="selectin")
    order = relationship("ChargeOrder")
    card = relationship("Card")
    member = relationship("Member")
    created_by = relationship("User", foreign_keys=[created_by_id], lazy="selectin")

    def __str__(self):
        return f"{self.kind} {self.amount}"

    __repr__ = __str__


class Card(OperatorMixin, TimestampMixin, db.Model):
    """电卡. Online cards pay from the member/organization account; offline cards hold ``balance``."""

    __tablename__ = "ev_card"
    __table_args__ = (
        UniqueConstraint("logical_no", name="uq_ev_card_logical_no"),
        UniqueConstraint("physical_no", name="uq_ev_card_physical_no"),
    )

    id = Column(Integer, primary_key=True)
    organization_id = Column(Integer, ForeignKey("ev_organization.id"), index=True)
    member_id = Column(Integer, ForeignKey("ev_member.id"), index=True)
    logical_no = Column(String(16), nullable=False)          # 逻辑卡号 (BCD8, 16 digits)
    physical_no = Column(String(16), nullable=False)         # 物理卡号 (BIN8, 16 hex)
    card_type = Column(String(16), nullable=False, default="online")
    status = Column(String(16), nullable=False, default="active")
    balance = Column(Money(), nullable=False, default=0)     # offline cards only
    password_md5 = Column(String(32))                        # 0x31 password check, if any
    remark = Column(String(255))
    pay_mode = Column(String(16))                            # PAY_MODE; NULL = the organization's

    organization = relationship("Organization", back_populates="cards", lazy="selectin")
    member = relationship("Member", lazy="selectin")

    def __str__(self):
        return self.logical_no or self.physical_no or f"Card #{self.id}"

    __repr__ = __str__


class Channel(OperatorMixin, TimestampMixin, db.Model):
    """渠道: where an order comes from (mini program, app, pile start, interconnect partner)."""

    __tablename__ = "ev_channel"
    __table_args__ = (
        UniqueConstraint("code", name="uq_ev_channel_code"),
        Index("ix_ev_channel_operator_type", "operator_id", "channel_type"),
    )

    id = Column(Integer, primary_key=True)
    code = Column(String(32), nullable=False)                # internal stable code
    name = Column(String(64), nullable=False)
    channel_type = Column(String(16), nullable=False)
    rate = Column(Numeric(7, 6), nullable=False, default=0)  # 渠道费率, fraction (0.006 = 0.6 %)
    identifier = Column(String(64), index=True)              # 渠道标识 (e.g. WeChat appid)
    app_secret = Column(Sealed())                            # WeChat AppSecret (mini program): write-only, sealed
    enabled = Column(Boolean, nullable=False, default=True)
    remark = Column(String(255))
    qr_prefix = Column(String(200))                          # 二维码前缀, e.g. https://example.com/q?c=

    def __str__(self):
        return self.name or self.code or f"Channel #{self.id}"

    __repr__ = __str__


class PaymentGateway(TimestampMixin, db.Model):
    __tablename__ = "ev_payment_gateway"
    __table_args__ = (UniqueConstraint("code", name="uq_ev_payment_gateway_code"),)

    id = Column(Integer, primary_key=True)
    code = Column(String(32), nullable=False)
    gateway_type = Column(String(16), nullable=False)        # 网关类型
    name = Column(String(64), nullable=False)                # 网关名称
    display_name = Column(String(64))                        # 展示名称
    config = Column(JSON, default=dict)                      # e.g. WeChat Pay v3 mchid, serial, key refs
    sort = Column(Integer, nullable=False, default=0)
    enabled = Column(Boolean, nullable=False, default=True)
    remark = Column(String(255))
    # WeChat Pay v3 merchant credentials (public-key mode). Secrets are stored encrypted
    # (app/services/secrets_box.py) and never shown again: the screens say whether they are set.
    mchid = Column(String(32))                               # 商户号
    appid = Column(String(32))                               # 小程序 AppID
    merchant_serial_no = Column(String(64))                  # 商户 API 证书序列号
    api_v3_key_enc = Column(Text)                            # APIv3 密钥 (encrypted)
    private_key_enc = Column(Text)                           # 商户 API 私钥 PEM (encrypted)
    platform_public_key_enc = Column(Text)                   # 微信支付公钥 PEM (encrypted)
    platform_public_key_id = Column(String(64))              # 微信支付公钥 ID (PUB_KEY_ID_...)
    api_base_url = Column(String(255))                       # empty: WECHATPAY_API_BASE

    def __str__(self):
        return self.display_name or self.name or self.code or f"Gateway #{self.id}"

    __repr__ = __str__


class Payment(OperatorMixin, TimestampMixin, db.Model):
    __tablename__ = "ev_payment"
    HISTORY = True  # money/history record: never deleted (app/services/deletion.py)
    __table_args__ = (
        UniqueConstraint("payment_no", name="uq_ev_payment_payment_no"),
        Index("ix_ev_payment_operator_created", "operator_id", "created_at"),
        Index("ix_ev_payment_member_created", "member_id", "created_at"),
        Index("ix_ev_payment_gateway_trade_no", "gateway_trade_no"),
    )

    id = Column(Integer, primary_key=True)
    payment_no = Column(String(32), nullable=False)          # our out_trade_no
    gateway_id = Column(Integer, ForeignKey("ev_payment_gateway.id"), nullable=False, index=True)
    member_id = Column(Integer, ForeignKey("ev_member.id"))
    purpose = Column(String(16), nullable=False, default="recharge")
    order_id = Column(Integer, ForeignKey("ev_charge_order.id"), index=True)
    occupancy_order_id = Column(Integer, ForeignKey("ev_occupancy_order.id"), index=True)
    amount = Column(Money(), nullable=False)
    refunded_amount = Column(Money(), nullable=False, default=0)
    status = Column(String(16), nullable=False, default="created")
    gateway_trade_no = Column(String(64))                    # e.g. WeChat transaction_id
    paid_at = Column(DateTime)
    expires_at = Column(DateTime)
    notify_payload = Column(JSON)                            # last verified gateway notification
    remark = Column(String(255))

    gateway = relationship("PaymentGateway", lazy="selectin")
    member = relationship("Member", lazy="selectin")
    order = relationship("ChargeOrder")

    def __str__(self):
        return self.payment_no or f"Payment #{self.id}"

    __repr__ = __str__


# The orders of an invoice. An order is on at most one live invoice: the partial unique index
# ``uq_ev_invoice_order_live`` (order_id WHERE released_at IS NULL, SQLite and PostgreSQL) lets the
# database refuse a second request over it; rejecting an invoice stamps ``released_at`` on its links
# (the rows stay: the rejected invoice still shows its orders) so the orders can be requested again.
invoice_order = Table(
    "ev_invoice_order",
    db.Model.metadata,
    Column("invoice_id", Integer, ForeignKey("ev_invoice.id", ondelete="CASCADE"), primary_key=True),
    Column("order_id", Integer, ForeignKey("ev_charge_order.id"), primary_key=True, index=True),
    Column("released_at", DateTime),
    Index("uq_ev_invoice_order_live", "order_id", unique=True,
          postgresql_where=text("released_at IS NULL"), sqlite_where=text("released_at IS NULL")),
)


class Invoice(OperatorMixin, TimestampMixin, db.Model):
    """发票: a member's request over chosen orders; issued (or rejected) by staff."""

    __tablename__ = "ev_invoice"
    HISTORY = True  # money/history record: never deleted (app/services/deletion.py)
    __table_args__ = (
        Index("ix_ev_invoice_operator_created", "operator_id", "created_at"),
        Index("ix_ev_invoice_operator_status", "operator_id", "status", "created_at"),
        Index("ix_ev_invoice_member_created", "member_id", "created_at"),
    )

    id = Column(Integer, primary_key=True)
    member_id = Column(Integer, ForeignKey("ev_member.id"), nullable=False)
    title_type = Column(String(16), nullable=False, default="person")   # 抬头类型
    title = Column(String(128), nullable=False)                         # 发票抬头
    tax_no = Column(String(32))                                         # 税号
    company_address = Column(String(255))
    company_phone = Column(String(32))
    bank_name = Column(String(128))
    bank_account = Column(String(64))
    invoice_type = Column(String(16), nullable=False, default="electronic")
    amount = Column(Money(), nullable=False, default=0)                 # 开票金额
    electricity_amount = Column(Money(), nullable=False, default=0)     # 电费金额
    service_amount = Column(Money(), nullable=False, default=0)         # 服务费金额
    status = Column(String(16), nullable=False, default="applied")
    email = Column(String(128))                                         # 收票邮箱
    phone = Column(String(20))
    invoice_no = Column(String(32))                                     # number of the issued invoice
    file_name = Column(String(255))                                     # stored PDF, if uploaded
    reject_reason = Column(String(255))
    issued_by_id = Column(Integer, ForeignKey("ab_user.id"))
    issued_at = Column(DateTime)
    remark = Column(String(255))

    member = relationship("Member", lazy="selectin")
    orders = relationship("ChargeOrder", secondary=invoice_order, order_by="ChargeOrder.id")
    issued_by = relationship("User", foreign_keys=[issued_by_id], viewonly=True)

    def __str__(self):
        return f"{self.title} {self.amount}" if self.title else f"Invoice #{self.id}"

    __repr__ = __str__
