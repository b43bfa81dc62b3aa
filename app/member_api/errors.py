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
    # login (app/member_api/login.py)
    "channel_unknown": (400, _l("This app is not known to the operator.")),
    "phone_invalid": (400, _l("Please enter a valid mobile number.")),
    "sms_code_wrong": (400, _l("The verification code is wrong.")),
    "sms_code_expired": (400, _l("The verification code has expired, please request a new one.")),
    "sms_too_frequent": (429, _l("A code was sent just now, please wait a minute before asking again.")),
    "sms_daily_limit": (429, _l("Too many codes for this number today, please try again tomorrow.")),
    "sms_send_failed": (503, _l("The text message could not be sent, please try again later.")),
    "wechat_code_invalid": (400, _l("The WeChat login code is invalid or used, please log in again.")),
    "wechat_busy": (503, _l("WeChat is busy, please try again later.")),
    "wechat_login_failed": (502, _l("WeChat login failed, please contact the operator.")),
    "wechat_already_bound": (409, _l("This WeChat account is bound to another member.")),
    # stations, guns, charging, orders (stations.py, charging.py, orders.py)
    "qr_not_recognized": (404, _l("This QR code does not name a charging gun of ours.")),
    "gun_not_selected": (400, _l("This pile has several guns: choose one.")),
    "gun_disabled": (409, _l("This gun is out of service.")),
    "pile_offline": (409, _l("The charging pile is offline.")),
    "gun_busy": (409, _l("The gun is in use, choose another one.")),
    "gun_fault": (409, _l("The gun has a fault, choose another one.")),
    "balance_too_low": (409, _l("Your balance is too low to start charging, please top up.")),
    "coupon_not_usable": (409, _l("This coupon cannot be used for this charge.")),
    "start_failed": (409, _l("The charge could not be started.")),
    "order_not_active": (409, _l("This order is not charging.")),
    # invoices, fault reports, feedback (invoices.py, feedback.py)
    "order_not_invoiceable": (409, _l("Only your own settled and paid orders can be invoiced.")),
    "order_already_invoiced": (409, _l("An order is already on an invoice.")),
    "invalid_tax_no": (400, _l("A company title needs its 18-character unified social credit code.")),
    "connector_not_found": (404, _l("No such charging gun.")),
    "fault_type_not_found": (404, _l("No such fault type.")),
    "invalid_photo": (400, _l("Only image files (jpg, png, gif, webp) can be uploaded.")),
    "photo_too_large": (400, _l("The image is too large.")),
    # payments: top-ups and refunds (payments.py)
    "payment_amount_invalid": (400, _l("Enter an amount in yuan with at most two decimals, within the allowed range.")),
    "payment_unavailable": (503, _l("Payment is not available right now, please try again later.")),
    "wechat_not_bound": (409, _l("Log in with WeChat first to pay with WeChat Pay.")),
    "refund_exceeds_balance": (409, _l("The refund is more than your balance.")),
    "refund_not_possible": (409, _l("This amount cannot be refunded: only recent WeChat Pay top-ups can be.")),
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
