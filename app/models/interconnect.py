"""Interconnect (T/CEC 102) client-side records: reconciliation disputes and the stations we pull
from partner platforms (获取充电站).

- :class:`ReconciliationDispute`: one disputed order of a ``check_charge_orders`` exchange, with both
  sides' figures. ``direction`` 'out' = we sent the check (their answer lists the dispute), 'in' = the
  partner sent it to us (we found the dispute). History record: never deleted.
- :class:`PartnerStation`: one station of a partner's ``query_stations_info``; its EquipmentInfos
  (with their ConnectorInfos) are kept as received in ``equipment`` (JSON) and shown on the detail page.
"""
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import relationship

from app.extensions import db
from app.models.base import N_, Energy, Money, OperatorMixin, utcnow

DISPUTE_REASON = [(1, N_("Transaction not found")), (2, N_("Amount wrong")), (3, N_("Energy wrong")),
                  (4, N_("Other"))]
DISPUTE_DIRECTION = [("out", N_("We checked them")), ("in", N_("They checked us"))]

PARTNER_STATION_TYPE = [(1, N_("Public")), (50, N_("Personal")), (100, N_("Bus")), (101, N_("Sanitation")),
                        (102, N_("Logistics")), (103, N_("Taxi")), (255, N_("Other"))]
PARTNER_STATION_STATUS = [(0, N_("Unknown")), (1, N_("Under construction")), (5, N_("Closed")),
                          (6, N_("Maintenance")), (50, N_("In use"))]


class ReconciliationDispute(OperatorMixin, db.Model):
    __tablename__ = "ev_reconciliation_dispute"
    HISTORY = True  # money/history record: never deleted (app/services/deletion.py)
    __table_args__ = (
        Index("ix_ev_recon_dispute_partner_created", "partner_id", "created_at"),
        UniqueConstraint("partner_id", "direction", "check_order_seq", "start_charge_seq",
                         name="uq_ev_recon_dispute_check_order"),
    )

    id = Column(Integer, primary_key=True)
    partner_id = Column(Integer, ForeignKey("ev_partner.id"), nullable=False)
    direction = Column(String(8), nullable=False, default="out")
    check_order_seq = Column(String(32), nullable=False)        # CheckOrderSeq (27)
    start_charge_seq = Column(String(64), nullable=False)       # StartChargeSeq of the order
    order_id = Column(Integer, ForeignKey("ev_charge_order.id"), index=True)
    period_start = Column(DateTime)                             # checked window (UTC)
    period_end = Column(DateTime)
    their_power = Column(Energy())
    their_money = Column(Money())
    our_power = Column(Energy())
    our_money = Column(Money())
    reason = Column(Integer, nullable=False, default=4)         # DisputeReason
    created_at = Column(DateTime, nullable=False, default=utcnow)

    partner = relationship("Partner", lazy="selectin")
    order = relationship("ChargeOrder", lazy="select")

    def __str__(self):
        return f"{self.check_order_seq} {self.start_charge_seq}"

    __repr__ = __str__


class PartnerStation(OperatorMixin, db.Model):
    """A station of a partner platform (their StationInfo), upserted by 获取充电站."""

    __tablename__ = "ev_partner_station"
    __table_args__ = (
        UniqueConstraint("partner_id", "station_code", name="uq_ev_partner_station_code"),
    )

    id = Column(Integer, primary_key=True)
    partner_id = Column(Integer, ForeignKey("ev_partner.id", ondelete="CASCADE"), nullable=False, index=True)
    station_code = Column(String(32), nullable=False)           # StationID
    station_operator_code = Column(String(16))                  # OperatorID
    equipment_owner_code = Column(String(16))                   # EquipmentOwnerID
    name = Column(String(64))                                   # StationName
    area_code = Column(String(16))
    address = Column(String(128))
    station_tel = Column(String(32))
    service_tel = Column(String(32))
    station_type = Column(Integer)
    station_status = Column(Integer)
    park_nums = Column(Integer)
    lng = Column(Numeric(10, 6))
    lat = Column(Numeric(10, 6))
    construction = Column(Integer)
    busine_hours = Column(String(128))
    electricity_fee = Column(String(256))
    service_fee = Column(String(128))
    park_fee = Column(String(128))
    equipment_count = Column(Integer, nullable=False, default=0)
    connector_count = Column(Integer, nullable=False, default=0)
    equipment = Column(JSON)                                    # EquipmentInfos[] as received
    raw = Column(JSON)                                          # the other StationInfo fields
    fetched_at = Column(DateTime, nullable=False, default=utcnow)

    partner = relationship("Partner", lazy="selectin")

    def __str__(self):
        return self.name or self.station_code or f"Partner station #{self.id}"

    __repr__ = __str__
