"""Member tokens (JWT, PyJWT, HS256) and the ``member_required`` decorator.

An access token carries ``sub`` (member id), ``op`` (operator id), ``typ`` ("access"/"refresh") and
``ep`` (the member's token epoch: disabling a member or logging out everywhere bumps it, which
refuses every token issued before). Views decorated with :func:`member_required` run with
``g.member`` (the Member row, active) and inside ``acting_as(scope_for_operator(member's operator))``,
so every scoped query and write sees only the member's operator.
"""
from datetime import timedelta
from functools import wraps

import jwt
from flask import current_app, g, request

from app.member_api.errors import ApiError
from app.services import clock

ALGORITHM = "HS256"


def _secret():
    return current_app.config.get("MEMBER_JWT_SECRET") or current_app.config["SECRET_KEY"]


def _epoch(member_id):
    from app.extensions import get_redis

    raw = get_redis().get(f"cpms:member:token_epoch:{member_id}")
    return int(raw) if raw else 0


def revoke_tokens(member_id):
    """Refuse every token of the member issued so far (logout everywhere, disable, password change)."""
    from app.extensions import get_redis

    get_redis().incr(f"cpms:member:token_epoch:{member_id}")


def issue_tokens(member):
    """{"access_token", "refresh_token", "expires_in"} for ``member``."""
    now = clock.utcnow()   # naive UTC: PyJWT reads it as UTC
    minutes = int(current_app.config["MEMBER_TOKEN_MINUTES"])
    days = int(current_app.config["MEMBER_REFRESH_DAYS"])
    base = {"sub": str(member.id), "op": member.operator_id, "ep": _epoch(member.id), "iat": now}
    access = jwt.encode({**base, "typ": "access", "exp": now + timedelta(minutes=minutes)}, _secret(), ALGORITHM)
    refresh = jwt.encode({**base, "typ": "refresh", "exp": now + timedelta(days=days)}, _secret(), ALGORITHM)
    return {"access_token": access, "refresh_token": refresh, "token_type": "Bearer", "expires_in": minutes * 60}


def decode(token, typ="access"):
    """The claims of a valid, unrevoked token of type ``typ``; ApiError("token_invalid") otherwise."""
    try:
        claims = jwt.decode(token, _secret(), algorithms=[ALGORITHM], options={"require": ["exp", "sub", "typ"]})
    except jwt.PyJWTError:
        raise ApiError("token_invalid") from None
    if claims.get("typ") != typ:
        raise ApiError("token_invalid")
    try:
        member_id = int(claims["sub"])
    except (TypeError, ValueError):
        raise ApiError("token_invalid") from None
    if int(claims.get("ep", 0)) != _epoch(member_id):
        raise ApiError("token_invalid")
    claims["member_id"] = member_id
    return claims


def bearer_token():
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def token_member_id():
    """The member id of the request's token without checking it further (rate-limit key); None."""
    token = bearer_token()
    if not token:
        return None
    try:
        return int(jwt.decode(token, _secret(), algorithms=[ALGORITHM])["sub"])
    except (jwt.PyJWTError, KeyError, TypeError, ValueError):
        return None


def load_member(member_id):
    from app.extensions import db
    from app.models import Member

    member = db.session.get(Member, member_id)
    if member is None:
        raise ApiError("token_invalid")
    if member.status != "active":
        raise ApiError("member_disabled")
    return member


def member_required(fn):
    """The view needs a valid access token; runs with ``g.member`` in the member's operator scope."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        from app.security.scope import acting_as, scope_for_operator

        token = bearer_token()
        if not token:
            raise ApiError("token_missing")
        claims = decode(token, "access")
        member = load_member(claims["member_id"])
        g.member = member
        with acting_as(scope_for_operator(member.operator_id), name=f"member:{member.id}"):
            return fn(*args, **kwargs)

    wrapper.member_required = True
    return wrapper


def current_member():
    return g.member
