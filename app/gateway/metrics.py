"""Gateway metrics in Prometheus text format, served by the gateway process itself.

Each gateway node serves ``GET /metrics`` on ``GATEWAY_METRICS_HOST:GATEWAY_METRICS_PORT``
(default 127.0.0.1:9108; port 0 disables it) with a gevent WSGI server; Prometheus scrapes every
node. Counters are process-local, cheap to bump (a dict lookup), and reset on restart.

``GET /healthz`` on the same port is the node's health check (for the TCP load balancer in front of
the gateway nodes and for process supervisors): 200 with JSON when the node is registered (its
liveness key in Redis is there, so commands reach it and its piles are not swept) and Redis
answers, else 503 (also while the node starts or stops).
"""

from __future__ import annotations

import bisect
import json
import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

#: name -> (type, help)
METRICS = {
    "ykc_gateway_connections": ("gauge", "Open TCP connections."),
    "ykc_gateway_piles_online": ("gauge", "Piles logged in on this node."),
    "ykc_gateway_connections_total": ("counter", "TCP connections accepted."),
    "ykc_gateway_disconnects_total": ("counter", "Connections closed, by reason."),
    "ykc_gateway_logins_total": ("counter", "Login frames, by result."),
    "ykc_gateway_frames_in_total": ("counter", "Frames received, by frame type."),
    "ykc_gateway_frames_out_total": ("counter", "Frames sent, by frame type."),
    "ykc_gateway_bytes_in_total": ("counter", "Bytes received."),
    "ykc_gateway_bytes_out_total": ("counter", "Bytes sent."),
    "ykc_gateway_decode_errors_total": ("counter", "CRC-valid frames whose body did not fit its type."),
    "ykc_gateway_garbage_bytes_total": ("counter", "Bytes dropped while looking for frames."),
    "ykc_gateway_dropped_frames_total": ("counter", "Frames ignored, by reason."),
    "ykc_gateway_handler_errors_total": ("counter", "Frame handlers that raised, by frame type."),
    "ykc_gateway_commands_total": ("counter", "Commands from the bus, by frame type and result."),
    "ykc_gateway_command_seconds": ("histogram", "Command round trip on the node: receipt to pile reply."),
    "ykc_gateway_db_flush_seconds": ("histogram", "Batched database writes: one flush."),
    "ykc_gateway_db_flush_errors_total": ("counter", "Batched database flushes that failed."),
    "ykc_gateway_db_rows_total": ("counter", "Rows written by batched flushes, by kind."),
    "ykc_gateway_bills_total": ("counter", "Transaction records (0x3B), by outcome."),
}
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def frame_label(frame_type: int) -> str:
    return f"0x{frame_type:02X}"


def _labels(labels: tuple) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{str(v).replace(chr(92), "/").replace(chr(34), chr(39))}"' for k, v in labels)
    return "{" + inner + "}"


class _Histogram:
    __slots__ = ("counts", "sum", "count")

    def __init__(self):
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, value)] += 1
        self.sum += value
        self.count += 1


