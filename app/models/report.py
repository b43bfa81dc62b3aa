"""Pre-aggregated reports (电站报表 / 运营报表 / 首页), filled by ``app/services/stats.py``.

Two tables (DESIGN note in ``app/services/stats.py``):
- :class:`DailyStationStat`: one row per station per local day (``TIMEZONE``) — every figure of the
  station, including connectors, available gun time, utilisation and failures;
- :class:`DailyChannelStat`: one row per station, local day and channel (订单来源) with the additive
  order figures of the orders of that channel only (orders without a channel have no row here).
  A channel filter reads this table; the dashboard's 月度渠道电量排行 is a GROUP BY channel on it.
"""
from sqlalchemy import BigInteger, Column, Date, ForeignKey, Index, Integer, Numeric, UniqueConstraint
from sqlalchemy.orm import relationship

from app.extensions import db
from app.models.base import Energy, Money, OperatorMixin, TimestampMixin


class _OrderFigures:
    """Additive figures of the settled orders of one bucket (same names in both tables)."""

    order_count = Column(Integer, nullable=False, default=0)
    energy = Column(Energy(), nullable=False, default=0)
    # energy by tariff period (OrderPeriod.level)
    energy_sharp = Column(Energy(), nullable=False, default=0)
    energy_peak = Column(Energy(), nullable=False, default=0)
    energy_flat = Column(Energy(), nullable=False, default=0)
    energy_valley = Column(Energy(), nullable=False, default=0)
    electricity_fee = Column(Money(), nullable=False, default=0)
    service_fee = Column(Money(), nullable=False, default=0)
    total_amount = Column(Money(), nullable=False, default=0)
    discount_amount = Column(Money(), nullable=False, default=0)
    paid_amount = Column(Money(), nullable=False, default=0)
    duration_seconds = Column(BigInteger, nullable=False, default=0)   # charging time


class DailyStationStat(_OrderFigures, OperatorMixin, TimestampMixin, db.Model):
    """One row per station per local day (``TIMEZONE``)."""

    __tablename__ = "ev_daily_station_stat"
    HISTORY = True  # money/history record: never deleted (app/services/deletion.py)
    __table_args__ = (
        UniqueConstraint("station_id", "day", name="uq_ev_daily_station_stat_station_day"),
        Index("ix_ev_daily_station_stat_operator_day", "operator_id", "day"),
        Index("ix_ev_daily_station_stat_day", "day"),
    )

    id = Column(Integer, primary_key=True)
    station_id = Column(Integer, ForeignKey("ev_station.id", ondelete="CASCADE"), nullable=False)
    day = Column(Date, nullable=False)
    member_count = Column(Integer, nullable=False, default=0)       # distinct members of the day
    occupancy_amount = Column(Money(), nullable=False, default=0)
    failed_count = Column(Integer, nullable=False, default=0)       # start failures
    abnormal_count = Column(Integer, nullable=False, default=0)     # abnormal orders
    connector_count = Column(Integer, nullable=False, default=0)
    available_seconds = Column(BigInteger, nullable=False, default=0)  # connectors x seconds of the day
    # duration_seconds / available_seconds, fraction 0..1 (a range: sum / sum, never an average)
    utilisation = Column(Numeric(7, 4), nullable=False, default=0)

    station = relationship("Station", lazy="selectin")

    def __str__(self):
        return f"{self.station} {self.day}"

    __repr__ = __str__


class DailyChannelStat(_OrderFigures, OperatorMixin, TimestampMixin, db.Model):
    """One row per station, local day and channel: the settled orders of that channel."""

    __tablename__ = "ev_daily_channel_stat"
    HISTORY = True  # money/history record: never deleted (app/services/deletion.py)
    __table_args__ = (
        UniqueConstraint("station_id", "day", "channel_id", name="uq_ev_daily_channel_stat_station_day_channel"),
        Index("ix_ev_daily_channel_stat_operator_day", "operator_id", "day"),
        Index("ix_ev_daily_channel_stat_channel_day", "channel_id", "day"),
    )

    id = Column(Integer, primary_key=True)
    station_id = Column(Integer, ForeignKey("ev_station.id", ondelete="CASCADE"), nullable=False)
    day = Column(Date, nullable=False)
    channel_id = Column(Integer, ForeignKey("ev_channel.id"), nullable=False)

    station = relationship("Station", lazy="selectin")
    channel = relationship("Channel", lazy="selectin")

    def __str__(self):
        return f"{self.station} {self.day} {self.channel}"

    __repr__ = __str__
