"""Shared schema pieces of the member API (marshmallow). Money is a JSON string with the stored places
("12.3400"): never a float. Times are ISO 8601 in UTC with a "Z"."""
from marshmallow import Schema, fields


def Money(**kw):  # noqa: N802  (a field factory, used like a field class)
    # documented as what it is on the wire: a decimal string (apispec would say "number")
    kw["metadata"] = {"type": "string", "format": "decimal", **kw.get("metadata", {})}
    return fields.Decimal(as_string=True, **kw)


class UtcDateTime(fields.DateTime):
    """Naive UTC datetimes out as ``2026-11-28T12:00:00Z``."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return value.replace(microsecond=0, tzinfo=None).isoformat() + "Z"


class PageQuery(Schema):
    page = fields.Integer(load_default=1, validate=lambda n: 1 <= n <= 10000)
    page_size = fields.Integer(load_default=20, validate=lambda n: 1 <= n <= 100)


class PageMeta(Schema):
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)
    total = fields.Integer(required=True)


class OkSchema(Schema):
    ok = fields.Boolean(required=True)
