"""WeChat Pay API v3 through the ``wechatpayv3`` package: the only module that imports it.

Mode: direct merchant (直连商户), **WeChat Pay public key** verification (``public_key`` +
``public_key_id``, 微信支付公钥): responses and notifications are verified with the platform public key the
operator copies from the merchant platform, so no platform certificate download (``/v3/certificates``) is
needed. The merchant signs requests with its API private key (``merchant_serial_no``).

API host: the library has no option for it; it keeps it in ``Core._gate_way`` and builds every URL from it
(``download_bill`` reads it too), so :func:`client` sets that attribute to the gateway's ``api_base_url`` (or
``WECHATPAY_API_BASE``). Tests point it at a local fake server.

Everything here speaks fen (integers) and WeChat's field names; :mod:`app.services.payments` owns the rules.
"""
import json
import logging
import uuid
from datetime import UTC

from flask import current_app
from wechatpayv3 import WeChatPay, WeChatPayType

from app.services import clock
from app.services.secrets_box import unseal

log = logging.getLogger(__name__)

#: a notification's timestamp may differ from our clock by this many seconds
NOTIFY_WINDOW_SECONDS = 300


class WeChatPayError(Exception):
    """The call did not get a verified answer (network, HTTP error, bad response signature): retry later."""

    def __init__(self, message, status=None, body=None):
        super().__init__(message)
        self.http_status = status
        self.body = body


class GatewayNotConfigured(WeChatPayError):
    """The gateway lacks merchant credentials."""


class NotificationRejected(Exception):
    """A notification whose signature or encryption does not check out: answer 401, credit nothing."""


def _epoch_now():
    return int(clock.utcnow().replace(tzinfo=UTC).timestamp())


def configured(gateway):
    return bool(gateway.mchid and gateway.appid and gateway.merchant_serial_no and gateway.api_v3_key_enc
                and gateway.private_key_enc and gateway.platform_public_key_enc and gateway.platform_public_key_id)


def client(gateway, notify_url=None):
    """A ``WeChatPay`` client of ``gateway`` (credentials opened from their sealed form)."""
    if not configured(gateway):
        raise GatewayNotConfigured(f"payment gateway {gateway.code} has no complete WeChat Pay credentials")
    try:
        pay = WeChatPay(
            wechatpay_type=WeChatPayType.MINIPROG,
            mchid=gateway.mchid,
            private_key=unseal(gateway.private_key_enc),
            cert_serial_no=gateway.merchant_serial_no,
            appid=gateway.appid,
            apiv3_key=unseal(gateway.api_v3_key_enc),
            notify_url=notify_url,
            public_key=unseal(gateway.platform_public_key_enc),
            public_key_id=gateway.platform_public_key_id,
            timeout=current_app.config["WECHATPAY_TIMEOUT"],
            logger=log,
        )
    except Exception as exc:  # the library raises bare Exception for unreadable keys
        raise GatewayNotConfigured(f"payment gateway {gateway.code}: {exc}") from exc
    pay._core._gate_way = (gateway.api_base_url or current_app.config["WECHATPAY_API_BASE"]).rstrip("/")
    return pay


def _call(what, fn, *args, **kwargs):
    try:
        code, message = fn(*args, **kwargs)
    except WeChatPayError:
        raise
    except Exception as exc:  # requests errors, "failed to verify the signature", ...
        raise WeChatPayError(f"{what}: {exc}") from exc
    try:
        body = json.loads(message) if message else {}
    except (TypeError, ValueError):
        body = {"raw": str(message)[:500]}
    return code, body


