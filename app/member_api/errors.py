"""Errors of the member app API: every error has a stable code, an HTTP status and a Chinese message.

A view raises ``ApiError("station_not_found")``; the blueprint answers
``{"code": "station_not_found", "message": "电站不存在"}`` with the code's HTTP status. Validation
errors add ``"fields": {name: [message, ...]}``. ``ERRORS`` is the documented list (served in the
OpenAPI description and checked by the tests): a code missing here is a programming error.

Add a code: one line in ``ERRORS`` (English msgid, zh translation in messages.po).
"""
from flask import jsonify
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l

# code: (HTTP status, message)
ERRORS = {
    # generic
    "invalid_request": (400, _l("The request is not valid.")),
    "not_found": (404, _l("Not found.")),
    "rate_limited": (429, _l("Too many requests, try again later.")),
    "server_error": (500, _l("Something went wrong on our side, try again later.")),
    # authentication
    "token_missing": (401, _l("Please log in.")),
    "token_invalid": (401, _l("Your login has expired, please log in again.")),
    "member_disabled": (403, _l("This account is disabled.")),
}


class ApiError(Exception):
    """An error answer of the member API. ``code`` must be a key of ``ERRORS``."""

    def __init__(self, code, message=None, fields=None, status=None):
        if code not in ERRORS:
            raise KeyError(f"undocumented member API error code {code!r}: add it to app/member_api/errors.py")
        super().__init__(code)
        self.code = code
        self.http_status = status or ERRORS[code][0]
        self._message = message
        self.fields = fields

    @property
    def message(self):
        return str(self._message if self._message is not None else ERRORS[self.code][1])

    def body(self):
        out = {"code": self.code, "message": self.message}
        if self.fields:
            out["fields"] = {k: [str(m) for m in (v if isinstance(v, list | tuple) else [v])]
                             for k, v in self.fields.items()}
        return out


def api_locale():
    """zh unless the caller asks for English first (Accept-Language)."""
    from flask import request

    best = request.accept_languages.best_match(["zh", "en"], default="zh") if request else "zh"
    return best or "zh"


def response(err: ApiError):
    with force_locale(api_locale()):
        resp = jsonify(err.body())
    resp.status_code = err.http_status
    return resp


def install(bp):
    """Error handlers of the blueprint: ApiError, HTTP errors raised inside its views, and the backstop."""
    from werkzeug.exceptions import HTTPException

    @bp.errorhandler(ApiError)
    def _api_error(err):
        return response(err)

    @bp.errorhandler(HTTPException)
    def _http_error(err):
        code = {404: "not_found", 429: "rate_limited"}.get(err.code, "invalid_request")
        if err.code == 405:
            return response(ApiError("invalid_request", status=405))
        return response(ApiError(code))

    @bp.errorhandler(Exception)
    def _unexpected(err):
        import logging

        from app.extensions import db

        logging.getLogger(__name__).exception("member API error")
        db.session.rollback()
        return response(ApiError("server_error"))