class Metrics:
    """Counters, gauges (callables read at scrape time) and histograms with labels."""

    def __init__(self):
        self.counters: dict[tuple[str, tuple], float] = {}     # key() -> value; per-frame paths bump it directly
        self._histograms: dict[tuple[str, tuple], _Histogram] = {}
        self._gauges: dict[str, Callable[[], float]] = {}
        self._lock = threading.Lock()
        self.health: Callable[[], tuple[bool, dict]] | None = None     # see health_of

    def health_of(self, gateway) -> None:
        """Answer ``/healthz`` for ``gateway`` (an ``app.gateway.server.Gateway``)."""
        self.health = lambda: gateway_health(gateway)

    def inc(self, name: str, amount: float = 1, **labels) -> None:
        key = (name, tuple(sorted(labels.items())) if labels else ())
        self.counters[key] = self.counters.get(key, 0) + amount

    @staticmethod
    def key(name: str, **labels) -> tuple:
        """A counter's key, computed once, for :meth:`add` on a per-frame path."""
        return (name, tuple(sorted(labels.items())) if labels else ())

    def add(self, key: tuple, amount: float = 1) -> None:
        """:meth:`inc` with a precomputed :meth:`key` (no label sorting per call)."""
        counters = self.counters
        counters[key] = counters.get(key, 0) + amount

    def observe(self, name: str, value: float, **labels) -> None:
        key = (name, tuple(sorted(labels.items())) if labels else ())
        hist = self._histograms.get(key)
        if hist is None:
            hist = self._histograms[key] = _Histogram()
        hist.observe(value)

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        self._gauges[name] = read

    def value(self, name: str, **labels) -> float:
        return self.counters.get((name, tuple(sorted(labels.items())) if labels else ()), 0)

    def render(self) -> str:
        """The Prometheus text exposition (format 0.0.4)."""
        lines: list[str] = []
        seen: set[str] = set()

        def header(name: str) -> None:
            if name not in seen:
                seen.add(name)
                kind, help_text = METRICS.get(name, ("untyped", name))
                lines.append(f"# HELP {name} {help_text}")
                lines.append(f"# TYPE {name} {kind}")

        for name, read in sorted(self._gauges.items()):
            header(name)
            try:
                lines.append(f"{name} {float(read()):g}")
            except Exception:  # a gauge must never break the scrape
                log.exception("gauge %s failed", name)
        for (name, labels), value in sorted(self.counters.items()):
            header(name)
            lines.append(f"{name}{_labels(labels)} {value:g}")
        for (name, labels), hist in sorted(self._histograms.items(), key=lambda kv: kv[0]):
            header(name)
            running = 0
            for bound, count in zip(BUCKETS, hist.counts, strict=False):
                running += count
                lines.append(f"{name}_bucket{_labels(labels + (('le', f'{bound:g}'),))} {running}")
            lines.append(f"{name}_bucket{_labels(labels + (('le', '+Inf'),))} {hist.count}")
            lines.append(f"{name}_sum{_labels(labels)} {hist.sum:.6f}")
            lines.append(f"{name}_count{_labels(labels)} {hist.count}")
        return "\n".join(lines) + "\n"

    def health_response(self) -> tuple[str, bytes]:
        if self.health is None:
            ok, detail = False, {"status": "starting"}
        else:
            try:
                ok, detail = self.health()
            except Exception:                # a broken check is an unhealthy node, not a 500
                log.exception("gateway health check failed")
                ok, detail = False, {"status": "error"}
        return ("200 OK" if ok else "503 Service Unavailable"), (json.dumps(detail) + "\n").encode()

    def wsgi_app(self, environ, start_response):
        if environ.get("PATH_INFO") == "/healthz":
            status, body = self.health_response()
            start_response(status, [("Content-Type", "application/json"), ("Cache-Control", "no-store"),
                                    ("Content-Length", str(len(body)))])
            return [body]
        if environ.get("PATH_INFO", "/") not in ("/", "/metrics"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        body = self.render().encode()
        start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4; charset=utf-8"),
                                  ("Content-Length", str(len(body)))])
        return [body]


def gateway_health(gateway) -> tuple[bool, dict]:
    """(healthy, detail) of a gateway node: not stopping, Redis answers, and the node's liveness key
    is there (it is registered: the command bus routes to it and the sweep leaves its piles)."""
    node = gateway.settings.node if gateway.settings else None
    detail = {"status": "ok", "node": node, "redis": "ok", "registered": False,
              "piles": len(gateway.sessions), "connections": len(gateway.connections)}
    if gateway.stopping or gateway.state is None:
        detail["status"] = "stopping" if gateway.stopping else "starting"
        return False, detail
    registry = gateway.state.registry
    try:
        registry.redis.ping()
        detail["registered"] = registry.node_alive(node)
    except Exception:
        log.exception("gateway health check: Redis unreachable")
        detail["redis"] = "error"
    if detail["redis"] != "ok" or not detail["registered"]:
        detail["status"] = "error"
        return False, detail
    return True, detail


def serve_metrics(metrics: Metrics, host: str, port: int):
    """Start the metrics endpoint on a gevent WSGI server (returns it, started), or None if port 0."""
    if not port:
        return None
    from gevent.pywsgi import WSGIServer

    server = WSGIServer((host, port), metrics.wsgi_app, log=None)
    try:
        server.start()
    except OSError as exc:                  # e.g. a second node on this host: it still serves piles
        log.error("gateway metrics endpoint %s:%s not started: %s", host, port, exc)
        return None
    log.info("gateway metrics on http://%s:%s/metrics (health check /healthz)", host, server.server_port)
    return server
