"""Which gateway node holds which pile, in Redis. Plain redis-py: usable from any process.

Keys (all under ``cpms:gw:``):

=====================================  ======  =====================================================
``node:{node}``                        string  node liveness (JSON: host, port, pid, started), TTL
``nodes``                              set     node ids ever announced (a dead node leaves it once swept)
``node:{node}:cmd``                    list    command queue of the node (RPUSH by callers, BLPOP)
``node:{node}:piles``                  set     pile codes the node holds (crash recovery)
``pile:{code}:owner``                  string  ``node|connection`` holding the pile, TTL refreshed
``pile:{code}``                        hash    live pile state (online, node, login, heartbeat, ...)
``gun:{gun_code}``                     hash    live connector state (status, V, A, kW, SOC, ...)
``reply:{request_id}``                 list    the answer to one command (BLPOP by the caller)
``node:{node}:sweep``                  string  lock of the node sweeping a dead node's piles, TTL
=====================================  ======  =====================================================

A node that dies without withdrawing (SIGKILL, host lost) leaves its ``node:{node}`` key to expire;
the other nodes (and a cron job) then sweep it: :meth:`Registry.dead_nodes` lists it,
:meth:`Registry.take_orphans` atomically drops the ownership of the piles it still held, and
:mod:`app.services.gateway_nodes` marks them offline in the database.
"""

from __future__ import annotations

import json
import os
import socket
import time

PREFIX = "cpms:gw"
NODES_KEY = f"{PREFIX}:nodes"

# Dead node sweep, atomic: nothing when the node is alive (again); else every pile of its set that
# nobody holds or that it still holds loses its owner key and is returned; piles that reconnected
# elsewhere leave the set.  KEYS: node key, node piles set; ARGV: owner key prefix, "node|".
_TAKE_ORPHANS = """
if redis.call('exists', KEYS[1]) == 1 then
  return false
end
local taken = {}
for _, code in ipairs(redis.call('smembers', KEYS[2])) do
  local key = ARGV[1] .. code .. ':owner'
  local owner = redis.call('get', key)
  if not owner then
    table.insert(taken, code)
  elseif string.sub(owner, 1, string.len(ARGV[2])) == ARGV[2] then
    redis.call('del', key)
    table.insert(taken, code)
  else
    redis.call('srem', KEYS[2], code)
  end
end
return taken
"""

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


def node_sweep_key(node: str) -> str:
    return f"{PREFIX}:node:{node}:sweep"


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
        self._take_orphans = redis.register_script(_TAKE_ORPHANS)

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

    def announce(self, node: str, ttl: float, **info) -> bool:
        """Write the node's liveness key (``ttl`` seconds, fractions allowed). Returns whether the key
        was still there: False on a first start, or when the node was late and may have been swept."""
        info.setdefault("pid", os.getpid())
        info.setdefault("at", time.time())
        pipe = self.redis.pipeline(transaction=False)
        pipe.exists(node_key(node))
        pipe.set(node_key(node), json.dumps(info), px=max(1, int(ttl * 1000)))
        pipe.sadd(NODES_KEY, node)
        return bool(pipe.execute()[0])

    def withdraw(self, node: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(node_key(node), node_queue_key(node))
        pipe.srem(NODES_KEY, node)
        pipe.execute()

    def node_alive(self, node: str) -> bool:
        return bool(self.redis.exists(node_key(node)))

    def live_nodes(self) -> dict[str, dict]:
        """Announced nodes that are alive, with their info. A dead node is pruned from the set only
        once it holds no pile any more (see :meth:`dead_nodes`)."""
        nodes = sorted(_text(n) for n in self.redis.smembers(NODES_KEY))
        if not nodes:
            return {}
        values = self.redis.mget([node_key(n) for n in nodes])
        out = {}
        for node, value in zip(nodes, values, strict=True):
            if value is None:
                if not self.redis.exists(node_piles_key(node)):
                    self.redis.srem(NODES_KEY, node)
            else:
                out[node] = json.loads(value)
        return out

    def dead_nodes(self) -> list[str]:
        """Announced nodes whose liveness key expired (they died without withdrawing)."""
        nodes = sorted(_text(n) for n in self.redis.smembers(NODES_KEY))
        if not nodes:
            return []
        values = self.redis.mget([node_key(n) for n in nodes])
        return [node for node, value in zip(nodes, values, strict=True) if value is None]

    def lock_sweep(self, node: str, ttl: float) -> str | None:
        """One sweeper per dead node: a token when the lock is ours, else None."""
        token = f"{socket.gethostname()}:{os.getpid()}:{time.monotonic_ns()}"
        if self.redis.set(node_sweep_key(node), token, nx=True, px=max(1, int(ttl * 1000))):
            return token
        return None

    def unlock_sweep(self, node: str, token: str) -> None:
        self._release(keys=[node_sweep_key(node)], args=[token])

    def take_orphans(self, node: str) -> list[str] | None:
        """The piles a dead ``node`` still held, their ownership dropped (atomically, see
        ``_TAKE_ORPHANS``); None when the node is alive. They stay in the node's set until
        :meth:`sweep_done` (a sweeper dying midway leaves them to the next one)."""
        taken = self._take_orphans(keys=[node_key(node), node_piles_key(node)], args=[f"{PREFIX}:pile:", f"{node}|"])
        if taken is None:
            return None
        return sorted(_text(c) for c in taken)

    def sweep_done(self, node: str, codes: list[str]) -> None:
        """Forget swept piles; a dead node left with none is removed with its command queue."""
        if codes:
            self.redis.srem(node_piles_key(node), *codes)
        if not self.redis.exists(node_piles_key(node)) and not self.redis.exists(node_key(node)):
            pipe = self.redis.pipeline(transaction=False)
            pipe.delete(node_queue_key(node))
            pipe.srem(NODES_KEY, node)
            pipe.execute()

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
