"""Pile gateway node: a gevent StreamServer, one greenlet (PileSession) per pile connection.

Besides the connections, a node runs a few background greenlets:

- the command listener (BLPOP on its Redis queue, see :mod:`app.gateway.commands`);
- the live-state writer (Redis pipelines every ``GATEWAY_LIVE_FLUSH_INTERVAL``);
- the database batch writer (one transaction every ``GATEWAY_FLUSH_INTERVAL``);
- the node announcement (liveness key with a TTL, see :mod:`app.gateway.registry`); a node that
  finds its key gone (it stalled past the TTL and may have been swept) claims its piles again;
- the dead-node sweep: piles of nodes whose liveness key expired go offline
  (:mod:`app.services.gateway_nodes`);
- the metrics endpoint (``GATEWAY_METRICS_PORT``, see :mod:`app.gateway.metrics`).

``python run.py gateway`` calls :func:`make_server` and ``serve_forever()`` inside an app context.
"""

from __future__ import annotations

import gc
import itertools
import logging
import time
from dataclasses import dataclass

import gevent
import redis
from flask import current_app
from gevent.event import AsyncResult, Event
from gevent.server import StreamServer

from app.gateway.commands import CommandListener, Request, send_reply
from app.gateway.metrics import Metrics, serve_metrics
from app.gateway.registry import default_node_id, pile_key
from app.gateway.session import PileSession
from app.gateway.state_writer import GatewayState, StateSettings
from app.gateway.ykc import ReadRealtimeData
from app.services import gateway_nodes
from app.services.charging_hooks import load_hooks

log = logging.getLogger(__name__)

MIN_NODE_TTL = 2.0          # seconds: the derived node liveness TTL is never shorter
MIN_DEADLINE_INTERVAL = 0.05    # seconds: bounds of the derived session deadline sweep interval
MAX_DEADLINE_INTERVAL = 0.5


@dataclass
class GatewaySettings:
    node: str
    heartbeat_interval: float = 10.0
    heartbeat_misses: int = 3
    login_timeout: float = 30.0
    idle_timeout: float = 60.0
    max_frame_size: int = 259
    max_garbage: int = 1024
    time_sync_interval: float = 12 * 3600
    flush_interval: float = 1.0
    live_flush_interval: float = 0.1
    registry_ttl: int = 90
    backlog: int = 1024
    # Thousands of long-lived sessions make a full GC pass take ~0.5 s; they are frozen (moved out of
    # the collector's generations) every gc_freeze_interval, and fully collected every gc_full_interval.
    gc_freeze_interval: float = 60.0
    gc_full_interval: float = 6 * 3600.0
    # Node liveness (0: derived from the heartbeat interval, see config.py): a dead node's piles are
    # offline in at most node_ttl + sweep_interval = 1.75 heartbeat intervals.
    node_ttl: float = 0.0
    node_refresh: float = 0.0
    sweep_interval: float = 0.0
    # Session deadlines (idle, login, heartbeat, time sync) are checked by one sweeper greenlet this
    # often (0: a quarter of the shortest of them, at most 0.5 s): a deadline is acted on at most one
    # sweep late.
    deadline_interval: float = 0.0

    def __post_init__(self):
        if not self.node_ttl:
            self.node_ttl = max(MIN_NODE_TTL, 1.5 * self.heartbeat_interval)
        if not self.node_refresh:
            self.node_refresh = self.node_ttl / 3
        if not self.sweep_interval:
            self.sweep_interval = max(0.25, self.heartbeat_interval / 4)
        if not self.deadline_interval:
            shortest = min(self.idle_timeout, self.login_timeout, self.heartbeat_timeout, self.time_sync_interval)
            self.deadline_interval = min(MAX_DEADLINE_INTERVAL, max(MIN_DEADLINE_INTERVAL, shortest / 4))

    @property
    def heartbeat_timeout(self) -> float:
        return self.heartbeat_interval * self.heartbeat_misses

    @classmethod
    def from_config(cls, config, port: int) -> GatewaySettings:
        return cls(
            node=config.get("GATEWAY_NODE_ID") or default_node_id(port),
            heartbeat_interval=float(config["GATEWAY_HEARTBEAT_INTERVAL"]),
            heartbeat_misses=int(config["GATEWAY_HEARTBEAT_MISSES"]),
            login_timeout=float(config["GATEWAY_LOGIN_TIMEOUT"]),
            idle_timeout=float(config["GATEWAY_IDLE_TIMEOUT"]),
            max_frame_size=int(config["GATEWAY_MAX_FRAME_SIZE"]),
            max_garbage=int(config["GATEWAY_MAX_GARBAGE"]),
            time_sync_interval=float(config["GATEWAY_TIME_SYNC_INTERVAL"]),
            flush_interval=float(config["GATEWAY_FLUSH_INTERVAL"]),
            live_flush_interval=float(config["GATEWAY_LIVE_FLUSH_INTERVAL"]),
            registry_ttl=int(config["GATEWAY_REGISTRY_TTL"]),
            backlog=int(config["GATEWAY_BACKLOG"]),
            gc_freeze_interval=float(config["GATEWAY_GC_FREEZE_INTERVAL"]),
            gc_full_interval=float(config["GATEWAY_GC_FULL_INTERVAL"]),
            node_ttl=float(config.get("GATEWAY_NODE_TTL") or 0),
            node_refresh=float(config.get("GATEWAY_NODE_REFRESH") or 0),
            sweep_interval=float(config.get("GATEWAY_SWEEP_INTERVAL") or 0),
        )


