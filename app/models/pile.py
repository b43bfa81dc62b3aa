"""Piles (电桩), guns (终端), their catalogues, alarms, status logs, fault reports and feedback.

``Manufacturer``, ``PileModel`` and ``FaultType`` are global (no ``operator_id``): they are
shared catalogues maintained by platform admins and used by every operator.
"""
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
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
from app.models.base import N_, OperatorMixin, TimestampMixin, utcnow

# 设备类型 / T/CEC EquipmentType (YKC login: 0 DC, 1 AC)
PILE_TYPE = [
    ("dc", N_("DC")),
    ("ac", N_("AC")),
    ("acdc", N_("AC/DC integrated")),
    ("wireless", N_("Wireless")),
    ("other", N_("Other")),
]
PILE_TYPE_TCEC = {"dc": 1, "ac": 2, "acdc": 3, "wireless": 4, "other": 5}
PILE_TYPE_YKC = {"dc": 0, "ac": 1}

# 通讯协议
PILE_PROTOCOL = [("ykc15", N_("YKC 1.5")), ("ykc16", N_("YKC 1.6"))]

# YKC login network type / carrier
NETWORK_TYPE = [("sim", N_("SIM")), ("lan", N_("LAN")), ("wan", N_("WAN")), ("other", N_("Other"))]
NETWORK_TYPE_YKC = {"sim": 0, "lan": 1, "wan": 2, "other": 3}
CARRIER = [("cmcc", N_("China Mobile")), ("ctcc", N_("China Telecom")), ("cucc", N_("China Unicom")),
           ("other", N_("Other"))]
CARRIER_YKC = {"cmcc": 0x00, "ctcc": 0x02, "cucc": 0x03, "other": 0x04}

# 枪状态 / T/CEC ConnectorStatusInfo.Status
CONNECTOR_STATUS = [
    ("offline", N_("Offline")),
    ("idle", N_("Idle")),
    ("occupied", N_("Plugged in, not charging")),
    ("charging", N_("Charging")),
    ("reserved", N_("Reserved / locked")),
    ("fault", N_("Fault")),
]
CONNECTOR_STATUS_TCEC = {"offline": 0, "idle": 1, "occupied": 2, "charging": 3,
                         "reserved": 4, "fault": 255}

# 接口类型 / T/CEC ConnectorType
CONNECTOR_TYPE = [
    ("household_socket", N_("Household socket (mode 2)")),
    ("ac_socket", N_("AC socket (mode 3, B)")),
    ("ac_plug", N_("AC plug with cable (mode 3, C)")),
    ("dc_gun", N_("DC gun with cable (mode 4)")),
    ("wireless", N_("Wireless pad")),
    ("other", N_("Other")),
]
CONNECTOR_TYPE_TCEC = {"household_socket": 1, "ac_socket": 2, "ac_plug": 3, "dc_gun": 4,
                       "wireless": 5, "other": 6}

# 国标 / T/CEC NationalStandard
NATIONAL_STANDARD = [("2011", N_("GB/T 2011")), ("2015", N_("GB/T 2015"))]
NATIONAL_STANDARD_TCEC = {"2011": 1, "2015": 2}

# T/CEC ParkStatus / LockStatus
PARK_STATUS = [("unknown", N_("Unknown")), ("free", N_("Free")), ("occupied", N_("Occupied"))]
PARK_STATUS_TCEC = {"unknown": 0, "free": 10, "occupied": 50}
LOCK_STATUS = [("unknown", N_("Unknown")), ("unlocked", N_("Unlocked (lowered)")), ("locked", N_("Locked (raised)"))]
LOCK_STATUS_TCEC = {"unknown": 0, "unlocked": 10, "locked": 50}

# 告警处理状态
ALARM_STATUS = [("pending", N_("Pending")), ("handled", N_("Handled")), ("ignored", N_("Ignored"))]

# 故障上报处理状态
FAULT_REPORT_STATUS = [
    ("pending", N_("Pending")),
    ("processing", N_("Processing")),
    ("resolved", N_("Resolved")),
    ("rejected", N_("Rejected")),
]

# 意见反馈状态
FEEDBACK_STATUS = [("new", N_("New")), ("replied", N_("Replied")), ("closed", N_("Closed"))]


