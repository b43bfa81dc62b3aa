"""Logins of the member app: SMS code, WeChat mini program, token refresh and logout.

The app names itself by ``channel`` (the channel's code or identifier) or, for WeChat, by its
``appid``: the channel decides the operator, and the member is the operator's own (the same phone
at two operators is two members). A first login registers the member
(``member_accounts.find_or_register``).
"""
from flask import jsonify
from marshmallow import Schema, fields, validate

from app.member_api import LOGIN_ENDPOINTS, bp, dump, load
from app.member_api.auth import current_member, decode, issue_tokens, load_member, member_required, revoke_tokens
from app.member_api.errors import ApiError
from app.member_api.openapi import errors
from app.member_api.profile import MemberSchema, plain
from app.member_api.schemas import OkSchema
from app.services import member_accounts, sms
from app.services import wechat_login as wechat

LOGIN_ENDPOINTS.extend(["sms_code", "sms_login", "wechat_login", "refresh"])

PLAIN = plain
_text = [validate.Length(min=1, max=64), PLAIN]


class SmsCodeRequest(Schema):
    phone = fields.String(required=True, validate=[validate.Length(min=1, max=20), PLAIN],
                          metadata={"description": "mainland mobile number, 11 digits"})
    channel = fields.String(required=True, validate=_text,
                            metadata={"description": "the app's channel: its code or identifier"})


class SmsCodeSchema(Schema):
    expires_in = fields.Integer(required=True, metadata={"description": "seconds the code is valid"})
    resend_in = fields.Integer(required=True, metadata={"description": "seconds before another code may be asked"})


class SmsLoginRequest(Schema):
    phone = fields.String(required=True, validate=[validate.Length(min=1, max=20), PLAIN])
    code = fields.String(required=True, validate=[validate.Length(min=1, max=10), PLAIN])
    channel = fields.String(required=True, validate=_text)


class WeChatLoginRequest(Schema):
    appid = fields.String(required=True, validate=_text, metadata={"description": "the mini program's AppID"})
    code = fields.String(required=True, validate=[validate.Length(min=1, max=128), PLAIN],
                         metadata={"description": "the code of wx.login()"})


class RefreshRequest(Schema):
    refresh_token = fields.String(required=True, validate=validate.Length(min=1, max=2048))


class MemberTokenSchema(Schema):
    access_token = fields.String(required=True)
    refresh_token = fields.String(required=True)
    token_type = fields.String(required=True)
    expires_in = fields.Integer(required=True, metadata={"description": "seconds the access token is valid"})


class MemberLoginSchema(MemberTokenSchema):
    member = fields.Nested(MemberSchema, required=True)
    new_member = fields.Boolean(required=True, metadata={"description": "registered by this login"})


def _channel(name):
    try:
        return member_accounts.login_channel(name)
    except member_accounts.AccountError as exc:
        raise ApiError(exc.code) from None


def _logged_in(member, created):
    return jsonify(dump(MemberLoginSchema, {**issue_tokens(member), "member": member, "new_member": created}))


def _register(operator_id, **identity):
    try:
        return member_accounts.find_or_register(operator_id, **identity)
    except member_accounts.AccountError as exc:
        raise ApiError(exc.code) from None


@bp.post("/auth/sms-code")
@errors("channel_unknown", "phone_invalid", "sms_too_frequent", "sms_daily_limit", "sms_send_failed")
def sms_code():
    """Send a login code by SMS.
    ---
    post:
      summary: Send a login code
      description: 6 digits, valid MEMBER_SMS_CODE_SECONDS; one per phone a minute, a few a day.
      requestBody:
        required: true
        content:
          application/json:
            schema: SmsCodeRequest
      responses:
        200:
          description: the code was sent
          content:
            application/json:
              schema: SmsCodeSchema
    """
    from flask import current_app

    data = load(SmsCodeRequest)
    channel = _channel(data["channel"])
    try:
        seconds = sms.request_code(channel.operator_id, data["phone"])
    except sms.SmsError as exc:
        raise ApiError(exc.code) from None
    return jsonify(dump(SmsCodeSchema, {"expires_in": seconds,
                                        "resend_in": int(current_app.config["MEMBER_SMS_RESEND_SECONDS"])}))


