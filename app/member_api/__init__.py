"""Member app API under ``/api/app/v1``: the operator's WeChat mini program or app.

Thin HTTP shell over ``app.services`` (charging, wallet, payments, invoices, ...): a view loads its
input with :func:`load` (marshmallow), calls one service, and dumps the result with a schema. Errors
are :class:`app.member_api.errors.ApiError` with documented codes and Chinese messages.

Layout: one module per area (``MODULES``), each adding routes to :data:`bp` with an OpenAPI
docstring (YAML after ``---``); :mod:`app.member_api.openapi` builds the spec served at
``/api/app/v1/_openapi``. Every endpoint is listed in ``app.security.policy.MEMBER_API`` (PUBLIC at
the FAB level: members are not FAB users; the token is checked by ``member_required``).

Rate limits: MEMBER_RATE_LIMIT_IP per client address on every endpoint, MEMBER_RATE_LIMIT_MEMBER per
member on the endpoints that need a token, MEMBER_LOGIN_RATE_LIMIT per address on logins and codes.
"""
from importlib import import_module

from flask import Blueprint, request

from app.member_api.errors import ApiError

PREFIX = "/api/app/v1"
bp = Blueprint("member_api", __name__, url_prefix=PREFIX)

# areas: each module adds its routes to ``bp`` when imported
MODULES = ("meta", "profile", "login", "wallet", "invoices", "feedback", "stations", "charging", "orders", "coupons",
           "payments")

#: endpoints (function names) limited by MEMBER_LOGIN_RATE_LIMIT; modules append theirs
LOGIN_ENDPOINTS: list = []


def load(schema_cls, data=None, *, location="json"):
    """Validated input of the request: ``location`` "json" (body) or "args" (query string).
    Unknown fields are refused; errors -> ApiError("invalid_request", fields=...)."""
    from marshmallow import RAISE, ValidationError

    if data is None:
        if location == "args":
            data = request.args.to_dict()
        else:
            data = request.get_json(silent=True)
            if data is None:
                data = {} if not request.get_data(cache=True) else None
            if not isinstance(data, dict):
                raise ApiError("invalid_request", fields={"_body": ["A JSON object is expected."]})
    try:
        return schema_cls(unknown=RAISE).load(data)
    except ValidationError as exc:
        raise ApiError("invalid_request", fields=_flat(exc.messages)) from None


def _flat(messages, prefix=""):
    out = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict):
                out.update(_flat(value, name))
            else:
                out[name] = [str(v) for v in (value if isinstance(value, list) else [value])]
    else:
        out[prefix or "_body"] = [str(messages)]
    return out


def dump(schema_cls, obj, many=False):
    return schema_cls(many=many).dump(obj)


def _rate_key():
    from flask_limiter.util import get_remote_address

    from app.member_api.auth import token_member_id

    member_id = token_member_id()
    return f"member:{member_id}" if member_id else f"ip:{get_remote_address()}"


def _limited(_limit):
    from app.member_api.errors import response

    return response(ApiError("rate_limited"))


def register(app):
    """Import the area modules (routes), exempt the blueprint from CSRF (token auth, no cookies),
    apply the rate limits and register it on ``app``."""
    from flask_limiter.util import get_remote_address

    from app.extensions import csrf
    from app.member_api import errors

    for name in MODULES:
        import_module(f"app.member_api.{name}")
    if not getattr(bp, "_cpms_ready", False):
        errors.install(bp)
        bp._cpms_ready = True
    csrf.exempt(bp)
    app.register_blueprint(bp)
    # URLs under the prefix that match no route (or whose <int:> is out of range) never reach the
    # blueprint's handlers: answer them in the API's JSON too
    app.register_error_handler(404, _routing_error)
    app.register_error_handler(405, _routing_error)
    limiter = app.appbuilder.sm.limiter if hasattr(app, "appbuilder") else None
    if limiter is None:
        return
    cfg = app.config
    for endpoint, view in list(app.view_functions.items()):
        if not endpoint.startswith(bp.name + "."):
            continue
        view = limiter.limit(cfg["MEMBER_RATE_LIMIT_IP"], key_func=get_remote_address, on_breach=_limited,
                             scope="member_api_ip")(view)
        if getattr(view, "member_required", False) or _needs_member(app, endpoint):
            view = limiter.limit(cfg["MEMBER_RATE_LIMIT_MEMBER"], key_func=_rate_key, on_breach=_limited,
                                 scope="member_api_member")(view)
        if endpoint.split(".", 1)[1] in LOGIN_ENDPOINTS:
            view = limiter.limit(cfg["MEMBER_LOGIN_RATE_LIMIT"], key_func=get_remote_address,
                                 on_breach=_limited, scope="member_api_login")(view)
        app.view_functions[endpoint] = view


def _routing_error(err):
    from app.member_api.errors import response

    if not request.path.startswith(PREFIX + "/"):
        return err
    if err.code == 405:
        return response(ApiError("invalid_request", status=405))
    return response(ApiError("not_found"))


def _needs_member(app, endpoint):
    fn = app.view_functions[endpoint]
    while fn is not None:
        if getattr(fn, "member_required", False):
            return True
        fn = getattr(fn, "__wrapped__", None)
    return False
