"""The document itself: ``GET /api/app/v1/_openapi`` (OpenAPI 3 JSON)."""
from flask import current_app, jsonify

from app.member_api import PREFIX, bp


@bp.get("/_openapi")
def openapi():
    """The OpenAPI document of the member API.
    ---
    get:
      summary: OpenAPI document
      responses:
        200:
          description: OpenAPI 3 JSON
          content:
            application/json:
              schema:
                type: object
    """
    from app.member_api.openapi import build

    cache = current_app.extensions.setdefault("cpms_member_openapi", {})
    if "doc" not in cache:
        cache["doc"] = build(current_app, PREFIX)
    return jsonify(cache["doc"])
