"""WeChat mini program login: ``code2session`` (``GET {WECHAT_API_BASE}/sns/jscode2session``) and the
channel's AppSecret.

The mini program's channel (``Channel.channel_type == "mini_program"``) holds the AppID in
``identifier`` and the AppSecret in ``app_secret``: write-only (the admin form never shows it back,
an empty input keeps the stored value; :func:`apply_app_secret`), never in a list, export or log.

WeChat's answer is JSON: ``{"openid", "session_key", "unionid"?}`` or ``{"errcode", "errmsg"}``.
Errors become :class:`WeChatLoginError` with the member API error code:
- 40029 / 40163 (invalid or used code) -> ``wechat_code_invalid``;
- 45011 (rate limited), -1 (system busy), network/HTTP/JSON failure -> ``wechat_busy``;
- anything else (wrong AppID/AppSecret 40013/40125, risky user 40226, ...) -> ``wechat_login_failed``.
"""
import json
import logging
import re
import urllib.error
import urllib.parse
import urllib.request

from flask import current_app
from flask_babel import lazy_gettext as _l

log = logging.getLogger(__name__)

CODE_INVALID = {40029, 40163}
BUSY = {45011, -1}
PRINTABLE = re.compile(r"[\x21-\x7e]{1,64}")


class WeChatLoginError(Exception):
    def __init__(self, code, errcode=None):
        super().__init__(code)
        self.code = code
        self.errcode = errcode


def code2session(appid, secret, code):
    """{"openid", "session_key", "unionid" (or None)} of a ``wx.login`` code; WeChatLoginError otherwise."""
    base = current_app.config["WECHAT_API_BASE"].rstrip("/")
    query = urllib.parse.urlencode({"appid": appid, "secret": secret, "js_code": code,
                                    "grant_type": "authorization_code"})
    url = f"{base}/sns/jscode2session?{query}"
    try:
        with urllib.request.urlopen(url, timeout=float(current_app.config["WECHAT_TIMEOUT"])) as resp:
            body = json.loads(resp.read().decode("utf-8"))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        # the URL holds the secret: log only the host
        log.warning("WeChat code2session at %s failed: %s", base, type(exc).__name__)
        raise WeChatLoginError("wechat_busy") from None
    if not isinstance(body, dict):
        raise WeChatLoginError("wechat_busy")
    errcode = body.get("errcode") or 0
    try:
        errcode = int(errcode)
    except (TypeError, ValueError):
        errcode = -1
    if errcode:
        log.info("WeChat code2session for appid %s refused: %s %s", appid, errcode, body.get("errmsg"))
        if errcode in CODE_INVALID:
            raise WeChatLoginError("wechat_code_invalid", errcode)
        if errcode in BUSY:
            raise WeChatLoginError("wechat_busy", errcode)
        raise WeChatLoginError("wechat_login_failed", errcode)
    openid = body.get("openid")
    if not openid or not isinstance(openid, str):
        raise WeChatLoginError("wechat_login_failed")
    return {"openid": openid, "session_key": body.get("session_key"), "unionid": body.get("unionid") or None}


# ----- the channel's AppSecret (write-only) -----------------------------------------------------
def app_secret_error(value):
    """Why ``value`` is not a usable AppSecret (printable ASCII, no spaces, at most 64), or None."""
    if value and not PRINTABLE.fullmatch(value):
        return _l("Use at most 64 printable ASCII characters, without spaces.")
    return None


def apply_app_secret(channel, submitted):
    """Write a submitted AppSecret; an empty input keeps the stored one. ValueError when invalid."""
    value = (submitted or "").strip()
    if not value:
        return
    error = app_secret_error(value)
    if error:
        raise ValueError(str(error))
    channel.app_secret = value
