"""Shared column helpers for the domain models.

Conventions (all models):
- subclass ``app.extensions.db.Model`` (= FAB's Model) and declare ``__tablename__``;
- tenant tables carry ``operator_id`` (FK ev_operator.id, NOT NULL, indexed);
- money ``Money()`` = Numeric(14, 4); prices ``Price()`` = Numeric(10, 5);
  energy ``Energy()`` = Numeric(14, 4) kWh;
- timestamps are naive UTC (``utcnow``).
"""
from sqlalchemy import Column, DateTime, ForeignKey, Integer, Numeric
from sqlalchemy.orm import declared_attr, relationship

from app.services.clock import utcnow  # the one time module; re-exported for the models


def Money(**kw):
    return Numeric(14, 4, asdecimal=True, **kw)


def Price(**kw):
    return Numeric(10, 5, asdecimal=True, **kw)


def Energy(**kw):
    return Numeric(14, 4, asdecimal=True, **kw)


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
