"""Members, organizations and charge cards: rules used by the finance screens.

``Member.balance`` is only ever changed through the wallet ledger (app.services.wallet); the
screens never write it.
"""

import re

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from app.models import Card

LOGICAL_NO = re.compile(r"\d{16}")
PHYSICAL_NO = re.compile(r"[0-9A-F]{16}")


def normalize_physical_no(value):
    return (value or "").strip().replace(" ", "").upper()


def logical_no_error(value):
    if not LOGICAL_NO.fullmatch((value or "").strip()):
        return _l("The logical card no. must be exactly 16 digits (0-9).")
    return None


def physical_no_error(value):
    if not PHYSICAL_NO.fullmatch(normalize_physical_no(value)):
        return _l("The physical card no. must be exactly 16 hexadecimal characters (0-9, A-F).")
    return None


def card_number_taken(session, column, value, exclude_id=None):
    """True when another card already uses this logical/physical number (unique across operators)."""
    col = getattr(Card, column)
    q = select(func.count()).select_from(Card).where(func.upper(col) == value.upper())
    if exclude_id is not None:
        q = q.where(Card.id != int(exclude_id))
    return (session.scalar(q) or 0) > 0


def prepare_card(card):
    card.logical_no = (card.logical_no or "").strip()
    card.physical_no = normalize_physical_no(card.physical_no)
    if card.member is not None and card.organization is None and card.member.organization is not None:
        card.organization = card.member.organization
