"""Shared column helpers for the domain models.

Conventions (all models):
- subclass ``app.extensions.db.Model`` (= FAB's Model) and declare ``__tablename__``;
- tenant tables carry ``operator_id`` (FK ev_operator.id, NOT NULL, indexed);
- money ``Money()`` = Numeric(14, 4); prices ``Price()`` = Numeric(10, 5);
  energy ``Energy()`` = Numeric(14, 4) kWh;
- timestamps are naive UTC (``utcnow``).
"""
from sqlalchemy import Column, DateTime, ForeignKey, Integer, Numeric, String
from sqlalchemy.orm import declared_attr, relationship
from sqlalchemy.types import TypeDecorator

from app.services.clock import utcnow  # the one time module; re-exported for the models


def Money(**kw):
    return Numeric(14, 4, asdecimal=True, **kw)


def Price(**kw):
    return Numeric(10, 5, asdecimal=True, **kw)


def Energy(**kw):
    return Numeric(14, 4, asdecimal=True, **kw)


class Sealed(TypeDecorator):
    """A secret kept sealed at rest (app/services/secrets_box.py: Fernet under SECRETS_KEY). Python sees
    the plain value; the column holds ``fernet:<token>``. A value written before sealing existed reads
    as it is (migration 0015 sealed the ones there were). Plain values up to 64 characters fit."""

    impl = String(255)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        from app.services import secrets_box

        if value is None or value == "" or str(value).startswith(secrets_box.PREFIX):
            return value
        return secrets_box.seal(value)

    def process_result_value(self, value, dialect):
        from app.services import secrets_box

        if value and value.startswith(secrets_box.PREFIX):
            return secrets_box.unseal(value)
        return value


class TimestampMixin:
    created_at = Column(DateTime, default=utcnow, nullable=False)
    updated_at = Column(DateTime, default=utcnow, onupdate=utcnow, nullable=False)


class OperatorMixin:
    """Tenant column + relation. Every tenant table has it (denormalised, fab-guide §3.4)."""

    @declared_attr
    def operator_id(cls):
        return Column(Integer, ForeignKey("ev_operator.id"), nullable=False, index=True)

    @declared_attr
    def operator(cls):
        return relationship("Operator", lazy="selectin")


def N_(text):
    """Marks a choice label for translation (pybabel -k N_); translated where it is shown."""
    return text
