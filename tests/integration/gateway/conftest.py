"""Gateway integration fixtures: real gateway processes (``python run.py gateway``) on the test
database and Redis, a station with its own price template and piles (removed afterwards)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import delete, select

from app.extensions import db
from app.gateway.registry import Registry
from app.models import (
    Alarm,
    Connector,
    ConnectorStatusLog,
    Pile,
    PileBill,
    PricePeriod,
    PriceTemplate,
    Station,
)

ROOT = Path(__file__).resolve().parents[3]
PILE_PREFIX = "7700000000"          # test pile codes: 77000000000001 ...
PILE_COUNT = 64

TOU = [(0, 480, "valley", "0.31000", "0.50000"), (480, 600, "flat", "0.62000", "0.60000"),
       (600, 840, "peak", "1.05000", "0.70000"), (840, 1020, "flat", "0.62000", "0.60000"),
       (1020, 1140, "sharp", "1.25000", "0.80000"), (1140, 1260, "peak", "1.05000", "0.70000"),
       (1260, 1440, "flat", "0.62000", "0.60000")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.05, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not met within {timeout} s")
        time.sleep(interval)


def fetch(app, statement):
    """Rows of ``statement`` in a short session of its own (SQLite: no lock kept)."""
    with app.app_context():
        return db.session.execute(statement).all()


def process_env(app, **extra) -> dict:
    """Environment for a real ``run.py`` child on the test database and Redis."""
    env = dict(os.environ, CPMS_CONFIG="test", DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
               REDIS_URL=app.config["REDIS_URL"], INSTANCE_DIR=app.config["INSTANCE_DIR"])
    env.update({k: str(v) for k, v in extra.items()})
    return env


class WorkerProcess:
    """A real ``python run.py worker`` (settlement, stops) with its output in a log file."""

    def __init__(self, app, name: str, **overrides):
        self.log_path = Path(app.config["INSTANCE_DIR"]) / f"worker-{name}.log"
        with open(self.log_path, "w") as out:
            self.proc = subprocess.Popen([sys.executable, "run.py", "worker"], cwd=ROOT,
                                         env=process_env(app, **overrides), stdout=out, stderr=subprocess.STDOUT)

    def log(self, tail: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(15)


class GatewayProcess:
    """``python run.py gateway`` with test settings; its output goes to a log file."""

    def __init__(self, app, node: str, **overrides):
        self.node = node
        self.port = free_port()
        self.metrics_port = free_port()
        self.log_path = Path(app.config["INSTANCE_DIR"]) / f"gateway-{node}.log"
        env = dict(os.environ)
        env.update({
            "CPMS_CONFIG": "test", "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
            "REDIS_URL": app.config["REDIS_URL"], "INSTANCE_DIR": app.config["INSTANCE_DIR"],
            "GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": str(self.port), "GATEWAY_NODE_ID": node,
            "GATEWAY_METRICS_PORT": str(self.metrics_port), "GATEWAY_FLUSH_INTERVAL": "0.1",
            "GATEWAY_LIVE_FLUSH_INTERVAL": "0.05", "GATEWAY_HEARTBEAT_DB_INTERVAL": "0",
            "GATEWAY_PRICE_CACHE_TTL": "0",
        })
        env.update({k: str(v) for k, v in overrides.items()})
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "run.py", "gateway"], cwd=ROOT, env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, redis, timeout: float = 30.0) -> GatewayProcess:
        registry = Registry(redis)

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            except OSError:
                return False

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway {self.node} exited: {self.log()}")
            # this process listens (a crashed namesake's liveness key may still be there) and is registered
            return listening() and registry.node_alive(self.node)

        wait_until(ready, timeout, 0.1, f"gateway {self.node} ready")
        return self

    def log(self) -> str:
        return self.log_path.read_text()[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


def referenced_elsewhere(table, ids, cleaned) -> bool:
    """True when a row of a table other than ``cleaned`` points at one of ``ids`` of ``table``."""
    for other in db.metadata.sorted_tables:
        if other.name in cleaned:
            continue
        for fk in other.foreign_keys:
            if fk.column.table is table and ids:
                if db.session.execute(select(fk.parent).where(fk.parent.in_(ids)).limit(1)).first():
                    return True
    return False


def remove_test_station(station_id, template_id):
    """Delete what the gateway tests left on their station. Rows other tests hung on it (orders
    on a test pile, say) keep the station, its piles and connectors in place."""
    pile_ids = list(db.session.scalars(select(Pile.id).where(Pile.station_id == station_id)))
    connector_ids = list(db.session.scalars(select(Connector.id).where(Connector.station_id == station_id)))
    for model in (Alarm, ConnectorStatusLog):
        db.session.execute(delete(model).where(model.pile_id.in_(pile_ids)))
    db.session.execute(delete(PileBill).where(PileBill.pile_code.like(f"{PILE_PREFIX}%"),
                                              PileBill.order_id.is_(None)))
    db.session.commit()
    cleaned = {t.__tablename__ for t in (Alarm, ConnectorStatusLog, Connector, Pile, Station, PricePeriod)}
    if any(referenced_elsewhere(model.__table__, row_ids, cleaned) for model, row_ids in (
            (Connector, connector_ids), (Pile, pile_ids), (Station, [station_id]),
            (PriceTemplate, [template_id]))):
        return
    db.session.execute(delete(Connector).where(Connector.id.in_(connector_ids)))
    db.session.execute(delete(Pile).where(Pile.id.in_(pile_ids)))
    db.session.execute(delete(Station).where(Station.id == station_id))
    db.session.execute(delete(PricePeriod).where(PricePeriod.template_id == template_id))
    db.session.execute(delete(PriceTemplate).where(PriceTemplate.id == template_id))
    db.session.commit()
    from app.services import occupancy

    occupancy.forget_connectors(connector_ids)   # bulk deletes pass by the ORM listener that does this
