"""Interconnect partners (互联互通, T/CEC 102) and the log of every exchange with them.

Both key sets are sealed at rest (``Sealed``: app/services/secrets_box.py); the screens mask them.
"""
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy import false as sa_false
from sqlalchemy.orm import relationship

from app.extensions import db
from app.models.base import N_, OperatorMixin, Sealed, TimestampMixin, utcnow

PARTNER_TYPE = [("platform", N_("Platform")), ("regulator", N_("Regulator"))]
PARTNER_TYPE_TCEC = {"platform": 1, "regulator": 2}

FIELD_SPELLING = [("sevice", N_("Sevice* (standard)")), ("service", N_("Service*"))]
MONEY_FIELD = [("ElecMoney", N_("ElecMoney (standard)")), ("ElectMoney", N_("ElectMoney"))]

PUSH_DIRECTION = [("out", N_("We called them")), ("in", N_("They called us"))]
PUSH_STATUS = [("pending", N_("Pending")), ("success", N_("Success")), ("failed", N_("Failed")),
               ("retrying", N_("Retrying"))]


class Partner(OperatorMixin, TimestampMixin, db.Model):
    __tablename__ = "ev_partner"
    __table_args__ = (
        UniqueConstraint("operator_id", "partner_operator_code", name="uq_ev_partner_operator_code"),
    )

    id = Column(Integer, primary_key=True)
    name = Column(String(64), nullable=False)                # 运营商名称
    partner_type = Column(String(16), nullable=False, default="platform")
    # theirs
    partner_operator_code = Column(String(9), nullable=False)    # their OperatorID
    operator_secret = Column(Sealed(), nullable=False)
    data_secret = Column(Sealed(), nullable=False)
    data_secret_iv = Column(Sealed(), nullable=False)
    sig_secret = Column(Sealed(), nullable=False)
    base_url = Column(String(255))                           # 接口地址
    # ours (what they use to call us)
    our_operator_code = Column(String(9), nullable=False)
    our_operator_secret = Column(Sealed(), nullable=False)
    our_data_secret = Column(Sealed(), nullable=False)
    our_data_secret_iv = Column(Sealed(), nullable=False)
    our_sig_secret = Column(Sealed(), nullable=False)

    channel_id = Column(Integer, ForeignKey("ev_channel.id"), index=True)
    ip_allowlist = Column(Text)                              # IP/CIDR, comma or newline separated
    tenant_id = Column(String(32))                           # 租户ID
    push_enabled = Column(Boolean, nullable=False, default=True)
    # dialect (app/interconnect/dialect.py)
    field_spelling = Column(String(16), nullable=False, default="sevice", server_default="sevice")
    money_field = Column(String(16), nullable=False, default="ElecMoney", server_default="ElecMoney")
    base_path = Column(String(64), nullable=False, default="/evcs/v1.0/", server_default="/evcs/v1.0/")
    status_as_array = Column(Boolean, nullable=False, default=False, server_default=sa_false())
    enabled = Column(Boolean, nullable=False, default=True)
    remark = Column(String(255))

    channel = relationship("Channel", lazy="selectin")

    def __str__(self):
        return self.name or self.partner_operator_code or f"Partner #{self.id}"

    __repr__ = __str__


class PushLog(OperatorMixin, db.Model):
    """One T/CEC request, either direction; retries update ``attempts``/``next_retry_at``."""

    __tablename__ = "ev_push_log"
    HISTORY = True  # money/history record: never deleted (app/services/deletion.py)
    __table_args__ = (
        Index("ix_ev_push_log_operator_created", "operator_id", "created_at"),
        Index("ix_ev_push_log_partner_created", "partner_id", "created_at"),
        Index("ix_ev_push_log_status_retry", "status", "next_retry_at"),
    )

    id = Column(Integer, primary_key=True)
    partner_id = Column(Integer, ForeignKey("ev_partner.id", ondelete="CASCADE"), nullable=False)
    direction = Column(String(8), nullable=False, default="out")
    interface = Column(String(64), nullable=False)           # e.g. notification_charge_order_info
    seq = Column(String(8))                                  # envelope Seq
    order_id = Column(Integer, ForeignKey("ev_charge_order.id"), index=True)
    business_key = Column(String(64), index=True)            # StartChargeSeq / ConnectorID / ...
    request_body = Column(JSON)                              # decrypted Data
    response_body = Column(JSON)
    http_status = Column(Integer)
    ret = Column(Integer)                                    # T/CEC Ret
    msg = Column(String(255))
    status = Column(String(16), nullable=False, default="pending")
    attempts = Column(Integer, nullable=False, default=0)
    next_retry_at = Column(DateTime)
    duration_ms = Column(Integer)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    updated_at = Column(DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    partner = relationship("Partner", lazy="selectin")

    def __str__(self):
        return f"{self.interface} {self.status}"

    __repr__ = __str__
