"""Our T/CEC 102 endpoints for partner platforms: ``POST <base>/<interface>`` for every base path of
``TCEC_BASE_PATHS`` (default ``/evcs/v1.0/`` and ``/evcs/v1/``). Thin HTTP shell: the rules are in
:mod:`app.services.interconnect`. Authentication is the T/CEC token and signature (policy: PUBLIC),
so the blueprint is exempt from CSRF. Protocol errors are HTTP 200 with ``Ret`` (the standard).
"""
import json

from flask import Blueprint, Response, current_app, request

from app.services import interconnect


def serve(interface):
    result = interconnect.answer(interface, request.get_data(cache=False), request.headers.get("Authorization"),
                                 client_ip())
    body = json.dumps(result.envelope, ensure_ascii=False, separators=(",", ":"))
    return Response(body, status=200, content_type="application/json;charset=utf-8",
                    headers={"Cache-Control": "no-store"})


def _view(interface):
    def view():
        return serve(interface)

    view.__name__ = interface
    return view


def client_ip():
    """The caller's IP for the allow-list: the TCP peer, or with TCEC_PROXY_HOPS trusted proxies in front,
    the address that many places from the right of X-Forwarded-For (what the outermost proxy saw)."""
    hops = int(current_app.config["TCEC_PROXY_HOPS"])
    if hops > 0:
        chain = [p.strip() for p in request.headers.get("X-Forwarded-For", "").split(",") if p.strip()]
        if len(chain) >= hops:
            return chain[-hops]
        return None                     # not through the proxies: no address to trust
    return request.remote_addr


def base_paths(app):
    paths = []
    for raw in str(app.config["TCEC_BASE_PATHS"]).split(","):
        path = raw.strip().strip("/")
        if path:
            paths.append("/" + path + "/")
    return paths


def register(app):
    """Add the endpoints ``tcec.<interface>`` under every configured base path, exempt from CSRF."""
    from app.extensions import csrf

    bp = Blueprint("tcec", __name__)   # one per app (tests build several apps)
    for interface in interconnect.INTERFACES:   # endpoint tcec.<interface>; anything else is a plain 404
        view = _view(interface)
        for path in base_paths(app):
            bp.add_url_rule(f"{path}{interface}", interface, view, methods=["POST"])
    csrf.exempt(bp)
    app.register_blueprint(bp)

