"""Stations (充电站) and price templates (计费模版).

Enumerations are short strings; the T/CEC numeric codes partners need are kept in ``*_TCEC``
mapping dicts beside them.
"""
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import relationship

from app.extensions import db
from app.models.base import N_, Money, OperatorMixin, Price, TimestampMixin

# 建设类型 / T/CEC StationType
STATION_TYPE = [
    ("public", N_("Public")),
    ("personal", N_("Personal")),
    ("bus", N_("Bus only")),
    ("sanitation", N_("Sanitation vehicles only")),
    ("logistics", N_("Logistics vehicles only")),
    ("taxi", N_("Taxi only")),
    ("other", N_("Other")),
]
STATION_TYPE_TCEC = {"public": 1, "personal": 50, "bus": 100, "sanitation": 101,
                     "logistics": 102, "taxi": 103, "other": 255}

# 电站状态 / T/CEC StationStatus
STATION_STATUS = [
    ("unknown", N_("Unknown")),
    ("building", N_("Under construction")),
    ("closed", N_("Closed")),
    ("maintenance", N_("Maintenance")),
    ("normal", N_("In use")),
]
STATION_STATUS_TCEC = {"unknown": 0, "building": 1, "closed": 5, "maintenance": 6, "normal": 50}

# 建设场所 / T/CEC Construction
SITE_TYPE = [
    ("residential", N_("Residential area")),
    ("public_institution", N_("Public institution")),
    ("enterprise", N_("Enterprise")),
    ("office", N_("Office building")),
    ("industrial_park", N_("Industrial park")),
    ("transport_hub", N_("Transport hub")),
    ("venue", N_("Sports or culture venue")),
    ("green_space", N_("Urban green space")),
    ("building_parking", N_("Building car park")),
    ("roadside", N_("Roadside parking")),
    ("highway_service", N_("Highway service area")),
    ("other", N_("Other")),
]
SITE_TYPE_TCEC = {"residential": 1, "public_institution": 2, "enterprise": 3, "office": 4,
                  "industrial_park": 5, "transport_hub": 6, "venue": 7, "green_space": 8,
                  "building_parking": 9, "roadside": 10, "highway_service": 11, "other": 255}

# 拥有类型
OWNERSHIP_TYPE = [
    ("self", N_("Self-owned")),
    ("leased", N_("Leased")),
    ("partner", N_("Partner-owned")),
    ("other", N_("Other")),
]

# 来源 (the list column "系统本身"): built here or pulled from an interconnect partner
STATION_SOURCE = [
    ("local", N_("This system")),
    ("interconnect", N_("Interconnect partner")),
]

# 站点服务 (values stored in Station.services, a JSON list)
STATION_SERVICES = [
    ("wc", N_("Toilet")),
    ("lounge", N_("Lounge")),
    ("shop", N_("Convenience store")),
    ("restaurant", N_("Restaurant")),
    ("car_wash", N_("Car wash")),
    ("free_parking", N_("Free parking")),
    ("parking_lock", N_("Parking lock")),
    ("canopy", N_("Canopy")),
    ("wifi", N_("Wi-Fi")),
]

# 占位费计费单位
OCCUPANCY_UNIT = [("minute", N_("Per minute")), ("hour", N_("Per hour"))]

# Tariff level of a period; YKC rate index 0 sharp, 1 peak, 2 flat, 3 valley
PRICE_LEVEL = [("sharp", N_("Sharp")), ("peak", N_("Peak")), ("flat", N_("Flat")), ("valley", N_("Valley"))]
PRICE_LEVEL_YKC = {"sharp": 0, "peak": 1, "flat": 2, "valley": 3}


