"""Security models: the user extended with operator, department and posts; departments as a
tree; posts (岗位); the data scope of a role (数据权限)."""
from flask_appbuilder.security.sqla.models import Role, User
from sqlalchemy import Boolean, Column, DateTime, ForeignKey, Integer, String, Table
from sqlalchemy.orm import relationship

from app.extensions import db
from app.models.base import N_, utcnow

user_post = Table(
    "sys_user_post",
    db.Model.metadata,
    Column("user_id", Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), primary_key=True),
    Column("post_id", Integer, ForeignKey("sys_post.id", ondelete="CASCADE"), primary_key=True),
)

role_scope_station = Table(
    "sys_role_scope_station",
    db.Model.metadata,
    Column("role_id", Integer, ForeignKey("sys_role_data_scope.role_id", ondelete="CASCADE"), primary_key=True),
    Column("station_id", Integer, ForeignKey("ev_station.id", ondelete="CASCADE"), primary_key=True),
)


class Department(db.Model):
    """部门: a tree per operator; ``path`` is materialised (``/1/7/12/``)."""

    __tablename__ = "sys_department"
    id = Column(Integer, primary_key=True)
    name = Column(String(64), nullable=False)
    parent_id = Column(Integer, ForeignKey("sys_department.id"), nullable=True, index=True)
    operator_id = Column(Integer, ForeignKey("ev_operator.id"), nullable=True, index=True)
    path = Column(String(255), nullable=False, default="/", index=True)
    sort = Column(Integer, nullable=False, default=0)
    leader = Column(String(64))
    phone = Column(String(32))
    email = Column(String(128))
    enabled = Column(Boolean, nullable=False, default=True)
    created_at = Column(DateTime, default=utcnow, nullable=False)

    parent = relationship("Department", remote_side=[id], lazy="selectin")
    operator = relationship("Operator", lazy="selectin")

    @property
    def depth(self):
        return max(self.path.count("/") - 2, 0)

    def __str__(self):
        return ("— " * self.depth) + self.name

    __repr__ = __str__


class Post(db.Model):
    """岗位."""

    __tablename__ = "sys_post"
    id = Column(Integer, primary_key=True)
    code = Column(String(32), nullable=False, unique=True)
    name = Column(String(64), nullable=False)
    sort = Column(Integer, nullable=False, default=0)
    enabled = Column(Boolean, nullable=False, default=True)
    remark = Column(String(255))
    created_at = Column(DateTime, default=utcnow, nullable=False)

    def __str__(self):
        return self.name

    __repr__ = __str__


SCOPE_ALL = "all"
SCOPE_OPERATOR = "operator"
SCOPE_STATIONS = "stations"
DATA_SCOPES = [
    (SCOPE_ALL, N_("All data")),
    (SCOPE_OPERATOR, N_("Own operator")),
    (SCOPE_STATIONS, N_("Chosen stations")),
]


class RoleDataScope(db.Model):
    """数据权限 of a role. A role without a row has the ``operator`` scope."""

    __tablename__ = "sys_role_data_scope"
    role_id = Column(Integer, ForeignKey("ab_role.id", ondelete="CASCADE"), primary_key=True)
    scope = Column(String(16), nullable=False, default=SCOPE_OPERATOR)
    sort = Column(Integer, nullable=False, default=0)
    remark = Column(String(255))

    role = relationship(Role, backref=db.backref("data_scope", uselist=False, cascade="all, delete-orphan"))
    stations = relationship("Station", secondary=role_scope_station, lazy="selectin")

    def __str__(self):
        return self.scope


class CpmsUser(User):
    """ab_user with operator, department, posts, phone and nickname (fab-guide §2.2)."""

    __tablename__ = "ab_user"
    __table_args__ = {"extend_existing": True}
    operator_id = Column(Integer, ForeignKey("ev_operator.id"), nullable=True, index=True)
    department_id = Column(Integer, ForeignKey("sys_department.id"), nullable=True, index=True)
    phone = Column(String(32))
    nickname = Column(String(64))

    operator = relationship("Operator", lazy="selectin")
    department = relationship("Department", lazy="selectin")
    posts = relationship("Post", secondary=user_post, lazy="selectin")
