"""Issue 8 §3: a dead gateway node leaves no ghosts.

Two real gateway processes (``python run.py gateway``, nodes 1 and 2) behind a small TCP load
balancer (this file: it forwards each pile connection to the first node that accepts it), the
simulator's piles (a separate process) connected through it to node 1 with charging sessions in
flight, a real RQ worker (``python run.py worker``) for stops and settlement. Node 1 is SIGKILLed:

- within two heartbeat intervals (compressed to 2 s) its piles and guns are offline in the
  database, with a status-log row per gun naming the dead node, and a start is refused as
  "offline" (not "gun not free");
- a stop issued while the pile is offline is recorded (order ``stopping``);
- the piles reconnect through the balancer to node 2 and resume (online, live figures move on);
  the stop is delivered there, the pile's bill closes the order, and both orders settle exactly
  once (one debit each, wallet == ledger).

A dead node's piles are also swept by the cron job when no gateway node is left (second test).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.gateway.registry import NODES_KEY, Registry
from app.models import ChargeOrder, Connector, ConnectorStatusLog, Member, OrderEvent, Pile, PileBill, WalletEntry
from app.models.base import utcnow
from app.services import charging
from app.services.live_state import live_pile
from app.services.wallet import ledger_balance
from tests.integration.gateway.conftest import (
    ROOT,
    GatewayProcess,
    WorkerProcess,
    fetch,
    free_port,
    process_env,
    wait_until,
)

pytestmark = pytest.mark.usefixtures("money_invariants")  # checked after every fault

HB = 2.0                                     # pile heartbeat interval of both nodes (seconds)
NODE_ENV = {"CHARGING_HOOKS": "app.services.charging:OrderHooks", "GATEWAY_HEARTBEAT_INTERVAL": HB,
            "GATEWAY_COMMAND_TIMEOUT": 5, "CHARGING_STOP_RESEND_SECONDS": 1}


class Balancer:
    """A TCP load balancer for the piles: each connection goes to the first backend that accepts it;
    when either side closes, both do. ``pause()``: new connections are closed at once (the
    balancer has not noticed the dead node yet); ``resume()`` lets them through again."""

    def __init__(self, backends: list[int]):
        self.backends = list(backends)
        self.port = free_port()
        self.accepting = threading.Event()
        self.accepting.set()
        self.server = socket.create_server(("127.0.0.1", self.port))
        self.server.settimeout(0.2)
        self.running = True
        self.links: set[socket.socket] = set()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def pause(self):
        self.accepting.clear()

    def resume(self):
        self.accepting.set()

    def close(self):
        self.running = False
        self.thread.join(5)
        self.server.close()
        for sock in list(self.links):
            _close(sock)

    def _serve(self):
        while self.running:
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = self._connect() if self.accepting.is_set() else None
            if upstream is None:
                _close(client)
                continue
            self.links |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _connect(self):
        for port in self.backends:
            try:
                return socket.create_connection(("127.0.0.1", port), timeout=2)
            except OSError:
                continue
        return None

    def _pump(self, src, dst):
        src.settimeout(None)
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                _close(sock)
                self.links.discard(sock)


def _close(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


@pytest.fixture(scope="module")
def worker(app):
    """A real ``python run.py worker`` (stops sent again, settlement)."""
    proc = WorkerProcess(app, f"death-{uuid.uuid4().hex[:6]}")
    yield proc.proc
    proc.stop()


def order_row(app, order_id):
    with app.app_context():
        order = db.session.get(ChargeOrder, order_id)
        db.session.expunge(order)
        return order


def rich_member(app, operator_id):
    with app.app_context():
        return db.session.scalar(select(Member.id).where(Member.operator_id == operator_id, Member.status == "active",
                                                         Member.balance >= 50).order_by(Member.id))


def story(app, order_id):
    """The order's status and events, for failure messages."""
    order = order_row(app, order_id)
    events = fetch(app, select(OrderEvent.event, OrderEvent.to_status, OrderEvent.remark)
                   .where(OrderEvent.order_id == order_id).order_by(OrderEvent.id))
    return f"order {order_id}: {order.status} {order.abnormal_reason or ''} events {[tuple(e) for e in events]}"


