"""Rules for master data: generated codes, values derived from parents, connectors created
with their pile, handling stamps."""
import random
from datetime import date

from sqlalchemy import func, select

from app.models import Connector, Pile, Station, utcnow


class MasterDataError(ValueError):
    pass


def _unique(session, model, column, make, tries=50):
    for _ in range(tries):
        code = make()
        if not session.scalar(select(func.count()).select_from(model).where(column == code)):
            return code
    raise MasterDataError("could not generate a unique code")


def prepare_station(station):
    from app.extensions import db

    if not station.code:
        station.code = _unique(db.session, Station, Station.code, lambda: f"{random.randint(0, 999999):06d}")
    if station.district_code and not station.area_code:
        station.area_code = station.district_code
    station.services = list(station.services or [])
    station.photos = list(station.photos or [])


def new_pile_code(session, station):
    """14 digits: area code (6) + yyMM (4) + 4 random digits."""
    area = (station.area_code or station.district_code or "320100")[:6].ljust(6, "0")
    prefix = area + date.today().strftime("%y%m")
    return _unique(session, Pile, Pile.code, lambda: prefix + f"{random.randint(0, 9999):04d}")


def prepare_pile(session, pile, create_connectors=False):
    if pile.station is None:
        raise MasterDataError("A pile needs a station.")
    if not pile.code:
        pile.code = new_pile_code(session, pile.station)
    pile.operator = pile.station.operator
    pile.operator_id = pile.station.operator_id
    if pile.model is not None:
        pile.manufacturer = pile.model.manufacturer
        if not pile.power_kw:
            pile.power_kw = pile.model.power_kw
        if not pile.gun_count:
            pile.gun_count = pile.model.gun_count
        if not pile.pile_type:
            pile.pile_type = pile.model.pile_type
    if not pile.gun_count or not 1 <= pile.gun_count <= 99:
        raise MasterDataError("Gun count must be between 1 and 99.")
    for conn in pile.connectors:  # keep the denormalised columns of existing guns in step
        conn.operator_id, conn.station_id = pile.operator_id, pile.station_id
        conn.code = f"{pile.code}{conn.gun_no:02d}"
    if create_connectors and not pile.connectors:
        for n in range(1, pile.gun_count + 1):
            pile.connectors.append(Connector(
                gun_no=n, code=f"{pile.code}{n:02d}", name=f"{pile.name} {n}#",
                operator=pile.operator, station=pile.station,
                interface_type="dc_gun" if pile.pile_type == "dc" else "ac_socket",
                power_kw=(pile.power_kw / pile.gun_count) if pile.power_kw else None,
            ))


def prepare_connector(session, conn):
    if conn.pile is None:
        raise MasterDataError("A connector needs a pile.")
    if not conn.gun_no or not 1 <= conn.gun_no <= 99:
        raise MasterDataError("Gun number must be between 1 and 99.")
    conn.code = f"{conn.pile.code}{conn.gun_no:02d}"
    conn.operator, conn.operator_id = conn.pile.operator, conn.pile.operator_id
    conn.station, conn.station_id = conn.pile.station, conn.pile.station_id
    if not conn.name:
        conn.name = f"{conn.pile.name} {conn.gun_no}#"
    dup = session.scalar(select(Connector.id).where(Connector.code == conn.code, Connector.id != (conn.id or 0)))
    if dup:
        raise MasterDataError(f"Gun {conn.gun_no} already exists on pile {conn.pile.code}.")


def mark_handled(item, user, status_field="status", reply_field=None):
    """Stamp who handled an alarm or a fault report, and when, once it leaves 'pending'."""
    if reply_field and getattr(item, reply_field) and getattr(item, status_field) == "pending":
        setattr(item, status_field, "processing")
    if getattr(item, status_field) != "pending":
        item.handled_at = utcnow()
        item.handled_by_id = getattr(user, "id", None)


def mark_replied(item, user):
    if item.reply:
        item.replied_at = utcnow()
        item.replied_by_id = getattr(user, "id", None)
        if item.status == "new":
            item.status = "replied"


def validate_operator(op):
    import re

    if not op.code or not re.fullmatch(r"[0-9A-Z]{9}", op.code):
        raise MasterDataError("Operator ID must be 9 characters: digits and capital letters.")


def member_by_no(operator_id, member_no):
    """A member of ``operator_id`` by member number (or phone)."""
    from sqlalchemy import or_

    from app.extensions import db
    from app.models import Member

    text = (member_no or "").strip()
    return db.session.scalar(select(Member).where(Member.operator_id == operator_id,
                                                  or_(Member.member_no == text, Member.phone == text))
                             .order_by(Member.id))


def push_price(template_id=None, station_id=None):
    """After a template or a station's template changed: piles get the new billing model (0x58) as
    soon as they are idle. A gateway or Redis problem is logged; the next login or verify (0x05)
    brings the pile in line anyway."""
    import logging

    from app.services import pile_commands

    try:
        if template_id is not None:
            return pile_commands.push_price_for_template(template_id)
        return pile_commands.push_price_for_station(station_id)
    except Exception:  # noqa: BLE001 - the save itself succeeded; a push is best effort
        logging.getLogger(__name__).exception("could not queue the price push")
        return None