@bp.post("/auth/sms-login")
@errors("channel_unknown", "phone_invalid", "sms_code_wrong", "sms_code_expired", "member_disabled")
def sms_login():
    """Log in (or register) with a phone number and its SMS code.
    ---
    post:
      summary: Log in by SMS code
      requestBody:
        required: true
        content:
          application/json:
            schema: SmsLoginRequest
      responses:
        200:
          description: tokens and the member
          content:
            application/json:
              schema: MemberLoginSchema
    """
    data = load(SmsLoginRequest)
    channel = _channel(data["channel"])
    try:
        phone = sms.verify_code(channel.operator_id, data["phone"], data["code"])
    except sms.SmsError as exc:
        raise ApiError(exc.code) from None
    member, created = _register(channel.operator_id, phone=phone, channel_id=channel.id)
    return _logged_in(member, created)


@bp.post("/auth/wechat")
@errors("channel_unknown", "wechat_code_invalid", "wechat_busy", "wechat_login_failed", "member_disabled")
def wechat_login():
    """Log in (or register) with the code of wx.login() in the operator's mini program.
    ---
    post:
      summary: Log in by WeChat mini program
      requestBody:
        required: true
        content:
          application/json:
            schema: WeChatLoginRequest
      responses:
        200:
          description: tokens and the member
          content:
            application/json:
              schema: MemberLoginSchema
    """
    data = load(WeChatLoginRequest)
    try:
        channel = member_accounts.wechat_channel(data["appid"])
    except member_accounts.AccountError as exc:
        raise ApiError(exc.code) from None
    if not channel.app_secret:
        import logging

        logging.getLogger(__name__).warning("channel %s (appid %s) has no AppSecret", channel.id, channel.identifier)
        raise ApiError("wechat_login_failed")
    try:
        session = wechat.code2session(channel.identifier, channel.app_secret, data["code"])
    except wechat.WeChatLoginError as exc:
        raise ApiError(exc.code) from None
    member, created = _register(channel.operator_id, openid=session["openid"], unionid=session["unionid"],
                                channel_id=channel.id)
    return _logged_in(member, created)


@bp.post("/auth/wechat/bind")
@member_required
@errors("channel_unknown", "wechat_code_invalid", "wechat_busy", "wechat_login_failed", "wechat_already_bound")
def wechat_bind():
    """Bind the mini program's WeChat identity to the logged-in member (who logged in by phone), so
    WeChat Pay top-ups work.
    ---
    post:
      summary: Bind WeChat to my account
      requestBody:
        required: true
        content:
          application/json:
            schema: WeChatLoginRequest
      responses:
        200:
          description: the member
          content:
            application/json:
              schema: MemberSchema
    """
    data = load(WeChatLoginRequest)
    member = current_member()
    try:
        channel = member_accounts.wechat_channel(data["appid"])
    except member_accounts.AccountError as exc:
        raise ApiError(exc.code) from None
    if channel.operator_id != member.operator_id:
        raise ApiError("channel_unknown")
    if not channel.app_secret:
        raise ApiError("wechat_login_failed")
    try:
        session = wechat.code2session(channel.identifier, channel.app_secret, data["code"])
    except wechat.WeChatLoginError as exc:
        raise ApiError(exc.code) from None
    try:
        member = member_accounts.bind_wechat(member.id, channel, session["openid"], session["unionid"])
    except member_accounts.AccountError as exc:
        raise ApiError(exc.code) from None
    return jsonify(dump(MemberSchema, member))


@bp.post("/auth/refresh")
@errors("token_invalid", "member_disabled")
def refresh():
    """New tokens for a valid refresh token.
    ---
    post:
      summary: Refresh the tokens
      requestBody:
        required: true
        content:
          application/json:
            schema: RefreshRequest
      responses:
        200:
          description: new tokens
          content:
            application/json:
              schema: MemberTokenSchema
    """
    data = load(RefreshRequest)
    claims = decode(data["refresh_token"], "refresh")
    member = load_member(claims["member_id"])
    return jsonify(dump(MemberTokenSchema, issue_tokens(member)))


@bp.post("/auth/logout")
@member_required
def logout():
    """Log out everywhere: every token of the member issued so far stops working.
    ---
    post:
      summary: Log out
      responses:
        200:
          description: logged out
          content:
            application/json:
              schema: OkSchema
    """
    revoke_tokens(current_member().id)
    return jsonify(dump(OkSchema, {"ok": True}))
