"""Rules for master data: generated codes, values derived from parents, connectors created
with their pile, handling stamps, member / card / channel / organization rules.

These are the write commands of the admin screens AND the REST resources (one write path): a view
or a resource calls ``prepare_*`` in its pre_add / pre_update and, after the commit, the follow-up
(``station_saved``: the price push of a station that got another template). A refused rule raises
:class:`MasterDataError`; ``errors`` maps a field to its message where the rule concerns a field
(REST answers 422 with it, the admin flashes the message).
"""
import random
import re
from decimal import Decimal, InvalidOperation

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from app.models import Connector, Pile, Station, utcnow
from app.services.clock import local_today


class MasterDataError(ValueError):
    """A refused master-data rule; ``errors`` = {field: message} when it concerns fields."""

    def __init__(self, message=None, errors=None):
        self.errors = {k: str(v) for k, v in (errors or {}).items()}
        super().__init__(str(message) if message is not None
                         else "; ".join(self.errors.values()))


def _raise_field_errors(errors):
    if errors:
        raise MasterDataError(errors=errors)


def _decimal(value):
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal("NaN")


def _out_of_range(value, lo, hi):
    number = _decimal(value)
    return number is not None and not (number.is_finite() and lo <= number <= hi)


#: GCJ-02 coordinates of a station in China (the admin form checks the same bounds)
LNG_RANGE = (73, 136)
LAT_RANGE = (3, 54)


def _unique(session, model, column, make, tries=50):
    with session.no_autoflush:  # the row being prepared is not complete yet
        for _ in range(tries):
            code = make()
            if not session.scalar(select(func.count()).select_from(model).where(column == code)):
                return code
    raise MasterDataError(_l("Could not generate a unique code; try again."))


def _range_message(what, bounds):
    return _l("%(what)s must be between %(lo)s and %(hi)s.", what=what, lo=bounds[0], hi=bounds[1])


def prepare_station(station):
    """Station write rule: coordinates in range, a generated code when none is given, the area
    code from the district, list columns as lists."""
    from app.extensions import db

    errors = {}
    if _out_of_range(station.lng, *LNG_RANGE):
        errors["lng"] = _range_message(_l("Longitude"), LNG_RANGE)
    if _out_of_range(station.lat, *LAT_RANGE):
        errors["lat"] = _range_message(_l("Latitude"), LAT_RANGE)
    _raise_field_errors(errors)
    if not station.code:
        station.code = _unique(db.session, Station, Station.code, lambda: f"{random.randint(0, 999999):06d}")
    if station.district_code and not station.area_code:
        station.area_code = station.district_code
    station.services = list(station.services or [])
    station.photos = list(station.photos or [])


def template_changed(station):
    """True when the pending write gives ``station`` another price template (call before the
    flush, e.g. in pre_update)."""
    from sqlalchemy import inspect

    state = inspect(station)
    if not state.has_identity:
        return False
    attrs = state.attrs
    return attrs.price_template.history.has_changes() or attrs.price_template_id.history.has_changes()


def station_saved(station, template_was_changed):
    """After a station write is committed: its piles get the new template's price (0x58)."""
    if template_was_changed:
        return push_price(station_id=station.id)
    return None


def new_pile_code(session, station):
    """14 digits: area code (6) + yyMM (4) + 4 random digits."""
    area = (station.area_code or station.district_code or "320100")[:6].ljust(6, "0")
    prefix = area + local_today().strftime("%y%m")  # the operator's month (TIMEZONE)
    return _unique(session, Pile, Pile.code, lambda: prefix + f"{random.randint(0, 9999):04d}")


