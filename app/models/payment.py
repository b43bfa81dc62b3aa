"""Refunds of payments (退款): WeChat Pay refunds of prepaid order amounts and of wallet balance.

A refund row is money history (never deleted). ``Payment.refunded_amount`` is the amount reserved for
refunds of the payment (in flight or done): a refund that fails gives its amount back to the payment.
"""
from sqlalchemy import JSON, Column, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import backref, relationship

from app.extensions import db
from app.models.base import N_, Money, OperatorMixin, TimestampMixin

# Refund.kind: what is refunded
REFUND_KIND = [("order", N_("Unused prepayment")), ("wallet", N_("Wallet balance"))]
# Refund.status
REFUND_STATE = [
    ("pending", N_("To be sent")),
    ("processing", N_("Processing")),
    ("succeeded", N_("Refunded")),
    ("failed", N_("Failed")),
    ("retried", N_("Retried")),
]


class Refund(OperatorMixin, TimestampMixin, db.Model):
    __tablename__ = "ev_refund"
    HISTORY = True  # money/history record: never deleted (app/services/deletion.py)
    __table_args__ = (
        UniqueConstraint("refund_no", name="uq_ev_refund_refund_no"),
        Index("ix_ev_refund_operator_created", "operator_id", "created_at"),
        Index("ix_ev_refund_member_created", "member_id", "created_at"),
        Index("ix_ev_refund_status", "status"),
    )

    id = Column(Integer, primary_key=True)
    refund_no = Column(String(32), nullable=False)                  # our out_refund_no
    payment_id = Column(Integer, ForeignKey("ev_payment.id"), nullable=False, index=True)
    member_id = Column(Integer, ForeignKey("ev_member.id"))
    order_id = Column(Integer, ForeignKey("ev_charge_order.id"), index=True)
    kind = Column(String(16), nullable=False, default="order")
    amount = Column(Money(), nullable=False)
    status = Column(String(16), nullable=False, default="pending")
    reason = Column(String(255))
    gateway_refund_id = Column(String(64))                          # WeChat refund_id
    requested_by_id = Column(Integer, ForeignKey("ab_user.id"))     # staff who asked (None: member/system)
    wallet_entry_id = Column(Integer, ForeignKey("ev_wallet_entry.id"))   # the wallet debit (kind wallet)
    retry_of_id = Column(Integer, ForeignKey("ev_refund.id"))
    attempts = Column(Integer, nullable=False, default=0)
    last_error = Column(String(255))
    succeeded_at = Column(DateTime)
    notify_payload = Column(JSON)                                   # last verified gateway answer

    payment = relationship("Payment", lazy="selectin",
                           backref=backref("refunds", order_by="Refund.id", lazy="select"))
    member = relationship("Member", lazy="selectin")
    order = relationship("ChargeOrder")
    requested_by = relationship("User", foreign_keys=[requested_by_id], lazy="selectin")

    def __str__(self):
        return self.refund_no or f"Refund #{self.id}"

    __repr__ = __str__
