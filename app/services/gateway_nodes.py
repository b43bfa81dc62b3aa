"""A dead gateway node leaves no ghosts.

A node that dies without shutting down (SIGKILL, lost host) cannot mark its piles offline; its
liveness key (``GATEWAY_NODE_TTL``) expires instead. :func:`sweep_dead_nodes` — run by every live
gateway node every ``GATEWAY_SWEEP_INTERVAL`` and by a cron job as a backstop — takes the piles
such a node still held (:meth:`app.gateway.registry.Registry.take_orphans`, atomic, one sweeper per
node) and marks them and their guns offline in the database, with a ConnectorStatusLog row per gun
that changes, and in the live Redis state.

A pile that reconnects through another node while the sweep runs must not end up offline: the
sweep writes inside one transaction, then re-reads the owners of its piles before committing; a
pile claimed by then is left out (the transaction is redone without it). A claim after that check
is followed by the new node's own database write, which waits for the sweep's row locks (the
write lock on SQLite) and lands after it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, contextmanager

from sqlalchemy import insert, select, update

from app.extensions import db
from app.gateway.registry import Registry, gun_key, pile_key
from app.models import Connector, ConnectorStatusLog, Pile
from app.models.base import utcnow

log = logging.getLogger(__name__)

CHUNK = 500
SWEEP_LOCK_TTL = 120          # seconds: a sweeper that dies midway frees the node for the next one
ATTEMPTS = 5


@contextmanager
def app_session():
    """The default database scope: the app context's session (RQ jobs, CLI)."""
    try:
        yield db.session
    except BaseException:
        db.session.rollback()
        raise


def offline_reason(node: str) -> str:
    return f"gateway {node} gone"


def sweep_dead_nodes(redis, scope: Callable[[], AbstractContextManager] | None = None,
                     exclude: str | None = None) -> dict[str, int]:
    """Mark the piles of every dead node offline. ``scope`` yields a database session (the gateway
    passes its DbLane); ``exclude``: the calling node. Returns {node: piles marked offline}."""
    registry = Registry(redis)
    swept = {}
    for node in registry.dead_nodes():
        if node == exclude:
            continue
        token = registry.lock_sweep(node, SWEEP_LOCK_TTL)
        if token is None:
            continue                                  # another node sweeps it right now
        try:
            codes = registry.take_orphans(node)
            if codes is None:
                continue                              # it came back
            count = 0
            for start in range(0, len(codes), CHUNK):
                count += mark_piles_offline(redis, codes[start:start + CHUNK], offline_reason(node),
                                            scope or app_session)
            registry.sweep_done(node, codes)
            swept[node] = count
            if codes:
                log.warning("gateway node %s is gone: %d of its %d piles marked offline", node, count, len(codes))
        finally:
            registry.unlock_sweep(node, token)
    return swept


def mark_piles_offline(redis, codes: list[str], reason: str, scope=app_session) -> int:
    """Piles (by code) nobody holds -> offline with their guns, one transaction; piles claimed by a
    node meanwhile are left alone. Returns how many piles were written."""
    registry = Registry(redis)
    codes = list(codes)
    for _ in range(ATTEMPTS):
        if not codes:
            return 0
        with scope() as session:
            written = _write_offline(session, codes, reason)
            owned = {code for code, node in registry.owners(codes).items() if node is not None}
            if owned:                                  # reconnected meanwhile: redo without them
                session.rollback()
                codes = [c for c in codes if c not in owned]
                continue
            session.commit()
        _live_offline(redis, registry, written, reason)
        return len(written)
    log.error("marking %d piles offline gave up: they keep reconnecting", len(codes))
    return 0


def _write_offline(session, codes: list[str], reason: str) -> dict[str, list[str]]:
    """UPDATE piles and guns, INSERT the status log rows; returns {pile code: [gun codes]}."""
    now = utcnow()
    piles = session.execute(select(Pile.id, Pile.code, Pile.operator_id).where(Pile.code.in_(codes))
                            .with_for_update()).all()
    if not piles:
        return {}
    by_id = {p.id: p for p in piles}
    guns = session.execute(select(Connector.id, Connector.pile_id, Connector.code, Connector.status)
                           .where(Connector.pile_id.in_(list(by_id))).with_for_update()).all()
    session.execute(update(Pile).where(Pile.id.in_(list(by_id)), Pile.online.is_(True))
                    .values(online=False, last_offline_at=now).execution_options(synchronize_session=False))
    changed = [g for g in guns if g.status != "offline"]
    if changed:
        session.execute(update(Connector).where(Connector.id.in_([g.id for g in changed]))
                        .values(status="offline", status_changed_at=now)
                        .execution_options(synchronize_session=False))
        session.execute(insert(ConnectorStatusLog), [
            {"operator_id": by_id[g.pile_id].operator_id, "connector_id": g.id, "pile_id": g.pile_id, "at": now,
             "status": "offline", "previous_status": g.status, "reason": f"offline: {reason}"[:64]}
            for g in changed])
    written = {p.code: [] for p in piles}
    for g in guns:
        written[by_id[g.pile_id].code].append(g.code)
    return written


def _live_offline(redis, registry: Registry, written: dict[str, list[str]], reason: str) -> None:
    """The live hashes follow (skipping a pile that reconnected since the commit)."""
    if not written:
        return
    now = utcnow().isoformat(timespec="seconds")
    owners = registry.owners(list(written))
    pipe = redis.pipeline(transaction=False)
    for code, gun_codes in written.items():
        if owners.get(code):
            continue
        pipe.hset(pile_key(code), mapping={"online": 0, "offline_at": now, "offline_reason": reason})
        for gun in gun_codes:
            pipe.hset(gun_key(gun), mapping={"status": "offline", "updated_at": now})
    pipe.execute()
