"""Operator (运营商): the tenant. Every tenant table points here through ``OperatorMixin``."""
from sqlalchemy import Boolean, Column, Integer, String, UniqueConstraint

from app.extensions import db
from app.models.base import TimestampMixin


class Operator(TimestampMixin, db.Model):
    __tablename__ = "ev_operator"
    __table_args__ = (UniqueConstraint("code", name="uq_ev_operator_code"),)

    id = Column(Integer, primary_key=True)
    code = Column(String(9), nullable=False)                 # T/CEC OperatorID, 9 chars
    name = Column(String(64), nullable=False)                # OperatorName
    short_name = Column(String(32))
    credit_code = Column(String(18))                         # 统一社会信用代码
    contact = Column(String(32))
    tel1 = Column(String(32))                                # OperatorTel1
    tel2 = Column(String(32))                                # OperatorTel2
    reg_address = Column(String(128))                        # OperatorRegAddress
    note = Column(String(255))                               # OperatorNote
    enabled = Column(Boolean, nullable=False, default=True)

    def __str__(self):
        return self.name or self.code or f"Operator #{self.id}"

    __repr__ = __str__