class Manufacturer(TimestampMixin, db.Model):
    __tablename__ = "ev_manufacturer"
    __table_args__ = (UniqueConstraint("code", name="uq_ev_manufacturer_code"),)

    id = Column(Integer, primary_key=True)
    code = Column(String(32), nullable=False)                # 厂商代码 (T/CEC ManufacturerID)
    name = Column(String(64), nullable=False)
    address = Column(String(128))
    contact = Column(String(32))
    phone = Column(String(32))
    remark = Column(String(255))

    def __str__(self):
        return self.name or self.code or f"Manufacturer #{self.id}"

    __repr__ = __str__


class PileModel(TimestampMixin, db.Model):
    __tablename__ = "ev_pile_model"
    __table_args__ = (UniqueConstraint("code", name="uq_ev_pile_model_code"),)

    id = Column(Integer, primary_key=True)
    code = Column(String(32), nullable=False)                # 设备型号 (T/CEC EquipmentModel)
    name = Column(String(64))
    manufacturer_id = Column(Integer, ForeignKey("ev_manufacturer.id"), nullable=False, index=True)
    pile_type = Column(String(16), nullable=False, default="dc")
    power_kw = Column(Numeric(10, 2), nullable=False, default=0)
    gun_count = Column(Integer, nullable=False, default=1)
    remark = Column(String(255))
    supports_qr_prefix = Column(Boolean, nullable=False, default=False)   # YKC 0xF0 QR prefix push

    manufacturer = relationship("Manufacturer", lazy="selectin")

    def __str__(self):
        return self.code or self.name or f"Model #{self.id}"

    __repr__ = __str__


class Pile(OperatorMixin, TimestampMixin, db.Model):
    __tablename__ = "ev_pile"
    __table_args__ = (
        UniqueConstraint("code", name="uq_ev_pile_code"),
        Index("ix_ev_pile_operator_station", "operator_id", "station_id"),
        Index("ix_ev_pile_operator_online", "operator_id", "online"),
    )

    id = Column(Integer, primary_key=True)
    code = Column(String(14), nullable=False)                # 14 digits = T/CEC EquipmentID
    name = Column(String(64), nullable=False)
    station_id = Column(Integer, ForeignKey("ev_station.id"), nullable=False, index=True)
    model_id = Column(Integer, ForeignKey("ev_pile_model.id"), index=True)
    manufacturer_id = Column(Integer, ForeignKey("ev_manufacturer.id"), index=True)  # from model
    pile_type = Column(String(16), nullable=False, default="dc")
    protocol = Column(String(16), nullable=False, default="ykc15")
    production_date = Column(Date)
    commissioning_date = Column(Date)                        # 投运日期
    power_kw = Column(Numeric(10, 2), nullable=False, default=0)
    gun_count = Column(Integer, nullable=False, default=1)
    lng = Column(Numeric(10, 6))
    lat = Column(Numeric(10, 6))
    enabled = Column(Boolean, nullable=False, default=True)
    remark = Column(String(255))

    # reported by the pile (login 0x01 / heartbeat)
    online = Column(Boolean, nullable=False, default=False)
    protocol_version = Column(String(8))                     # e.g. "1.5"
    firmware = Column(String(32))
    network_type = Column(String(16))
    iccid = Column(String(20))                               # SIM ICCID
    carrier = Column(String(16))
    last_login_at = Column(DateTime)
    last_heartbeat_at = Column(DateTime)
    last_offline_at = Column(DateTime)
    billing_model_id = Column(Integer)                       # YKC model id last sent (BCD2)
    billing_model_synced_at = Column(DateTime)

    station = relationship("Station", back_populates="piles", lazy="selectin")
    model = relationship("PileModel", lazy="selectin")
    manufacturer = relationship("Manufacturer", lazy="selectin")
    connectors = relationship("Connector", back_populates="pile", order_by="Connector.gun_no",
                              cascade="all, delete-orphan")

    def __str__(self):
        return self.name or self.code or f"Pile #{self.id}"

    __repr__ = __str__