def jsapi_prepay(gateway, *, payment_no, total_fen, description, openid, notify_url, expires_at=None):
    """JSAPI/mini-program prepay: the parameters of ``wx.requestPayment`` (timeStamp, nonceStr, package,
    signType, paySign)."""
    pay = client(gateway, notify_url)
    kwargs = {}
    if expires_at is not None:
        kwargs["time_expire"] = expires_at.replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    code, body = _call("prepay", pay.pay, description=description, out_trade_no=payment_no,
                       amount={"total": int(total_fen), "currency": "CNY"}, payer={"openid": openid},
                       pay_type=WeChatPayType.JSAPI, **kwargs)
    prepay_id = body.get("prepay_id")
    if code != 200 or not prepay_id:
        raise WeChatPayError(f"prepay answered {code}", status=code, body=body)
    timestamp = str(_epoch_now())
    nonce = uuid.uuid4().hex
    package = f"prepay_id={prepay_id}"
    sign = pay.sign([gateway.appid, timestamp, nonce, package])
    return {"appId": gateway.appid, "timeStamp": timestamp, "nonceStr": nonce, "package": package,
            "signType": "RSA", "paySign": sign}


def parse_notification(gateway, headers, body):
    """The verified and decrypted notification: the envelope with ``resource`` decrypted (a dict).
    NotificationRejected if the signature, the timestamp window or the decryption fails."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    headers = {k.lower(): v for k, v in dict(headers).items()}
    try:
        stamp = int(headers.get("wechatpay-timestamp") or "")
    except ValueError:
        raise NotificationRejected("no timestamp") from None
    if abs(_epoch_now() - stamp) > NOTIFY_WINDOW_SECONDS:
        raise NotificationRejected("timestamp outside the window")
    try:
        pay = client(gateway)
        data = pay.callback(headers, body)
    except GatewayNotConfigured:
        raise
    except Exception as exc:  # unknown signature type, malformed JSON, ...
        raise NotificationRejected(str(exc)) from exc
    if not data or not isinstance(data.get("resource"), dict):
        raise NotificationRejected("signature or decryption failed")
    return data


def query_payment(gateway, payment_no):
    """The transaction of ``payment_no`` as WeChat reports it (dict), or None if WeChat does not know it."""
    pay = client(gateway)
    code, body = _call("query", pay.query, out_trade_no=payment_no)
    if code == 404 or body.get("code") == "ORDER_NOT_EXIST":
        return None
    if code != 200:
        raise WeChatPayError(f"query answered {code}", status=code, body=body)
    return body


def close_payment(gateway, payment_no):
    pay = client(gateway)
    code, body = _call("close", pay.close, out_trade_no=payment_no)
    if code not in (200, 204):
        raise WeChatPayError(f"close answered {code}", status=code, body=body)


def refund(gateway, *, refund_no, payment_no, refund_fen, total_fen, reason, notify_url):
    """Ask for a refund (idempotent at WeChat by ``refund_no``). Returns WeChat's answer (``status``:
    SUCCESS / PROCESSING / CLOSED / ABNORMAL). A 4xx answer that refuses the refund is returned as
    ``{"status": "REFUSED", "code": ..., "message": ...}``; other failures raise WeChatPayError."""
    pay = client(gateway)
    code, body = _call("refund", pay.refund, out_refund_no=refund_no, out_trade_no=payment_no,
                       amount={"refund": int(refund_fen), "total": int(total_fen), "currency": "CNY"},
                       reason=(reason or "")[:80] or None, notify_url=notify_url)
    if code == 200:
        return body
    retryable = code in (401, 403, 429) or body.get("code") in ("SYSTEM_ERROR", "FREQUENCY_LIMITED")
    if 400 <= code < 500 and not retryable:
        return {"status": "REFUSED", "code": body.get("code"), "message": body.get("message")}
    raise WeChatPayError(f"refund answered {code}", status=code, body=body)


def query_refund(gateway, refund_no):
    pay = client(gateway)
    code, body = _call("refund query", pay.query_refund, out_refund_no=refund_no)
    if code == 404:
        return None
    if code != 200:
        raise WeChatPayError(f"refund query answered {code}", status=code, body=body)
    return body