class LoginBatcher:
    """Login lookups of concurrent connections share one database round (``lookup_piles``): in a
    login storm thousands of piles log in at once; one query per pile would queue them for minutes."""

    MAX_BATCH = 500

    def __init__(self, state: GatewayState):
        self.state = state
        self.waiting: dict[str, list[AsyncResult]] = {}
        self.wakeup = Event()
        self.worker = gevent.spawn(self._run)

    def lookup(self, code: str, timeout: float = 60.0):
        result = AsyncResult()
        self.waiting.setdefault(code, []).append(result)
        self.wakeup.set()
        return result.get(timeout=timeout)

    def _run(self):
        while True:
            self.wakeup.wait()
            self.wakeup.clear()
            while self.waiting:
                codes = list(itertools.islice(self.waiting, self.MAX_BATCH))
                batch = {code: self.waiting.pop(code) for code in codes}
                try:
                    found = self.state.lookup_piles(codes)
                except Exception as exc:
                    log.exception("login lookup of %d piles failed", len(codes))
                    for results in batch.values():
                        for result in results:
                            result.set_exception(exc)
                    continue
                for code, results in batch.items():
                    for result in results:
                        result.set(found.get(code))


class Gateway(StreamServer):
    """The node. The Flask app is taken from ``app`` or, at start, from the current app context."""

    def __init__(self, listener, app=None, **kwargs):
        super().__init__(listener, self.handle, **kwargs)
        self.app = app
        self.settings: GatewaySettings | None = None
        self.sessions: dict[str, PileSession] = {}        # pile code -> logged-in session
        self.connections: set[PileSession] = set()
        self.metrics = Metrics()
        self.state: GatewayState | None = None
        self.redis = None
        self._workers: list[gevent.Greenlet] = []
        self._listener: CommandListener | None = None
        self._metrics_server = None
        self.logins: LoginBatcher | None = None
        self.stopping = False
        self._announced = False

    # --- lifecycle -------------------------------------------------------------------------------------

    def start(self):
        if self.app is None:
            self.app = current_app._get_current_object()
        config = self.app.config
        if not logging.getLogger().handlers:
            logging.basicConfig(level=config.get("GATEWAY_LOG_LEVEL", "INFO"),
                                format="%(asctime)s %(levelname)s [gateway] %(name)s: %(message)s")
        self.settings = settings = GatewaySettings.from_config(config, self.address[1])
        self.backlog = settings.backlog
        # a bounded pool: thousands of greenlets must queue for Redis, not open a connection each
        self.redis = redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(
            config["REDIS_URL"], max_connections=int(config["GATEWAY_REDIS_POOL"]), timeout=30))
        self.state = GatewayState(
            self.app, self.redis,
            StateSettings(node=settings.node, registry_ttl=settings.registry_ttl,
                          heartbeat_db_interval=float(config["GATEWAY_HEARTBEAT_DB_INTERVAL"]),
                          price_cache_ttl=float(config["GATEWAY_PRICE_CACHE_TTL"]),
                          db_concurrency=int(config["GATEWAY_DB_CONCURRENCY"])),
            self.metrics, load_hooks(config.get("CHARGING_HOOKS")))
        self.metrics.gauge("ykc_gateway_connections", lambda: len(self.connections))
        self.metrics.gauge("ykc_gateway_piles_online", lambda: len(self.sessions))
        self.metrics.health_of(self)                        # GET /healthz on the metrics port
        self.logins = LoginBatcher(self.state)
        recovered = self.state.recover()
        if recovered:
            log.info("gateway %s: %d piles of an earlier run marked offline", settings.node, recovered)
        super().start()
        self._announce()
        self._listener = CommandListener(self.redis, settings.node, self.execute)
        self._workers = [
            gevent.spawn(self._listener.run),
            gevent.spawn(self._every, settings.live_flush_interval, self.state.live.flush),
            gevent.spawn(self._every, settings.flush_interval, self.state.batch.flush),
            gevent.spawn(self._every, settings.node_refresh, self._announce),
            gevent.spawn(self._every, settings.sweep_interval, self.sweep),
            gevent.spawn(self._every, settings.deadline_interval, self.sweep_deadlines),
            gevent.spawn(self._every, settings.gc_freeze_interval, gc.freeze),
            gevent.spawn(self._every, settings.gc_full_interval, full_collection),
        ] + [gevent.spawn(self._every, interval, self._in_lane(fn))       # e.g. the realtime-sample flush
             for interval, fn in self.state.hooks.periodic_tasks(config)]
        self._metrics_server = serve_metrics(self.metrics, config["GATEWAY_METRICS_HOST"],
                                             int(config["GATEWAY_METRICS_PORT"]))
        log.info("gateway node %s listening on %s:%s", settings.node, *self.address[:2])

    def stop(self, timeout=None):
        if self._listener is not None:
            self._listener.stop()
        if not self.closed:
            self.close()                       # stop accepting
        self.stopping = True                   # sessions end quietly; their piles go offline in bulk
        ended = [(s.pile, s.conn_id) for s in self.sessions.values()]
        for session in list(self.connections):
            session.close("gateway stopping")
        if self.state is not None:
            self.state.piles_offline(ended, "gateway stopping")
        deadline = time.monotonic() + (5 if timeout is None else timeout)
        while self.connections and time.monotonic() < deadline:
            gevent.sleep(0.05)
        gevent.killall(self._workers + ([self.logins.worker] if self.logins else []), timeout=2)
        if self.state is not None:
            self.state.live.flush()
            self.state.batch.flush()
            self.state.registry.withdraw(self.settings.node)
        if self._metrics_server is not None:
            self._metrics_server.stop(timeout=1)

    def _announce(self):
        if self.stopping:
            return
        host, port = self.address[:2]
        alive = self.state.registry.announce(self.settings.node, self.settings.node_ttl, host=host,
                                             port=self.server_port or port, piles=len(self.sessions))
        if not alive and self._announced:
            log.warning("gateway %s: liveness key had expired (node stalled); claiming %d piles again",
                        self.settings.node, len(self.sessions))
            self.reclaim()
        self._announced = True

    def reclaim(self) -> None:
        """After a stall past the node TTL another node may have swept our piles: claim them again,
        mark them online, and ask each gun for a 0x13 so its status (and its log) is written again."""
        settings, state = self.settings, self.state
        for session in list(self.sessions.values()):
            info = session.pile
            if session.closed or info is None:
                continue
            state.registry.claim(info.code, settings.node, session.conn_id, settings.registry_ttl)
            state.live.hset(pile_key(info.code), {"online": 1, "node": settings.node, "offline_reason": ""})
            info.live_heartbeat = ""                           # the sweep may have rewritten the hash
            state.batch.pile(info.id, online=True)
            for gun in info.connectors.values():
                gun.status, gun.synced = "offline", False      # as the sweep left it: the next 0x13 logs
                try:
                    session.send(ReadRealtimeData(pile_code=info.code, gun=f"{gun.gun_no:02d}"))
                except OSError:
                    break
        state.live.flush()

    def sweep(self) -> dict[str, int]:
        """Piles of dead nodes -> offline (one sweeper per dead node, see gateway_nodes)."""
        if self.stopping:
            return {}
        return gateway_nodes.sweep_dead_nodes(self.redis, self.state.lane, exclude=self.settings.node)

    def sweep_deadlines(self) -> None:
        """Close sessions whose idle/login/heartbeat deadline passed and send due time syncs (see
        ``PileSession.due``); only sessions blocked on their socket (waiting for bytes, or sending to
        a pile that does not read) are checked, as the socket timeout of a session's own loop did."""
        now = time.monotonic()
        for session in list(self.connections):
            if (session.waiting or session.sending) and not session.closed:
                session.due(now)

    def _in_lane(self, fn):
        """``fn`` run in the database lane (app context, platform scope, the SQLite semaphore)."""
        def run():
            with self.state.lane():
                return fn()
        run.__name__ = getattr(fn, "__name__", "task")
        return run

    @staticmethod
    def _every(interval: float, fn):
        while True:
            gevent.sleep(interval)
            try:
                fn()
            except Exception:
                log.exception("gateway background task %s failed", getattr(fn, "__name__", fn))

    # --- connections -----------------------------------------------------------------------------------

    def handle(self, sock, address):
        session = PileSession(self, sock, address)
        self.connections.add(session)
        self.metrics.inc("ykc_gateway_connections_total")
        try:
            session.serve()
        finally:
            self.connections.discard(session)

    def adopt(self, session: PileSession) -> None:
        """A session logged in: it replaces an older session of the same pile on this node."""
        old = self.sessions.get(session.code)
        if old is not None and old is not session:
            old.replaced = True
            old.close("replaced by a new connection")
        self.sessions[session.code] = session

    def session_ended(self, session: PileSession) -> None:
        if session.pile is None:
            return
        if self.sessions.get(session.code) is session:
            del self.sessions[session.code]
        if not session.replaced and not self.stopping:
            self.state.pile_offline(session.pile, session.conn_id, session.close_reason or "closed")

    # --- commands ----------------------------------------------------------------------------------------

    def execute(self, req: Request) -> None:
        """A request from the bus (called by the command listener)."""
        session = self.sessions.get(req.pile)
        if session is None or session.closed:
            self.metrics.inc("ykc_gateway_commands_total", type=req.op, result="offline")
            send_reply(self.redis, req, error="offline")
            return
        if req.op == "send":
            gevent.spawn(session.command, req)
        elif req.op == "push_price":
            self.state.forget_price(req.args.get("station_id"))
            session.price_pending = True
            gevent.spawn(session.maybe_push_price)
        else:
            send_reply(self.redis, req, error="unknown_op", detail=req.op)


def full_collection() -> None:
    """A full cyclic collection, objects frozen since the last one included (one pause, rarely)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def make_server(host, port, app=None):
    """The gateway node listening on host:port (bind happens on start / serve_forever)."""
    return Gateway((host, port), app=app)