class Connector(OperatorMixin, TimestampMixin, db.Model):
    __tablename__ = "ev_connector"
    __table_args__ = (
        UniqueConstraint("code", name="uq_ev_connector_code"),
        UniqueConstraint("pile_id", "gun_no", name="uq_ev_connector_pile_gun"),
        Index("ix_ev_connector_operator_status", "operator_id", "status"),
        Index("ix_ev_connector_station_status", "station_id", "status"),
    )

    id = Column(Integer, primary_key=True)
    pile_id = Column(Integer, ForeignKey("ev_pile.id", ondelete="CASCADE"), nullable=False, index=True)
    station_id = Column(Integer, ForeignKey("ev_station.id"), nullable=False, index=True)  # from pile
    gun_no = Column(Integer, nullable=False)                 # 1..99
    code = Column(String(16), nullable=False)                # pile code + 2-digit gun no
    name = Column(String(64), nullable=False)
    status = Column(String(16), nullable=False, default="offline")
    status_changed_at = Column(DateTime)
    interface_type = Column(String(32), nullable=False, default="dc_gun")
    national_standard = Column(String(8), nullable=False, default="2015")
    voltage_upper = Column(Numeric(8, 1))                    # V
    voltage_lower = Column(Numeric(8, 1))                    # V
    current = Column(Numeric(8, 1))                          # A
    power_kw = Column(Numeric(10, 2))                        # kW
    park_no = Column(String(32))                             # 车位号
    park_status = Column(String(16), nullable=False, default="unknown")
    lock_enabled = Column(Boolean, nullable=False, default=False)   # 绑定地锁
    lock_no = Column(String(32))
    lock_status = Column(String(16), nullable=False, default="unknown")
    qr_code = Column(String(255))
    enabled = Column(Boolean, nullable=False, default=True)

    pile = relationship("Pile", back_populates="connectors", lazy="selectin")
    station = relationship("Station", lazy="selectin")

    def __str__(self):
        return self.name or self.code or f"Connector #{self.id}"

    __repr__ = __str__


class ConnectorStatusLog(OperatorMixin, db.Model):
    """Append-only: every status change (incl. pile online/offline) of a gun."""

    __tablename__ = "ev_connector_status_log"
    HISTORY = True  # money/history record: never deleted (app/services/deletion.py)
    __table_args__ = (
        Index("ix_ev_connector_status_log_connector_at", "connector_id", "at"),
        Index("ix_ev_connector_status_log_operator_at", "operator_id", "at"),
    )

    id = Column(Integer, primary_key=True)
    connector_id = Column(Integer, ForeignKey("ev_connector.id", ondelete="CASCADE"), nullable=False)
    pile_id = Column(Integer, ForeignKey("ev_pile.id", ondelete="CASCADE"), index=True)
    at = Column(DateTime, nullable=False, default=utcnow)
    status = Column(String(16), nullable=False)
    previous_status = Column(String(16))
    reason = Column(String(64))                              # e.g. "login", "heartbeat timeout", "0x13"

    connector = relationship("Connector", lazy="selectin")

    def __str__(self):
        return f"{self.connector_id} {self.status} @ {self.at}"

    __repr__ = __str__


class Alarm(OperatorMixin, TimestampMixin, db.Model):
    __tablename__ = "ev_alarm"
    HISTORY = True  # money/history record: never deleted (app/services/deletion.py)
    __table_args__ = (
        Index("ix_ev_alarm_operator_started", "operator_id", "started_at"),
        Index("ix_ev_alarm_operator_status_started", "operator_id", "handle_status", "started_at"),
        Index("ix_ev_alarm_pile_started", "pile_id", "started_at"),
    )

    id = Column(Integer, primary_key=True)
    station_id = Column(Integer, ForeignKey("ev_station.id"), index=True)
    pile_id = Column(Integer, ForeignKey("ev_pile.id", ondelete="CASCADE"), nullable=False)
    connector_id = Column(Integer, ForeignKey("ev_connector.id", ondelete="CASCADE"), index=True)
    pile_code = Column(String(14), nullable=False)           # 设备编号
    gun_no = Column(Integer)                                 # 枪号
    fault_code = Column(String(16), nullable=False)          # 故障代码
    description = Column(String(255))                        # 故障描述
    started_at = Column(DateTime, nullable=False, default=utcnow)
    ended_at = Column(DateTime)
    handle_status = Column(String(16), nullable=False, default="pending")
    handled_by_id = Column(Integer, ForeignKey("ab_user.id"))
    handled_at = Column(DateTime)
    remark = Column(String(255))
    # acknowledgement (app/services/alarms.py): who, when, the note; once per alarm
    acknowledged_at = Column(DateTime)
    acknowledged_by_id = Column(Integer, ForeignKey("ab_user.id"))
    acknowledged_by_name = Column(String(64))                # the user's name at the time
    ack_note = Column(String(255))

    station = relationship("Station", lazy="selectin")
    pile = relationship("Pile", lazy="selectin")
    connector = relationship("Connector", lazy="selectin")

    def __str__(self):
        return f"{self.pile_code}/{self.gun_no} {self.fault_code} {self.description or ''}".strip()

    def fault_meaning(self):
        """The fault code's meaning from the YKC table, in the current language."""
        from app.services.fault_codes import meaning

        return meaning(self.fault_code, self.description)

    def duration_seconds(self):
        """Seconds from the start to the end, or to now while the alarm is open."""
        if self.started_at is None:                  # not yet flushed (its default is set on insert)
            return 0
        return max(int(((self.ended_at or utcnow()) - self.started_at).total_seconds()), 0)

    __repr__ = __str__


