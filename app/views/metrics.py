"""Web process metrics (Prometheus, ``prometheus_client``) and ``GET /metrics``.

- ``cpms_web_request_seconds{endpoint}``: request latency by Flask endpoint (the URL rule's endpoint
  name, never the raw path; ``unmatched`` for a URL no rule matched), measured from
  ``before_request`` to ``after_request``;
- ``cpms_web_requests_total{endpoint,status}``: responses by endpoint and HTTP status.

``GET /metrics`` (policy: its own token check, like a partner API) answers only a request carrying
``Authorization: Bearer <METRICS_TOKEN>``; with no ``METRICS_TOKEN`` set it answers 404 (no metrics
exposed). Never redirected to HTTPS: Prometheus scrapes each web process directly, as it scrapes
the gateway nodes' and workers' metrics ports (``GATEWAY_METRICS_PORT``, ``WORKER_METRICS_PORT``).

Several gunicorn workers: set ``PROMETHEUS_MULTIPROC_DIR`` (an empty directory, emptied at each start)
in the web's environment and every scrape sums all of them (prometheus_client's multiprocess mode).
"""
import hmac
import os
import time

from flask import Response, abort, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

disable_created_metrics()            # no ``*_created`` series: nothing reads them

#: latency buckets (seconds): the admin pages' target is 0.1 s at p95, the reports' 0.5 s
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUEST_SECONDS = Histogram("cpms_web_request_seconds", "Web request latency by endpoint.", ["endpoint"],
                            buckets=BUCKETS)
REQUESTS = Counter("cpms_web_requests", "Web responses by endpoint and HTTP status.", ["endpoint", "status"])


def _endpoint():
    return request.url_rule.endpoint if request.url_rule is not None else "unmatched"


def _started():
    g.metrics_started = time.perf_counter()


def _finished(response):
    started = g.pop("metrics_started", None)
    if started is not None:
        endpoint = _endpoint()
        REQUEST_SECONDS.labels(endpoint).observe(time.perf_counter() - started)
        REQUESTS.labels(endpoint, str(response.status_code)).inc()
    return response


def render() -> bytes:
    """The Prometheus text of this process (or of every process sharing ``PROMETHEUS_MULTIPROC_DIR``)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def metrics():
    token = current_app.config.get("METRICS_TOKEN")
    if not token:
        abort(404)
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return Response("unauthorized\n", status=401, mimetype="text/plain",
                        headers={"WWW-Authenticate": "Bearer"})
    return Response(render(), mimetype=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


def register(app):
    """Measure every request of ``app``; ``/metrics`` (endpoint ``metrics``), exempt from the HTTPS redirect."""
    app.before_request_funcs.setdefault(None, []).insert(0, _started)   # first: before any check aborts
    app.after_request(_finished)
    talisman = app.extensions.get("talisman")
    view = talisman(force_https=False)(metrics) if talisman is not None else metrics
    app.add_url_rule("/metrics", "metrics", view, methods=["GET"])
