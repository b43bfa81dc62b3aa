"""Member accounts of the member app: login channels, registration, profile, wallet reading.

- :func:`login_channel`: the operator's app names itself by a channel (its ``code`` or its
  ``identifier``, e.g. the WeChat AppID) of type mini program or app; the member is per operator
  (the same phone at two operators is two members).
- :func:`find_or_register`: the one path creating members from the app (phone or WeChat openid).
  Opens and commits its own transaction; ``events.member_registered`` is sent after the commit, once
  per new member. A Redis lock per (operator, phone/openid) keeps two racing first logins from
  creating two members.
- :func:`next_member_no`: the member number rule (用户编号: a plain sequence number, as the demo
  data and the manual show: 105, 128, ...): one more than the highest numeric member number.
  The unique constraint is the final guard: a collision is retried with the next number.
"""
import logging
import re

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Channel, ChargeOrder, Member, WalletEntry
from app.security.scope import acting_as, apply_scope, check_item, scope_for_operator
from app.services import clock, events

log = logging.getLogger(__name__)

LOGIN_CHANNEL_TYPES = ("mini_program", "app")
FIRST_MEMBER_NO = 100
ACTIVE = "active"


class AccountError(Exception):
    """A refused account operation; ``code`` is the member API error code, ``fields`` the field errors."""

    def __init__(self, code, fields=None):
        super().__init__(code)
        self.code = code
        self.fields = fields


# ----- channels ---------------------------------------------------------------------------------
def login_channel(name, channel_types=LOGIN_CHANNEL_TYPES):
    """The enabled member-app channel whose code (or else identifier) is ``name``; AccountError
    "channel_unknown" otherwise. A code wins over an identifier; among identifiers the oldest channel."""
    text = (name or "").strip()
    if not text:
        raise AccountError("channel_unknown")
    base = select(Channel).where(Channel.enabled.is_(True), Channel.channel_type.in_(channel_types))
    channel = db.session.scalar(base.where(Channel.code == text))
    if channel is None:
        channel = db.session.scalar(base.where(Channel.identifier == text).order_by(Channel.id))
    if channel is None:
        raise AccountError("channel_unknown")
    return channel


def wechat_channel(appid):
    """The enabled mini program channel of ``appid`` (its identifier)."""
    text = (appid or "").strip()
    channel = text and db.session.scalar(
        select(Channel).where(Channel.enabled.is_(True), Channel.channel_type == "mini_program",
                              Channel.identifier == text).order_by(Channel.id))
    if not channel:
        raise AccountError("channel_unknown")
    return channel


# ----- registration -----------------------------------------------------------------------------
def next_member_no(session=None):
    """One more than the highest all-digit member number (FIRST_MEMBER_NO for the first member)."""
    session = session or db.session
    col = Member.member_no
    if session.get_bind().dialect.name == "postgresql":
        digits_only = col.op("~")("^[0-9]+$")
    else:
        digits_only = (func.length(col) > 0) & (func.trim(col, "0123456789") == "")
    rows = session.scalars(select(col).where(digits_only)
                           .order_by(func.length(col).desc(), col.desc()).limit(5)).all()
    highest = max((int(no) for no in rows if no.isascii() and no.isdigit()), default=FIRST_MEMBER_NO - 1)
    return str(max(highest + 1, FIRST_MEMBER_NO))


def _find(operator_id, phone=None, openid=None, unionid=None):
    """The member of ``operator_id`` with this openid (else unionid, else phone): active ones first."""
    for column, value in ((Member.openid, openid), (Member.unionid, unionid), (Member.phone, phone)):
        if not value:
            continue
        found = db.session.scalars(
            select(Member).where(Member.operator_id == operator_id, column == value)
            .order_by((Member.status == ACTIVE).desc(), Member.id)).first()
        if found is not None:
            return found
    return None


def _lock(operator_id, phone, openid, unionid):
    from app.extensions import get_redis

    ident = openid or unionid or phone
    return get_redis().lock(f"cpms:member:register:{operator_id}:{ident}", timeout=15,
                                    blocking_timeout=10)


def find_or_register(operator_id, *, phone=None, openid=None, unionid=None, channel_id=None):
    """(member, created) of a login at ``operator_id``: the existing member (openid, unionid or phone)
    or a new one (member number :func:`next_member_no`, registered through ``channel_id``).
    Marks the login time, fills a missing openid/unionid of a found member, commits, then sends
    ``member_registered`` for a new member. AccountError "member_disabled" for a frozen/closed member."""
    if not (phone or openid):
        raise ValueError("find_or_register needs a phone or an openid")
    with _lock(operator_id, phone, openid, unionid), \
            acting_as(scope_for_operator(operator_id), name="member-login"):
        member = _find(operator_id, phone=phone, openid=openid, unionid=unionid)
        created = member is None
        if member is not None:
            if member.status != ACTIVE:
                raise AccountError("member_disabled")      # nothing written
            member.openid = member.openid or openid
            member.unionid = member.unionid or unionid
            member.last_login_at = clock.utcnow()
            db.session.commit()
        else:
            member = _create(operator_id, phone=phone, openid=openid, unionid=unionid, channel_id=channel_id)
    if created:
        events.member_registered.send(member_id=member.id)
    return member, created


