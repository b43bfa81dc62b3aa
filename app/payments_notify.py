"""WeChat Pay callbacks: ``POST /pay/wechat/<gateway_code>/notify`` (payments) and ``/refund-notify`` (refunds).

No login and no CSRF (WeChat calls us); the library checks the signature with the gateway's WeChat Pay public
key and decrypts the resource (app.services.wechatpay). Answers as WeChat Pay v3 expects: 204 once the credit
is committed (or was already); 401 for a bad signature (nothing credited; WeChat retries later); 404 for an
unknown gateway; 500 with ``{"code": "FAIL"}`` for our own failure (WeChat retries).
"""
import logging

from flask import Blueprint, jsonify, request

from app.security.scope import platform_scope

log = logging.getLogger(__name__)

bp = Blueprint("pay_notify", __name__, url_prefix="/pay/wechat")


def _fail(status, message):
    resp = jsonify({"code": "FAIL", "message": message})
    resp.status_code = status
    return resp


def _handle(handler, gateway_code):
    from app.services import payments, wechatpay

    body = request.get_data(cache=False, as_text=True)
    try:
        with platform_scope("payment-notify"):
            result = handler(gateway_code, request.headers, body)
    except payments.UnknownGateway:
        return _fail(404, "unknown gateway")
    except wechatpay.NotificationRejected as exc:
        log.warning("WeChat Pay notification for %s rejected: %s", gateway_code, exc)
        return _fail(401, "signature verification failed")
    except wechatpay.GatewayNotConfigured:
        log.error("WeChat Pay notification for %s: gateway has no credentials", gateway_code)
        return _fail(500, "gateway not configured")
    except Exception:
        log.exception("WeChat Pay notification for %s failed", gateway_code)
        return _fail(500, "error")
    log.info("WeChat Pay notification for %s: %s", gateway_code, result)
    return "", 204


@bp.post("/<string:gateway_code>/notify")
def notify(gateway_code):
    from app.services.payments import handle_payment_notification

    return _handle(handle_payment_notification, gateway_code)


@bp.post("/<string:gateway_code>/refund-notify")
def refund_notify(gateway_code):
    from app.services.payments import handle_refund_notification

    return _handle(handle_refund_notification, gateway_code)


def register(app):
    from app.extensions import csrf

    csrf.exempt(bp)
    app.register_blueprint(bp)
