"""The member's own account: ``GET /me`` and ``PATCH /me`` (nickname, avatar, plate number)."""
import re

from flask import jsonify
from marshmallow import Schema, ValidationError, fields

from app.member_api import bp, dump, load
from app.member_api.auth import current_member, member_required
from app.member_api.errors import ApiError
from app.member_api.schemas import Money


class MemberSchema(Schema):
    id = fields.Integer(required=True)
    member_no = fields.String(required=True)
    nickname = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    avatar = fields.String(allow_none=True)
    balance = Money(required=True)
    plate_no = fields.String(allow_none=True)
    organization = fields.Function(lambda m: m.organization.name if m.organization else None, allow_none=True)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def plain(value):
    """Validator: a text without control characters (PostgreSQL refuses NUL in a text) that is valid
    UTF-8 (JSON may carry lone surrogates)."""
    if value is None:
        return
    if _CONTROL.search(value):
        raise ValidationError("Control characters are not allowed.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("Not valid text.") from None


class ProfileUpdate(Schema):
    nickname = fields.String(validate=plain, metadata={"description": "1 to 32 characters"})
    avatar = fields.String(allow_none=True, validate=plain,
                           metadata={"description": "http(s) address; empty or null clears it"})
    plate_no = fields.String(allow_none=True, validate=plain,
                             metadata={"description": "e.g. 苏A12345; empty or null clears it"})


@bp.get("/me")
@member_required
def me():
    """The logged-in member.
    ---
    get:
      summary: My account
      responses:
        200:
          description: the member
          content:
            application/json:
              schema: MemberSchema
    """
    return jsonify(dump(MemberSchema, current_member()))


@bp.patch("/me")
@member_required
def update_me():
    """Change my nickname, avatar or plate number (only the fields sent).
    ---
    patch:
      summary: Change my account
      requestBody:
        required: true
        content:
          application/json:
            schema: ProfileUpdate
      responses:
        200:
          description: the member
          content:
            application/json:
              schema: MemberSchema
    """
    from app.services import member_accounts

    data = load(ProfileUpdate)
    try:
        member = member_accounts.update_profile(current_member().id, data)
    except member_accounts.AccountError as exc:
        raise ApiError(exc.code, fields=exc.fields) from None
    return jsonify(dump(MemberSchema, member))
