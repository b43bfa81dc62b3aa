"""Pile ownership in Redis: claims, compare-and-delete releases, node liveness, crash orphans."""

import uuid

import pytest

from app.extensions import get_redis
from app.gateway.registry import Registry, node_piles_key


@pytest.fixture
def registry(app):
    with app.app_context():
        yield Registry(get_redis())


def test_claim_release_only_by_the_owner(registry):
    node, code = f"n-{uuid.uuid4().hex[:6]}", "55000000000001"
    registry.claim(code, node, "c1", 30, live={"online": 1})
    assert registry.owner(code) == (node, "c1")
    registry.claim(code, node, "c2", 30)                   # the pile reconnected: a new connection owns it
    assert not registry.release(code, node, "c1")          # the old connection must not take it offline
    assert registry.owner(code) == (node, "c2")
    assert registry.owners([code, "55000000000099"]) == {code: node, "55000000000099": None}
    assert registry.release(code, node, "c2") and registry.owner(code) is None


def test_release_many(registry):
    node = f"n-{uuid.uuid4().hex[:6]}"
    codes = [f"5500000000010{i}" for i in range(3)]
    for code in codes:
        registry.claim(code, node, "c", 30)
    registry.claim(codes[1], "other-node", "x", 30)
    assert registry.release_many(node, [(c, "c") for c in codes]) == [True, False, True]
    assert registry.owner(codes[1]) == ("other-node", "x")
    assert not registry.redis.smembers(node_piles_key(node))
    registry.release(codes[1], "other-node", "x")


def test_nodes_and_orphans(registry):
    node = f"n-{uuid.uuid4().hex[:6]}"
    registry.announce(node, 10, host="127.0.0.1", port=1)
    assert registry.node_alive(node) and registry.live_nodes()[node]["port"] == 1
    registry.claim("55000000000201", node, "c", 30)        # held when the node crashed
    registry.claim("55000000000202", node, "c", 30)
    registry.claim("55000000000202", "elsewhere", "c", 30)  # ... this one reconnected elsewhere since
    assert registry.orphans(node) == ["55000000000201"]
    assert registry.owner("55000000000201") is None and registry.owner("55000000000202")[0] == "elsewhere"
    registry.withdraw(node)
    assert not registry.node_alive(node) and node not in registry.live_nodes()
    registry.release("55000000000202", "elsewhere", "c")