class FaultType(TimestampMixin, db.Model):
    __tablename__ = "ev_fault_type"
    __table_args__ = (UniqueConstraint("name", name="uq_ev_fault_type_name"),)

    id = Column(Integer, primary_key=True)
    name = Column(String(64), nullable=False)
    sort = Column(Integer, nullable=False, default=0)
    enabled = Column(Boolean, nullable=False, default=True)
    remark = Column(String(255))

    def __str__(self):
        return self.name or f"Fault type #{self.id}"

    __repr__ = __str__


class FaultReport(OperatorMixin, TimestampMixin, db.Model):
    """故障上报: submitted by members from the app; handled by staff with status + reply."""

    __tablename__ = "ev_fault_report"
    HISTORY = True  # money/history record: never deleted (app/services/deletion.py)
    __table_args__ = (
        Index("ix_ev_fault_report_operator_created", "operator_id", "created_at"),
        Index("ix_ev_fault_report_operator_status", "operator_id", "status", "created_at"),
    )

    id = Column(Integer, primary_key=True)
    fault_type_id = Column(Integer, ForeignKey("ev_fault_type.id"), nullable=False, index=True)
    member_id = Column(Integer, ForeignKey("ev_member.id"), index=True)   # 上报人
    station_id = Column(Integer, ForeignKey("ev_station.id"), nullable=False, index=True)
    pile_id = Column(Integer, ForeignKey("ev_pile.id"))
    connector_id = Column(Integer, ForeignKey("ev_connector.id"))
    description = Column(Text)
    photos = Column(JSON, default=list)
    contact_phone = Column(String(20))
    status = Column(String(16), nullable=False, default="pending")
    reply = Column(Text)                                     # 回复内容
    handled_by_id = Column(Integer, ForeignKey("ab_user.id"))
    handled_at = Column(DateTime)

    fault_type = relationship("FaultType", lazy="selectin")
    member = relationship("Member", lazy="selectin")
    station = relationship("Station", lazy="selectin")
    pile = relationship("Pile", lazy="selectin")
    connector = relationship("Connector", lazy="selectin")
    handled_by = relationship("User", foreign_keys=[handled_by_id], lazy="selectin", viewonly=True)  # 处理人

    def __str__(self):
        return f"{self.fault_type} @ {self.station}"

    __repr__ = __str__


class Feedback(OperatorMixin, TimestampMixin, db.Model):
    """意见反馈 from members; created_at is the 反馈时间."""

    __tablename__ = "ev_feedback"
    HISTORY = True  # money/history record: never deleted (app/services/deletion.py)
    __table_args__ = (Index("ix_ev_feedback_operator_created", "operator_id", "created_at"),)

    id = Column(Integer, primary_key=True)
    member_id = Column(Integer, ForeignKey("ev_member.id"), index=True)
    name = Column(String(64))                                # 反馈人姓名
    phone = Column(String(20), index=True)                   # 反馈人手机号
    content = Column(Text, nullable=False)
    photos = Column(JSON, default=list)
    status = Column(String(16), nullable=False, default="new")
    reply = Column(Text)
    replied_by_id = Column(Integer, ForeignKey("ab_user.id"))
    replied_at = Column(DateTime)

    member = relationship("Member", lazy="selectin")
    replied_by = relationship("User", foreign_keys=[replied_by_id], lazy="selectin", viewonly=True)  # 处理人

    def __str__(self):
        text = self.content or ""
        return f"{self.name or self.phone or ''}: {text[:30]}"

    __repr__ = __str__
