"""The member's own account: ``GET /me``."""
from flask import jsonify
from marshmallow import Schema, fields

from app.member_api import bp, dump
from app.member_api.auth import current_member, member_required
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
