"""The member API's OpenAPI 3 document, built from the routes' docstrings (apispec + marshmallow).

Each view documents itself in YAML after ``---`` in its docstring (parameters, requestBody, the
success response with a marshmallow schema name). The builder adds what every view shares:
the bearer security and a 401 for ``member_required`` views, 400 (invalid_request) and 429 for all,
404 for routes with path parameters, and the error responses a view declares with :func:`errors`.
"""
import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.yaml_utils import load_operations_from_docstring
from marshmallow import Schema, fields

from app.member_api.errors import ERRORS

_ARG = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


class ErrorSchema(Schema):
    code = fields.String(required=True, metadata={"description": "error code (see the API description)"})
    message = fields.String(required=True, metadata={"description": "Chinese message for the member"})
    fields = fields.Dict(keys=fields.String(), values=fields.List(fields.String()),
                         metadata={"description": "per-field messages of invalid_request"})


def errors(*codes):
    """Declare the error codes a view can answer (besides the shared ones) for the document."""

    def decorate(fn):
        for code in codes:
            if code not in ERRORS:
                raise KeyError(f"undocumented member API error code {code!r}")
        fn.api_errors = tuple(codes)
        return fn

    return decorate


def _unwrap(fn, attr):
    while fn is not None:
        if getattr(fn, attr, None):
            return getattr(fn, attr)
        fn = getattr(fn, "__wrapped__", None)
    return None


def _error_response(codes):
    listed = ", ".join(codes)
    return {"description": f"error ({listed})",
            "content": {"application/json": {"schema": "ErrorSchema"}}}


def build(app, prefix):
    """The OpenAPI document (a dict) of every ``member_api.*`` route of ``app``."""
    spec = APISpec(
        title="CPMS member app API",
        version="1.0.0",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": _description()},
    )
    spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    spec.components.schema("ErrorSchema", schema=ErrorSchema)
    rules = sorted((r for r in app.url_map.iter_rules() if r.endpoint.startswith("member_api.")),
                   key=lambda r: r.rule)
    paths = {}
    for rule in rules:
        view = app.view_functions[rule.endpoint]
        doc = load_operations_from_docstring(_unwrap(view, "__doc__") or "") or {}
        path = _ARG.sub(r"{\1}", rule.rule)
        by_status = {}
        for code in ("invalid_request", "rate_limited", *(_unwrap(view, "api_errors") or ())):
            by_status.setdefault(ERRORS[code][0], []).append(code)
        secured = bool(_unwrap(view, "member_required"))
        if secured:
            by_status.setdefault(401, []).extend(["token_missing", "token_invalid"])
            by_status.setdefault(403, []).append("member_disabled")
        if rule.arguments:
            by_status.setdefault(404, []).append("not_found")
        ops = paths.setdefault(path, {})
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            op = dict(doc.get(method.lower()) or {})
            suffix = "" if method == "GET" else f"_{method.lower()}"
            op.setdefault("operationId", rule.endpoint.split(".", 1)[1] + suffix)
            responses = dict(op.get("responses") or {})
            for status, codes in by_status.items():
                responses.setdefault(str(status), _error_response(sorted(set(codes))))
            op["responses"] = responses
            if secured:
                op["security"] = [{"bearerAuth": []}]
            params = list(op.get("parameters") or [])
            named = {p.get("name") for p in params if isinstance(p, dict)}
            for arg in sorted(rule.arguments):
                if arg not in named:
                    params.append({"in": "path", "name": arg, "required": True,
                                   "schema": {"type": "integer" if _is_int(rule, arg) else "string"}})
            if params:
                op["parameters"] = params
            ops[method.lower()] = op
    for path, ops in paths.items():
        spec.path(path=path, operations=ops)
    return spec.to_dict()


def _is_int(rule, arg):
    conv = rule._converters.get(arg)
    return conv is not None and type(conv).__name__.lower().find("int") >= 0


def _description():
    from flask_babel import force_locale

    with force_locale("zh"):
        lines = [f"- `{code}` (HTTP {status}): {message}" for code, (status, message) in sorted(ERRORS.items())]
    return ("Errors answer `{code, message}` (message in Chinese; English with `Accept-Language: en`).\n\n"
            + "\n".join(lines))
