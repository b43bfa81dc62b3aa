"""Pre-aggregated reports, filled by an RQ job (电站报表 / 运营报表)."""
from sqlalchemy import BigInteger, Column, Date, ForeignKey, Index, Integer, Numeric, UniqueConstraint
from sqlalchemy.orm import relationship

from app.extensions import db
from app.models.base import Energy, Money, OperatorMixin, TimestampMixin


class DailyStationStat(OperatorMixin, TimestampMixin, db.Model):
    """One row per station per local day (``TIMEZONE``)."""

    __tablename__ = "ev_daily_station_stat"
    HISTORY = True  # money/history record: never deleted (app/services/deletion.py)
    __table_args__ = (
        UniqueConstraint("station_id", "day", name="uq_ev_daily_station_stat_station_day"),
        Index("ix_ev_daily_station_stat_operator_day", "operator_id", "day"),
    )

    id = Column(Integer, primary_key=True)
    station_id = Column(Integer, ForeignKey("ev_station.id", ondelete="CASCADE"), nullable=False)
    day = Column(Date, nullable=False)
    order_count = Column(Integer, nullable=False, default=0)
    member_count = Column(Integer, nullable=False, default=0)       # distinct members
    energy = Column(Energy(), nullable=False, default=0)
    electricity_fee = Column(Money(), nullable=False, default=0)
    service_fee = Column(Money(), nullable=False, default=0)
    total_amount = Column(Money(), nullable=False, default=0)
    discount_amount = Column(Money(), nullable=False, default=0)
    paid_amount = Column(Money(), nullable=False, default=0)
    occupancy_amount = Column(Money(), nullable=False, default=0)
    duration_seconds = Column(BigInteger, nullable=False, default=0)
    connector_count = Column(Integer, nullable=False, default=0)
    # charging seconds / (connector_count * 86400), fraction 0..1
    utilisation = Column(Numeric(7, 4), nullable=False, default=0)

    station = relationship("Station", lazy="selectin")

    def __str__(self):
        return f"{self.station} {self.day}"

    __repr__ = __str__
