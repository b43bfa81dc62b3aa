"""Which gateway node holds which pile, in Redis. Plain redis-py: usable from any process.

Keys (all under ``cpms:gw:``):

=====================================  ======  =====================================================
``node:{node}``                        string  node liveness (JSON: host, port, pid, started), TTL
``nodes``                              set     node ids ever announced (pruned by ``live_nodes``)
``node:{node}:cmd``                    list    command queue of the node (RPUSH by callers, BLPOP)
``node:{node}:piles``                  set     pile codes the node holds (crash recovery)
``pile:{code}:owner``                  string  ``node|connection`` holding the pile, TTL refreshed
``pile:{code}``                        hash    live pile state (online, node, login, heartbeat, ...)
``gun:{gun_code}``                     hash    live connector state (status, V, A, kW, SOC, ...)
``reply:{request_id}``                 list    the answer to one command (BLPOP by the caller)
=====================================  ======  =====================================================
"""

from __future__ import annotations

import json
import os
import socket
import time

PREFIX = "cpms:gw"
NODES_KEY = f"{PREFIX}:nodes"

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('del', KEYS[1])
  return 1
end
return 0
"""


def owner_key(pile_code: str) -> str:
    return f"{PREFIX}:pile:{pile_code}:owner"


def pile_key(pile_code: str) -> str:
    return f"{PREFIX}:pile:{pile_code}"


def gun_key(gun_code: str) -> str:
    return f"{PREFIX}:gun:{gun_code}"


def node_key(node: str) -> str:
    return f"{PREFIX}:node:{node}"


def node_queue_key(node: str) -> str:
    return f"{PREFIX}:node:{node}:cmd"


def node_piles_key(node: str) -> str:
    return f"{PREFIX}:node:{node}:piles"


def reply_key(request_id: str) -> str:
    return f"{PREFIX}:reply:{request_id}"


def default_node_id(port: int) -> str:
    return f"{socket.gethostname()}-{port}"


def _text(value) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


class Registry:
    """Pile -> node ownership and node liveness."""

    def __init__(self, redis):
        self.redis = redis
        self._release = redis.register_script(_RELEASE)

    # --- piles ---------------------------------------------------------------------------------------

    def claim(self, pile_code: str, node: str, conn: str, ttl: int, live: dict | None = None) -> None:
        """Record that ``node`` (connection ``conn``) holds the pile; optionally write its live hash."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(owner_key(pile_code), f"{node}|{conn}", ex=ttl)
        pipe.sadd(node_piles_key(node), pile_code)
        if live:
            pipe.hset(pile_key(pile_code), mapping=live)
        pipe.execute()

    def release(self, pile_code: str, node: str, conn: str) -> bool:
        """Forget the ownership if it is still ours; True when it was."""
        released = bool(self._release(keys=[owner_key(pile_code)], args=[f"{node}|{conn}"]))
        self.redis.srem(node_piles_key(node), pile_code)
        return released

    def release_many(self, node: str, items: list[tuple[str, str]]) -> list[bool]:
        """:meth:`release` for many (pile code, connection) pairs in one round trip."""
        if not items:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for code, conn in items:
            self._release(keys=[owner_key(code)], args=[f"{node}|{conn}"], client=pipe)
        pipe.srem(node_piles_key(node), *[code for code, _ in items])
        return [bool(r) for r in pipe.execute()[:-1]]

    def owner(self, pile_code: str) -> tuple[str, str] | None:
        """(node, connection) holding the pile, or None."""
        value = _text(self.redis.get(owner_key(pile_code)))
        if not value:
            return None
        node, _, conn = value.partition("|")
        return node, conn

    def owners(self, pile_codes: list[str]) -> dict[str, str | None]:
        """Node holding each pile (None when offline), one round trip."""
        if not pile_codes:
            return {}
        values = self.redis.mget([owner_key(c) for c in pile_codes])
        return {code: (_text(v).partition("|")[0] if v else None) for code, v in zip(pile_codes, values, strict=True)}

    # --- nodes ---------------------------------------------------------------------------------------

    def announce(self, node: str, ttl: int, **info) -> None:
        info.setdefault("pid", os.getpid())
        info.setdefault("at", time.time())
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(node_key(node), json.dumps(info), ex=ttl)
        pipe.sadd(NODES_KEY, node)
        pipe.execute()

    def withdraw(self, node: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(node_key(node), node_queue_key(node))
        pipe.srem(NODES_KEY, node)
        pipe.execute()

    def node_alive(self, node: str) -> bool:
        return bool(self.redis.exists(node_key(node)))

    def live_nodes(self) -> dict[str, dict]:
        """Announced nodes that are alive, with their info; dead ones are pruned from the set."""
        nodes = sorted(_text(n) for n in self.redis.smembers(NODES_KEY))
        if not nodes:
            return {}
        values = self.redis.mget([node_key(n) for n in nodes])
        out = {}
        for node, value in zip(nodes, values, strict=True):
            if value is None:
                self.redis.srem(NODES_KEY, node)
            else:
                out[node] = json.loads(value)
        return out

    def orphans(self, node: str) -> list[str]:
        """Piles a previous run of ``node`` held and nobody holds now (their owner key is gone or
        still names ``node``); their ownership is dropped and the set emptied."""
        codes = sorted(_text(c) for c in self.redis.smembers(node_piles_key(node)))
        orphaned = []
        for code in codes:
            owner = self.owner(code)
            if owner is None or owner[0] == node:
                self.redis.delete(owner_key(code))
                orphaned.append(code)
        self.redis.delete(node_piles_key(node))
        return orphaned
