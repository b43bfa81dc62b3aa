"""The command bus over Redis, with a fake gateway node in a thread (no gevent, no sockets)."""

import threading
import time
import uuid

import pytest

from app.extensions import get_redis
from app.gateway import commands
from app.gateway.commands import CommandBus, CommandError, CommandListener, CommandTimeout, PileOffline, Request
from app.gateway.registry import Registry, node_queue_key
from app.gateway.ykc import RawFrame, RemoteReboot, RemoteRebootReply, TimeSync, TimeSyncReply, encode_frame, utcnow

PILE = "12345678901234"


@pytest.fixture
def redis(app):
    with app.app_context():
        return get_redis()


@pytest.fixture
def node(redis, monkeypatch):
    monkeypatch.setattr(commands, "GRACE", 0.2)
    name = f"unit-{uuid.uuid4().hex[:8]}"
    registry = Registry(redis)
    registry.announce(name, 10)
    registry.claim(PILE, name, "c1", 10)
    yield name
    registry.withdraw(name)
    registry.release(PILE, name, "c1")


def serve_once(redis, node, answer):
    """A fake node: take one request from the node's queue and answer it with ``answer(request)``."""
    seen = []

    def run():
        item = redis.blpop([node_queue_key(node)], timeout=5)
        req = Request.loads(item[1])
        seen.append(req)
        commands.send_reply(redis, req, **answer(req))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return seen, thread


def test_round_trip_returns_the_decoded_reply(redis, node):
    now = utcnow().replace(microsecond=0)
    reply_frame = encode_frame(TimeSyncReply(pile_code=PILE, current_time=now), 5)
    seen, thread = serve_once(redis, node, lambda req: {"frame": reply_frame})
    header, reply = CommandBus(redis).call(PILE, TimeSync(pile_code=PILE, current_time=now), expect=(0x55,),
                                           match={"pile_code": PILE}, timeout=2)
    thread.join(2)
    assert isinstance(reply, TimeSyncReply) and reply.current_time == now and header.seq == 5
    req = seen[0]
    assert (req.pile, req.frame_type, req.expect, req.match) == (PILE, 0x56, [0x55], {"pile_code": PILE})
    assert TimeSync.decode(bytes.fromhex(req.body)).current_time == now


@pytest.mark.parametrize("error, exc", [("offline", PileOffline), ("timeout", CommandTimeout),
                                        ("send_failed", CommandError)])
def test_node_errors_become_exceptions(redis, node, error, exc):
    serve_once(redis, node, lambda req: {"error": error})
    with pytest.raises(exc):
        CommandBus(redis).call(PILE, RemoteReboot(pile_code=PILE, control=1), expect=(0x91,), timeout=2)


def test_no_answer_is_a_timeout(redis, node):
    started = time.monotonic()
    with pytest.raises(CommandTimeout):
        CommandBus(redis).call(PILE, RemoteReboot(pile_code=PILE, control=1), expect=(0x91,), timeout=0.3)
    assert time.monotonic() - started < 2
    redis.delete(node_queue_key(node))


def test_offline_pile_and_dead_node(redis, node):
    with pytest.raises(PileOffline):
        CommandBus(redis).call("99999999999999", RemoteReboot(pile_code="99999999999999"), expect=(0x91,))
    Registry(redis).withdraw(node)                          # the node died: its pile key is stale
    with pytest.raises(PileOffline, match="gone"):
        CommandBus(redis).call(PILE, RemoteReboot(pile_code=PILE), expect=(0x91,))


def test_listener_hands_over_requests_and_drops_expired_ones(redis, node):
    got = []
    listener = CommandListener(redis, node, got.append, poll=0.1)
    thread = threading.Thread(target=listener.run, daemon=True)
    thread.start()
    queue = node_queue_key(node)
    redis.rpush(queue, "not json")
    redis.rpush(queue, Request(pile=PILE, op="push_price", deadline=time.time() - 1).dumps())
    assert CommandBus(redis).post(PILE, "push_price", station_id=3)
    assert not CommandBus(redis).post("99999999999999", "push_price")
    deadline = time.monotonic() + 3
    while not got and time.monotonic() < deadline:
        time.sleep(0.02)
    listener.stop()
    thread.join(2)
    assert [(r.op, r.args, r.reply_to) for r in got] == [("push_price", {"station_id": 3}, None)]
    assert got[0].received > 0


def test_reply_frame_decodes_leniently(redis, node):
    body = RemoteRebootReply(pile_code=PILE, result=1).encode() + b"\x00"     # one byte too many
    frame = encode_frame(RawFrame(0x91, body), 1)
    serve_once(redis, node, lambda req: {"frame": frame})
    _, reply = CommandBus(redis).call(PILE, RemoteReboot(pile_code=PILE, control=2), expect=(0x91,), timeout=2)
    assert reply.result == 1