def pile_state(app, code):
    """(pile online, {gun_no: status}) from the database."""
    rows = fetch(app, select(Pile.online, Connector.gun_no, Connector.status)
                 .join(Connector, Connector.pile_id == Pile.id).where(Pile.code == code))
    return rows[0][0], {r.gun_no: r.status for r in rows}


def test_a_killed_node_leaves_no_ghosts_and_a_stop_reaches_the_pile_on_another_node(app, redis, gw_station, piles,
                                                                                     worker):
    codes = [piles(), piles()]
    registry = Registry(redis)
    node1 = GatewayProcess(app, "gw-death-1", **NODE_ENV).wait_ready(redis)
    node2 = GatewayProcess(app, "gw-death-2", **NODE_ENV).wait_ready(redis)
    balancer = Balancer([node1.port, node2.port])
    sim = subprocess.Popen(
        [sys.executable, "-m", "app.gateway.simulator", "--port", str(balancer.port), "--codes", ",".join(codes),
         "--guns", "2", "--heartbeat", "1", "--realtime-charging", "0.5", "--realtime-idle", "3", "--bill-retry", "2",
         "--progress", "0"], cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # --- sessions in flight on node 1 ---------------------------------------------------------------
        wait_until(lambda: all(registry.owner(c) and registry.owner(c)[0] == "gw-death-1" for c in codes),
                   timeout=20, message="both piles on node 1")
        wait_until(lambda: all(pile_state(app, c) == (True, {1: "idle", 2: "idle"}) for c in codes),
                   timeout=15, message="piles online, guns idle")
        with app.app_context():
            guns = {c: db.session.scalar(select(Connector.id).where(Connector.code == f"{c}01")) for c in codes}
            operator_id = db.session.scalar(select(Connector.operator_id).where(Connector.id == guns[codes[0]]))
        member_id = rich_member(app, operator_id)
        orders = {}
        for code in codes:
            with app.app_context():
                orders[code] = charging.start_charge(guns[code], origin="staff", member_id=member_id, user_id=1).id
        stopped, resumed = orders[codes[0]], orders[codes[1]]
        for order_id in orders.values():
            wait_until(lambda o=order_id: (order_row(app, o).live_energy or 0) > 0, timeout=20, message="charging")

        # --- node 1 dies ----------------------------------------------------------------------------------
        balancer.pause()                                   # the balancer has not noticed yet: no reconnect
        killed_at = utcnow()
        t0 = time.monotonic()
        node1.proc.send_signal(signal.SIGKILL)
        node1.proc.wait(10)
        wait_until(lambda: all(pile_state(app, c) == (False, {1: "offline", 2: "offline"}) for c in codes),
                   timeout=2 * HB, interval=0.02, message="the dead node's piles offline within two heartbeats")
        elapsed = time.monotonic() - t0
        assert elapsed <= 2 * HB, elapsed
        logs = fetch(app, select(ConnectorStatusLog).join(Pile, ConnectorStatusLog.pile_id == Pile.id)
                     .where(Pile.code.in_(codes), ConnectorStatusLog.at >= killed_at - timedelta(seconds=1),
                            ConnectorStatusLog.status == "offline"))
        logged = {(r[0].connector_id, r[0].previous_status) for r in logs}
        assert len(logs) == 4 and all("gw-death-1" in r[0].reason for r in logs), [r[0].reason for r in logs]
        assert (guns[codes[0]], "charging") in logged and (guns[codes[1]], "charging") in logged
        for code in codes:
            assert live_pile(redis, code)["online"] is False and registry.owner(code) is None

        with app.app_context():                             # no ghost: a start is refused as offline
            spare = db.session.scalar(select(Connector.id).where(Connector.code == f"{codes[0]}02"))
            with pytest.raises(charging.ChargingError, match="offline"):
                charging.start_charge(spare, origin="staff", member_id=member_id, user_id=1)
            with pytest.raises(charging.ChargingError, match="offline"):   # the stop is recorded
                charging.stop_charge(stopped, by="staff", user_id=1)
        assert order_row(app, stopped).status == "stopping"
        assert fetch(app, select(func.count()).select_from(OrderEvent).where(
            OrderEvent.order_id == stopped, OrderEvent.event == "stop_requested"))[0][0] == 1

        # --- the piles reconnect through node 2 and resume --------------------------------------------------
        energy_before = order_row(app, resumed).live_energy
        balancer.resume()
        wait_until(lambda: all(registry.owner(c) and registry.owner(c)[0] == "gw-death-2" for c in codes),
                   timeout=20, message="both piles on node 2")
        wait_until(lambda: pile_state(app, codes[1])[0] and pile_state(app, codes[1])[1][1] == "charging",
                   timeout=10, message="pile online again, its gun charging")
        wait_until(lambda: order_row(app, resumed).live_energy > energy_before, timeout=20,
                   message="the session goes on through node 2")
        try:
            wait_until(lambda: order_row(app, stopped).status == "settled", timeout=60,
                       message="the stop delivered on node 2: bill, settled")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{story(app, stopped)}\nnode 2: {node2.log()}") from None
        assert order_row(app, resumed).status == "charging"
        with app.app_context():
            charging.stop_charge(resumed, by="staff", user_id=1)
        wait_until(lambda: order_row(app, resumed).status == "settled", timeout=60, message="second order settled")
        online, statuses = pile_state(app, codes[0])
        assert online and statuses[2] == "idle" and statuses[1] in ("idle", "occupied"), statuses   # stopped
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(20)
        balancer.close()
        node1.stop()
        node2.stop()

    for order_id in orders.values():
        order = order_row(app, order_id)
        assert order.total_amount > 0 and order.pay_status == "paid" and order.paid_amount == order.total_amount
        debits = fetch(app, select(WalletEntry).where(WalletEntry.order_id == order_id))
        assert len(debits) == 1 and debits[0][0].amount == -order.total_amount
        assert fetch(app, select(func.count()).select_from(PileBill).where(PileBill.serial == order.serial))[0][0] == 1
        assert fetch(app, select(func.count()).select_from(OrderEvent).where(
            OrderEvent.order_id == order_id, OrderEvent.event == "settled"))[0][0] == 1
    stop_events = fetch(app, select(OrderEvent.remark).where(OrderEvent.order_id == stopped,
                                                             OrderEvent.event == "stop_requested"))
    assert any("stop sent again" in (r[0] or "") for r in stop_events), stop_events
    with app.app_context():
        assert db.session.get(Member, member_id).balance == ledger_balance(member_id)
    assert b"gw-death-1" not in redis.smembers(NODES_KEY)       # swept: the dead node is forgotten


def test_a_stalled_node_is_swept_then_takes_its_piles_back(app, redis, gw_station, piles):
    """A node frozen past its liveness TTL (SIGSTOP) is taken for dead: the other node marks its pile
    offline. Thawed (SIGCONT), it finds its key gone, claims the pile again and asks the guns for
    their state: online again, with the status log telling the story."""
    code = piles()
    registry = Registry(redis)
    slow = GatewayProcess(app, "gw-stall-1", GATEWAY_HEARTBEAT_INTERVAL=HB).wait_ready(redis)
    other = GatewayProcess(app, "gw-stall-2", GATEWAY_HEARTBEAT_INTERVAL=HB).wait_ready(redis)
    sim = subprocess.Popen(
        [sys.executable, "-m", "app.gateway.simulator", "--port", str(slow.port), "--codes", code, "--guns", "2",
         "--heartbeat", "2", "--realtime-idle", "60", "--progress", "0"],
        cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: registry.owner(code) and registry.owner(code)[0] == "gw-stall-1", timeout=20,
                   message="the pile on the node")
        wait_until(lambda: pile_state(app, code) == (True, {1: "idle", 2: "idle"}), timeout=15, message="idle")
        before = fetch(app, select(func.max(ConnectorStatusLog.id)))[0][0] or 0
        slow.proc.send_signal(signal.SIGSTOP)
        try:
            wait_until(lambda: pile_state(app, code) == (False, {1: "offline", 2: "offline"}), timeout=2 * HB,
                       interval=0.02, message="the stalled node's pile offline")
        finally:
            slow.proc.send_signal(signal.SIGCONT)
        wait_until(lambda: registry.owner(code) and registry.owner(code)[0] == "gw-stall-1", timeout=10,
                   message="the node claims its pile again")
        wait_until(lambda: pile_state(app, code) == (True, {1: "idle", 2: "idle"}), timeout=10,
                   message="online again, guns idle")
        assert live_pile(redis, code)["online"] is True
        logs = fetch(app, select(ConnectorStatusLog.status, ConnectorStatusLog.previous_status)
                     .join(Pile, ConnectorStatusLog.pile_id == Pile.id)
                     .where(Pile.code == code, ConnectorStatusLog.id > before)
                     .order_by(ConnectorStatusLog.id))
        assert sorted(tuple(r) for r in logs) == [("idle", "offline")] * 2 + [("offline", "idle")] * 2
        assert sim.poll() is None
    finally:
        slow.proc.send_signal(signal.SIGCONT)
        sim.send_signal(signal.SIGTERM)
        sim.wait(20)
        slow.stop()
        other.stop()


def test_the_cron_backstop_sweeps_when_no_node_is_left(app, gw_station, piles, tmp_path):
    """No gateway node alive to sweep: the cron job (``sweep_gateway_nodes``, run by a real worker)
    does it. Its own Redis, so the session's other gateway nodes cannot sweep first."""
    import redis as redis_lib
    from rq import Queue

    from app.extensions import start_embedded_redis

    url = start_embedded_redis(str(tmp_path))
    private = redis_lib.Redis.from_url(url)
    registry = Registry(private)
    code = piles()
    registry.announce("gw-ghost", 0.3, host="127.0.0.1", port=1)       # as the node left it when it died
    registry.claim(code, "gw-ghost", "4242.1", 90)
    with app.app_context():
        pile = db.session.scalar(select(Pile).where(Pile.code == code))
        pile.online = True
        for gun in pile.connectors:
            gun.status = "charging"
        db.session.commit()
    wait_until(lambda: not registry.node_alive("gw-ghost"), timeout=5, message="the node key expired")
    job = Queue("default", connection=private).enqueue("app.tasks.maintenance.sweep_gateway_nodes")
    proc = subprocess.run([sys.executable, "-c", BURST], cwd=ROOT, env=process_env(app, REDIS_URL=url),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    job.refresh()
    assert job.get_status() == "finished", proc.stderr[-3000:]
    assert job.return_value() == {"gw-ghost": 1}
    assert pile_state(app, code) == (False, {1: "offline", 2: "offline"})
    logs = fetch(app, select(ConnectorStatusLog).join(Pile, ConnectorStatusLog.pile_id == Pile.id)
                 .where(Pile.code == code, ConnectorStatusLog.status == "offline"))
    assert len(logs) == 2 and all(r[0].previous_status == "charging" and "gw-ghost" in r[0].reason for r in logs)
    assert registry.owner(code) is None and b"gw-ghost" not in private.smembers(NODES_KEY)


BURST = (
    "from app.extensions import get_redis\n"
    "from app.tasks.worker import get_app, make_worker\n"
    "app = get_app()\n"
    "with app.app_context():\n"
    "    conn = get_redis()\n"
    "make_worker(['default'], conn).work(burst=True)\n"
)


def test_a_pile_that_reconnected_meanwhile_is_not_marked_offline(app, redis, gw_station, piles):
    """The sweep re-reads the owners before it commits: a pile some node claimed in the meantime is
    left online (the transaction is redone without it); the others go offline."""
    from app.services.gateway_nodes import mark_piles_offline

    reconnected, gone = piles(), piles()
    registry = Registry(redis)
    with app.app_context():
        for code in (reconnected, gone):
            pile = db.session.scalar(select(Pile).where(Pile.code == code))
            pile.online = True
            for gun in pile.connectors:
                gun.status = "idle"
        db.session.commit()
    registry.claim(reconnected, "gw-elsewhere", "7.1", 30)
    try:
        with app.app_context():
            assert mark_piles_offline(redis, [reconnected, gone], "gateway gw-x gone") == 1
    finally:
        registry.release(reconnected, "gw-elsewhere", "7.1")
    assert pile_state(app, reconnected) == (True, {1: "idle", 2: "idle"})
    assert pile_state(app, gone) == (False, {1: "offline", 2: "offline"})
    assert not fetch(app, select(ConnectorStatusLog.id).join(Pile, ConnectorStatusLog.pile_id == Pile.id)
                     .where(Pile.code == reconnected, ConnectorStatusLog.reason.like("%gw-x%")))