class Station(OperatorMixin, TimestampMixin, db.Model):
    __tablename__ = "ev_station"
    __table_args__ = (
        UniqueConstraint("code", name="uq_ev_station_code"),
        Index("ix_ev_station_operator_name", "operator_id", "name"),
        Index("ix_ev_station_operator_status", "operator_id", "status"),
    )

    id = Column(Integer, primary_key=True)
    code = Column(String(20), nullable=False)                # 充电站编号 / T/CEC StationID
    name = Column(String(50), nullable=False)
    station_type = Column(String(16), nullable=False, default="public")
    status = Column(String(16), nullable=False, default="normal")
    site_type = Column(String(32), nullable=False, default="other")   # 建设场所
    ownership = Column(String(16), nullable=False, default="self")    # 拥有类型
    source = Column(String(16), nullable=False, default="local")
    equipment_owner_code = Column(String(9))                 # T/CEC EquipmentOwnerID

    # region (GB/T 2260 codes + names); area_code = district code sent to T/CEC
    province_code = Column(String(6))
    province = Column(String(32))
    city_code = Column(String(6))
    city = Column(String(32))
    district_code = Column(String(6))
    district = Column(String(32))
    area_code = Column(String(6))
    address = Column(String(100), nullable=False)
    lng = Column(Numeric(10, 6))                             # GCJ-02
    lat = Column(Numeric(10, 6))                             # GCJ-02

    park_nums = Column(Integer, nullable=False, default=0)   # 车位数 (0 = unknown)
    park_info = Column(String(100))                          # 车位楼层及数量描述
    park_fee = Column(String(100))                           # 停车费说明
    site_guide = Column(String(100))                         # 站点引导
    services = Column(JSON, default=list)                    # 站点服务: list of STATION_SERVICES
    photos = Column(JSON, default=list)                      # stored file names
    match_cars = Column(String(100))
    business_hours = Column(String(100))
    station_tel = Column(String(30))
    service_tel = Column(String(30))
    payment_methods = Column(String(20))                     # T/CEC Payment text
    support_order = Column(Boolean, nullable=False, default=False)  # reservation support
    remark = Column(String(100))

    price_template_id = Column(Integer, ForeignKey("ev_price_template.id"), index=True)

    # occupancy (占位) rule
    occupancy_enabled = Column(Boolean, nullable=False, default=False)
    occupancy_free_minutes = Column(Integer, nullable=False, default=0)
    occupancy_price = Column(Price(), nullable=False, default=0)
    occupancy_unit = Column(String(16), nullable=False, default="minute")
    occupancy_cap = Column(Money())                          # NULL = no cap

    price_template = relationship("PriceTemplate", lazy="selectin")
    piles = relationship("Pile", back_populates="station", order_by="Pile.code")

    def __str__(self):
        return self.name or self.code or f"Station #{self.id}"

    __repr__ = __str__


class PriceTemplate(OperatorMixin, TimestampMixin, db.Model):
    __tablename__ = "ev_price_template"
    __table_args__ = (UniqueConstraint("code", name="uq_ev_price_template_code"),)

    id = Column(Integer, primary_key=True)
    code = Column(String(32), nullable=False)
    name = Column(String(64), nullable=False)
    # bumped on every change; YKC billing model id (BCD2) sent to piles is derived from it
    version = Column(Integer, nullable=False, default=1)
    enabled = Column(Boolean, nullable=False, default=True)
    remark = Column(Text)

    periods = relationship(
        "PricePeriod", back_populates="template", order_by="PricePeriod.start_minute",
        cascade="all, delete-orphan", lazy="selectin",
    )

    @property
    def period_summary(self):
        """The periods in clock order (the admin's 计费时段 column formats them)."""
        return list(self.periods)

    def __str__(self):
        return self.name or self.code or f"Template #{self.id}"

    __repr__ = __str__


class PricePeriod(db.Model):
    """One tariff period, local clock minutes [start_minute, end_minute); periods cover 0..1440."""

    __tablename__ = "ev_price_period"
    __table_args__ = (
        CheckConstraint("start_minute >= 0 AND start_minute < 1440", name="ck_ev_price_period_start"),
        CheckConstraint("end_minute > start_minute AND end_minute <= 1440", name="ck_ev_price_period_end"),
        UniqueConstraint("template_id", "start_minute", name="uq_ev_price_period_template_start"),
    )

    id = Column(Integer, primary_key=True)
    template_id = Column(Integer, ForeignKey("ev_price_template.id", ondelete="CASCADE"),
                         nullable=False, index=True)
    start_minute = Column(Integer, nullable=False)
    end_minute = Column(Integer, nullable=False)
    level = Column(String(8), nullable=False, default="flat")
    electricity_price = Column(Price(), nullable=False)       # yuan/kWh
    service_price = Column(Price(), nullable=False)           # yuan/kWh

    template = relationship("PriceTemplate", back_populates="periods")

    def __str__(self):
        s, e = self.start_minute or 0, self.end_minute or 0
        return f"{s // 60:02d}:{s % 60:02d}-{e // 60:02d}:{e % 60:02d}"

    __repr__ = __str__