def bind_wechat(member_id, channel, openid, unionid=None):
    """Bind the WeChat identity of ``channel``'s mini program to a member who logged in another way
    (phone + code), so WeChat Pay can charge them. AccountError "wechat_already_bound" when the openid
    belongs to another member of the operator, or the member holds another openid. Commits."""
    member = db.session.get(Member, member_id)
    if member is None or member.operator_id != channel.operator_id:
        raise AccountError("channel_unknown")
    with _lock(member.operator_id, None, openid, None):
        other = _find(member.operator_id, openid=openid)
        if (other is not None and other.id != member.id) or (member.openid and member.openid != openid):
            raise AccountError("wechat_already_bound")
        member.openid = openid
        member.unionid = member.unionid or unionid
        db.session.commit()
    return member


def _create(operator_id, **values):
    for _attempt in range(5):
        member = Member(operator_id=operator_id, member_no=next_member_no(), status=ACTIVE, balance=0,
                        last_login_at=clock.utcnow(), **values)
        check_item(member)
        db.session.add(member)
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()   # a concurrent registration took the number: the next one
            log.info("member number %s taken, retrying", member.member_no)
            continue
        return member
    raise RuntimeError("could not allocate a member number")


# ----- profile ----------------------------------------------------------------------------------
PLATE_RE = re.compile(r"[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领]"
                      r"[A-HJ-NP-Z][A-HJ-NP-Z0-9]{4,5}[A-HJ-NP-Z0-9挂学警港澳]")
AVATAR_RE = re.compile(r"https?://[^\s]{1,240}")


def update_profile(member_id, changes):
    """Change the member's own nickname / avatar / plate_no (keys present in ``changes``; None or ""
    clears avatar and plate). Commits; AccountError "invalid_request" with field errors (lazy
    strings: the answer translates them)."""
    errors = {}
    values = {}
    if "nickname" in changes:
        nickname = (changes["nickname"] or "").strip()
        if not nickname or len(nickname) > 32:
            errors["nickname"] = [_l("Between 1 and 32 characters.")]
        values["nickname"] = nickname
    if "avatar" in changes:
        avatar = (changes["avatar"] or "").strip() or None
        if avatar is not None and not AVATAR_RE.fullmatch(avatar):
            errors["avatar"] = [_l("An http(s) address of at most 255 characters.")]
        values["avatar"] = avatar
    if "plate_no" in changes:
        plate = (changes["plate_no"] or "").strip().upper() or None
        if plate is not None and not PLATE_RE.fullmatch(plate):
            errors["plate_no"] = [_l("Not a valid plate number, e.g. 苏A12345 or 苏AD12345.")]
        values["plate_no"] = plate
    if errors:
        raise AccountError("invalid_request", fields=errors)
    member = db.session.get(Member, member_id)
    for key, value in values.items():
        setattr(member, key, value)
    check_item(member)
    db.session.commit()
    return member


# ----- wallet reading ---------------------------------------------------------------------------
def wallet_entries(member_id, *, kind=None, date_from=None, date_to=None, page=1, page_size=20):
    """(entries, total) of the member's ledger, newest first; ``date_from``/``date_to`` are local days
    (inclusive). Read in the caller's scope (a member API view runs as the member's operator)."""
    stmt = apply_scope(select(WalletEntry), WalletEntry).where(WalletEntry.member_id == member_id)
    if kind:
        stmt = stmt.where(WalletEntry.kind == kind)
    if date_from:
        stmt = stmt.where(WalletEntry.created_at >= clock.day_bounds_utc(date_from)[0])
    if date_to:
        stmt = stmt.where(WalletEntry.created_at < clock.day_bounds_utc(date_to)[1])
    total = db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    rows = db.session.scalars(stmt.order_by(WalletEntry.id.desc())
                              .limit(page_size).offset((page - 1) * page_size)).all()
    order_ids = {e.order_id for e in rows if e.order_id}
    numbers = dict(db.session.execute(select(ChargeOrder.id, ChargeOrder.order_no)
                                      .where(ChargeOrder.id.in_(order_ids))).all()) if order_ids else {}
    for entry in rows:
        entry.order_no = numbers.get(entry.order_id)
    return rows, total or 0