def prepare_pile(session, pile, create_connectors=False):
    """Pile write rule: a station, a 14-digit code (generated when empty), operator and model
    values from the parents, 1-99 guns; a new pile gets its guns with their codes; the guns of
    an existing pile follow its code, station and operator."""
    if pile.station is None:
        raise MasterDataError(errors={"station": _l("A pile needs a station.")})
    if pile.code and not re.fullmatch(r"\d{14}", str(pile.code)):
        raise MasterDataError(errors={"code": _l("Must be exactly %(n)d digits.", n=14)})
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
        raise MasterDataError(errors={"gun_count": _l("Gun count must be between 1 and 99.")})
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
    """Connector write rule: a pile, gun no. 1-99 unique on the pile, the 16-digit code (pile
    code + gun no.), operator and station from the pile, a default name."""
    if conn.pile is None:
        raise MasterDataError(errors={"pile": _l("A connector needs a pile.")})
    if not conn.gun_no or not 1 <= conn.gun_no <= 99:
        raise MasterDataError(errors={"gun_no": _l("Gun number must be between 1 and 99.")})
    conn.code = f"{conn.pile.code}{conn.gun_no:02d}"
    conn.operator, conn.operator_id = conn.pile.operator, conn.pile.operator_id
    conn.station, conn.station_id = conn.pile.station, conn.pile.station_id
    if not conn.name:
        conn.name = f"{conn.pile.name} {conn.gun_no}#"
    with session.no_autoflush:
        dup = session.scalar(select(Connector.id).where(Connector.code == conn.code,
                                                        Connector.id != (conn.id or 0)))
    if dup:
        raise MasterDataError(errors={"gun_no": _l("Gun %(gun)s already exists on pile %(pile)s.",
                                                   gun=conn.gun_no, pile=conn.pile.code)})


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
        raise MasterDataError(errors={"code": _l("Operator ID must be 9 characters: digits and capital letters.")})


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


# ----- members, charge cards, channels, organizations ------------------------------------------------
PHONE_RE = re.compile(r"1\d{10}")
VIN_RE = re.compile(r"[A-HJ-NPR-Z0-9]{17}")
PHONE_MESSAGE = _l("A mobile number is 11 digits starting with 1.")
VIN_MESSAGE = _l("A VIN is 17 characters (digits and capital letters, no I, O, Q).")


def prepare_member(member):
    """Member write rule (the balance is the wallet ledger's and never written here): a mobile
    number of 11 digits starting with 1, a 17-character VIN, a plate of at most 16 characters;
    empty texts are stored as NULL."""
    for field in ("phone", "vin", "plate_no"):
        value = getattr(member, field)
        setattr(member, field, (value.strip() or None) if isinstance(value, str) else value)
    errors = {}
    if member.phone and not PHONE_RE.fullmatch(member.phone):
        errors["phone"] = PHONE_MESSAGE
    if member.vin and not VIN_RE.fullmatch(member.vin):
        errors["vin"] = VIN_MESSAGE
    if member.plate_no and len(member.plate_no) > 16:
        errors["plate_no"] = _l("At most %(max)d characters.", max=16)
    _raise_field_errors(errors)


def card_errors(session, card):
    """{field: message} of the card number rules: 16 digits logical, 16 hex physical, both unique
    across operators."""
    from app.services import members

    errors = {}
    checks = (("logical_no", members.logical_no_error, (card.logical_no or "").strip()),
              ("physical_no", members.physical_no_error, members.normalize_physical_no(card.physical_no)))
    for field, check, value in checks:
        error = check(value)
        if error is None and members.card_number_taken(session, field, value, card.id):
            error = _l("Another card already has this number.")
        if error is not None:
            errors[field] = error
    return errors


def prepare_card(session, card):
    """Card write rule: the number rules, normalised numbers, the member's organization when none
    is chosen."""
    from app.services import members

    _raise_field_errors(card_errors(session, card))
    members.prepare_card(card)
    from app.services import organizations

    _raise_field_errors(organizations.card_pay_mode_errors(card))   # who pays: wallet or organization


def prepare_channel(channel):
    """Channel write rule: a rate (fraction of the amount) between 0 and 1, 0 when empty."""
    channel.rate = channel.rate or 0
    if _out_of_range(channel.rate, 0, 1):
        raise MasterDataError(errors={"rate": _range_message(_l("Channel rate"), (0, 1))})
    from app.services import qrcodes

    channel.qr_prefix = (channel.qr_prefix or "").strip() or None
    if qrcodes.prefix_error(channel.qr_prefix):
        raise MasterDataError(errors={"qr_prefix": qrcodes.prefix_error(channel.qr_prefix)})


def prepare_organization(organization):
    """Organization write rule: the code is optional and unique, so an empty one is NULL."""
    organization.code = (organization.code or "").strip() or None
    from app.services import organizations

    _raise_field_errors(organizations.organization_errors(organization))   # pay mode, agreed discount
